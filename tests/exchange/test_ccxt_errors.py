"""Every ccxt exception, translated at the boundary, as the workflow finally sees it.

One row per ccxt exception class: the ApplicationError type the workflow branches on and
whether Temporal may retry it, for a lookup and for an order create. A class ccxt adds
(and the table does not know) fails ``test_every_ccxt_exception_is_in_the_table``.
"""

from __future__ import annotations

import importlib
import inspect

import ccxt
import pytest

from activities.errors import to_application_error
from trader.core import errors as e
from trader.exchange.ccxt_errors import CCXT_ERRORS, retry_after_s, scrub, translate

_R, _U = "RetryableExchangeError", "OrderStatusUnknown"

# class name -> (type on a lookup, type on a create, non_retryable)
EXPECTED: dict[str, tuple[str, str, bool]] = {
    "BaseError": (_R, _U, False),
    "ExchangeError": (_R, _U, False),
    "OperationFailed": (_R, _U, False),
    "NetworkError": (_R, _U, False),
    "DDoSProtection": (_R, _U, False),
    "RateLimitExceeded": (_R, _U, False),
    "ExchangeNotAvailable": (_R, _U, False),
    "OnMaintenance": (_R, _U, False),
    "InvalidNonce": (_R, _U, False),
    "ChecksumError": (_R, _U, False),
    "RequestTimeout": (_R, _U, False),
    "BadResponse": (_R, _U, False),
    "NullResponse": (_R, _U, False),
    "CancelPending": (_R, _U, False),
    "AuthenticationError": ("AuthenticationError",) * 2 + (True,),
    "PermissionDenied": ("PermissionDenied",) * 2 + (True,),
    "AccountNotEnabled": ("PermissionDenied",) * 2 + (True,),
    "RestrictedLocation": ("PermissionDenied",) * 2 + (True,),
    "AccountSuspended": ("AccountSuspended",) * 2 + (True,),
    "InsufficientFunds": ("InsufficientFunds",) * 2 + (True,),
    "InvalidOrder": ("InvalidOrder",) * 2 + (True,),
    "OrderImmediatelyFillable": ("InvalidOrder",) * 2 + (True,),
    "OrderNotFillable": ("InvalidOrder",) * 2 + (True,),
    "ContractUnavailable": ("InvalidOrder",) * 2 + (True,),
    "BadRequest": ("InvalidOrder",) * 2 + (True,),
    "OperationRejected": ("OrderRejected",) * 2 + (True,),
    "MarketClosed": ("OrderRejected",) * 2 + (True,),
    "DuplicateOrderId": ("OrderRejected",) * 2 + (True,),  # DuplicateClientOrderId, below
    "OrderNotFound": ("OrderNotFound",) * 2 + (True,),
    "OrderNotCached": ("OrderNotFound",) * 2 + (True,),
    "BadSymbol": ("BadSymbol",) * 2 + (True,),
    "ArgumentsRequired": ("FatalExchangeError",) * 2 + (True,),
    "NotSupported": ("FatalExchangeError",) * 2 + (True,),
    "InvalidProxySettings": ("FatalExchangeError",) * 2 + (True,),
    "ExchangeClosedByUser": ("FatalExchangeError",) * 2 + (True,),
    "ManualInteractionNeeded": ("FatalExchangeError",) * 2 + (True,),
    "NoChange": ("FatalExchangeError",) * 2 + (True,),
    "MarginModeAlreadySet": ("FatalExchangeError",) * 2 + (True,),
    "InvalidAddress": ("FatalExchangeError",) * 2 + (True,),
    "AddressPending": ("FatalExchangeError",) * 2 + (True,),
    "UnsubscribeError": ("FatalExchangeError",) * 2 + (True,),
}


def _ccxt_exception_classes() -> list[type[ccxt.BaseError]]:
    module = importlib.import_module("ccxt.base.errors")
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ccxt.BaseError)
    ]


