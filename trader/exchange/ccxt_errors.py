"""ccxt exceptions translated into the domain taxonomy where they enter (the adapter).

``CCXT_ERRORS`` names, for EVERY ccxt exception class, what the trader does next:

- ``RETRY``: transient (network, timeout, 5xx, rate limit, a garbled answer): the activity
  fails retryably; a rate limit carries the exchange's ``Retry-After`` as ``retry_after``
  (Temporal's ``next_retry_delay``). On *create* every transient failure is
  ``OrderStatusUnknown``: the order may exist, and the retry looks its client id up first.
- a domain ``ExchangeError`` subclass: non-retryable, the workflow branches on its name
  (a rejected order goes back to IDLE, an unknown order is "not there", ...).
- ``FATAL``: a call that can never work as made (unsupported, bad setup): ERROR for a human.

The table is exact per class, never by ``isinstance``: ccxt's hierarchy puts ``OrderNotFound``
under ``InvalidOrder`` and ``DuplicateOrderId`` too, and they mean very different things
here. ``tests/exchange/test_ccxt_errors.py`` fails when ccxt adds a class not in the table.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Literal

import ccxt

from trader.core import errors as e

Kind = Literal["retry", "fatal"] | type[e.ExchangeError]
RETRY: Kind = "retry"
FATAL: Kind = "fatal"

CCXT_ERRORS: dict[type[ccxt.BaseError], Kind] = {
    # --- the roots: unknown specifics, so assume transient (bounded by FSM_MAX_RETRIES) ---
    ccxt.BaseError: RETRY,
    ccxt.ExchangeError: RETRY,
    ccxt.OperationFailed: RETRY,
    # --- transport and availability -------------------------------------------------------
    ccxt.NetworkError: RETRY,
    ccxt.DDoSProtection: RETRY,  # Binance 418/429
    ccxt.RateLimitExceeded: RETRY,
    ccxt.ExchangeNotAvailable: RETRY,  # 5xx, connection refused
    ccxt.OnMaintenance: RETRY,
    ccxt.InvalidNonce: RETRY,  # clock skew / recvWindow: the next attempt re-signs
    ccxt.ChecksumError: RETRY,
    ccxt.RequestTimeout: RETRY,
    ccxt.BadResponse: RETRY,  # unparsable answer: ask again
    ccxt.NullResponse: RETRY,
    ccxt.CancelPending: RETRY,  # the cancel is in progress; the next look sees its end
    # --- credentials ----------------------------------------------------------------------
    ccxt.AuthenticationError: e.AuthenticationError,
    ccxt.PermissionDenied: e.PermissionDenied,
    ccxt.AccountNotEnabled: e.PermissionDenied,
    ccxt.AccountSuspended: e.AccountSuspended,
    ccxt.RestrictedLocation: e.PermissionDenied,
    # --- the exchange said no to the order ------------------------------------------------
    ccxt.InsufficientFunds: e.InsufficientFunds,
    ccxt.InvalidOrder: e.InvalidOrder,  # Binance "Duplicate order sent." is special-cased
    ccxt.OrderImmediatelyFillable: e.InvalidOrder,
    ccxt.OrderNotFillable: e.InvalidOrder,
    ccxt.ContractUnavailable: e.InvalidOrder,
    ccxt.BadRequest: e.InvalidOrder,  # malformed parameters: repeating cannot help
    ccxt.OperationRejected: e.OrderRejected,  # too many open orders, ...
    ccxt.MarketClosed: e.OrderRejected,
    ccxt.DuplicateOrderId: e.DuplicateClientOrderId,
    # --- lookups and markets --------------------------------------------------------------
    ccxt.OrderNotFound: e.OrderNotFound,
    ccxt.OrderNotCached: e.OrderNotFound,
    ccxt.BadSymbol: e.BadSymbol,
    # --- never valid for a spot trader: a bug or a setup error ----------------------------
    ccxt.ArgumentsRequired: FATAL,
    ccxt.NotSupported: FATAL,
    ccxt.InvalidProxySettings: FATAL,
    ccxt.ExchangeClosedByUser: FATAL,
    ccxt.ManualInteractionNeeded: FATAL,
    ccxt.NoChange: FATAL,  # margin/position settings: never called
    ccxt.MarginModeAlreadySet: FATAL,
    ccxt.InvalidAddress: FATAL,  # withdrawals: never called
    ccxt.AddressPending: FATAL,
    ccxt.UnsubscribeError: FATAL,  # websockets: not used
}

# Binance -2010 NEW_ORDER_REJECTED with this text means the client order id exists already.
_DUPLICATE_TEXT = "Duplicate order sent"
_RATE_LIMITED = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)
_QUERY = re.compile(r"\?\S*")


def kind_of(exc: ccxt.BaseError) -> Kind:
    """The table entry of the exception's exact class (its nearest listed ancestor for a
    class ccxt added since; the table test makes sure there is none)."""
    for cls in type(exc).__mro__:
        if cls in CCXT_ERRORS:
            return CCXT_ERRORS[cls]
    return RETRY


def retry_after_s(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan"/"inf" parse as floats, but no timedelta (next_retry_delay) takes them
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """A message safe for logs and workflow histories: ccxt puts the full URL (signed query
    string included) in some messages; credentials are blanked wherever they appear."""
    text = _QUERY.sub("?…", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def translate(
    exc: ccxt.BaseError,
    *,
    creating: bool = False,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> e.ExchangeError:
    """The domain error for a ccxt exception.

    Args:
        exc: what ccxt raised.
        creating: the failed call was an order create (transient means "unknown").
        headers: the response headers of the failed request (``Retry-After``); read them
            right where ccxt raised, before any other request can overwrite them.
        secrets: API key and secret, blanked from the message.
    """
    detail = scrub(str(exc), secrets)
    origin = type(exc).__name__
    kind = kind_of(exc)
    if isinstance(exc, ccxt.InvalidOrder) and _DUPLICATE_TEXT in detail:
        return e.DuplicateClientOrderId(_named(detail, origin, e.DuplicateClientOrderId))
    if kind == RETRY:
        after = retry_after_s(headers) if isinstance(exc, _RATE_LIMITED) else None
        if creating:
            return e.OrderStatusUnknown(
                f"order create outcome unknown: {detail} ({origin})", retry_after=after
            )
        return e.RetryableExchangeError(f"{detail} ({origin})", retry_after=after)
    cls = e.FatalExchangeError if kind == FATAL else kind
    assert not isinstance(cls, str)
    return cls(_named(detail, origin, cls))


def _named(detail: str, origin: str, cls: type[e.ExchangeError]) -> str:
    # ccxt's class name only when it says more than the domain class (which the workflow's
    # notes already show): "... (ccxt BadRequest)" for an InvalidOrder, nothing for
    # InsufficientFunds.
    return detail if origin == cls.__name__ else f"{detail} (ccxt {origin})"