def test_every_ccxt_exception_is_in_the_table() -> None:
    classes = _ccxt_exception_classes()
    assert len(classes) >= 40
    missing = sorted(c.__name__ for c in classes if c not in CCXT_ERRORS)
    assert not missing, f"ccxt exception classes with no translation: {missing}"
    untested = sorted(c.__name__ for c in classes if c.__name__ not in EXPECTED)
    assert not untested, f"add rows to EXPECTED for {untested}"


@pytest.mark.parametrize("cls", _ccxt_exception_classes(), ids=lambda c: c.__name__)
def test_translation_table(cls: type[ccxt.BaseError]) -> None:
    on_lookup, on_create, non_retryable = EXPECTED[cls.__name__]
    exc = cls("binance GET https://api.binance.com/api/v3/order?signature=abc boom")
    for creating, expected in ((False, on_lookup), (True, on_create)):
        domain = translate(exc, creating=creating)
        assert isinstance(domain, e.ExchangeError)
        assert domain.retryable is not non_retryable
        app = to_application_error(domain)
        assert (app.type, app.non_retryable) == (expected, non_retryable)
        assert app.type in e.NON_RETRYABLE_TYPES or not non_retryable
        assert "signature" not in str(domain) and "boom" in str(domain)


def test_binance_duplicate_order_is_a_duplicate_client_id_not_a_rejection() -> None:
    exc = ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
    assert isinstance(translate(exc, creating=True), e.DuplicateClientOrderId)
    assert isinstance(translate(ccxt.DuplicateOrderId("x")), e.DuplicateClientOrderId)
    assert type(translate(ccxt.InvalidOrder("Filter failure: LOT_SIZE"))) is e.InvalidOrder


def test_rate_limit_carries_retry_after_into_next_retry_delay() -> None:
    headers = {"retry-after": "7", "Content-Type": "application/json"}
    domain = translate(ccxt.DDoSProtection("binance 429"), headers=headers)
    assert isinstance(domain, e.RetryableExchangeError) and domain.retry_after == 7
    app = to_application_error(domain)
    assert app.next_retry_delay is not None and app.next_retry_delay.total_seconds() == 7
    created = translate(ccxt.RateLimitExceeded("x"), creating=True, headers={"Retry-After": "2"})
    assert isinstance(created, e.OrderStatusUnknown) and created.retry_after == 2
    # A 5xx with a Retry-After is not a rate limit: the normal backoff applies.
    unavailable = translate(ccxt.ExchangeNotAvailable("503"), headers=headers)
    assert isinstance(unavailable, e.RetryableExchangeError) and unavailable.retry_after is None


def test_retry_after_forms() -> None:
    assert retry_after_s({"Retry-After": "1.5"}) == 1.5
    assert retry_after_s({"Retry-After": "Thu, 26 Nov 2026 05:00:10 GMT"}, now=1795669200.0) == 10.0
    assert retry_after_s({"Retry-After": "soon"}) is None
    for garbled in ("nan", "inf", "-inf"):  # floats, but no retry delay
        assert retry_after_s({"Retry-After": garbled}) is None
        domain = translate(ccxt.RateLimitExceeded("x"), headers={"Retry-After": garbled})
        assert to_application_error(domain).next_retry_delay is None
    assert retry_after_s(None) is None


def test_messages_never_carry_credentials_or_signed_queries() -> None:
    text = scrub(
        "binance GET http://h/api/v3/account?timestamp=1&signature=deadbeef "
        "key KEY123 secret SEC456",
        ["KEY123", "SEC456", ""],
    )
    assert "deadbeef" not in text and "KEY123" not in text and "SEC456" not in text
    domain = translate(ccxt.AuthenticationError("Invalid API-key KEY123"), secrets=["KEY123"])
    assert "KEY123" not in str(domain)


@pytest.mark.parametrize("cls", [e.ExchangeError, *e.exchange_error_classes()], ids=str)
def test_application_error_type_is_the_error_type_value(cls: type[e.ExchangeError]) -> None:
    exc = cls("x", order_id="1") if cls is e.OrderAcceptedUnread else cls("x")
    app = to_application_error(exc)
    assert app.type == cls.error_type.value and type(app.type) is str
    assert app.non_retryable is not cls.retryable
