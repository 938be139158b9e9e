"""The one exception module of the domain.

Hierarchy and what happens next::

    TraderError
    ├── ExchangeError                  something the exchange said or failed to say
    │   ├── RetryableExchangeError     network, timeout, 5xx, rate limit: retried by Temporal
    │   │   │                          (``retry_after`` becomes the next retry delay)
    │   │   └── OrderStatusUnknown     a create failed in transit: it may have reached the
    │   │       │                      exchange; the retry looks the client id up first and
    │   │       │                      creates again only once absence is confirmed over the
    │   │       │                      consistency window (lookups can lag behind a create)
    │   │       └── OrderAcceptedUnread  the create answered with the order's exchange id but
    │   │                              its fills/fees could not be read: it exists, so every
    │   │                              retry reads it by ``order_id`` and never creates
    │   ├── OrderRejected              non-retryable: the phase handles it (PLACE_BUY -> IDLE)
    │   │   ├── InsufficientFunds
    │   │   ├── InvalidOrder           bad amount/price, below minimum, ...
    │   │   └── DuplicateClientOrderId an order with this client id exists: look it up
    │   ├── OrderNotFound              lookup/cancel of an order the exchange does not know
    │   ├── BadSymbol                  the market does not exist: a configuration error
    │   ├── AuthenticationError        keys wrong or missing: fatal until fixed
    │   │   ├── PermissionDenied       the key may not do this (trading disabled, region, ...)
    │   │   └── AccountSuspended       the account is locked
    │   └── FatalExchangeError         the adapter asked for something the exchange cannot do
    │                                  (unsupported call, bad setup): a bug or setup error
    └── ConfigError                    bad settings: the process refuses to start

``InvalidTransition`` (in ``phases``) is a programming error and deliberately not a
``TraderError``: inside a workflow it fails the task, which Temporal retries until fixed.
Activities translate ``ExchangeError`` into ``ApplicationError`` whose ``type`` is the class
name, which is what workflows branch on.
"""

from __future__ import annotations


class TraderError(Exception):
    """Base of every error the trader raises on purpose."""


class ConfigError(TraderError):
    """Settings are invalid; the message names the field and the expected form."""


class ExchangeError(TraderError):
    """Base for errors at the exchange boundary."""

    retryable: bool = False


class RetryableExchangeError(ExchangeError):
    """Transient: the call may succeed if repeated (after ``retry_after`` seconds if set)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderStatusUnknown(RetryableExchangeError):
    """A create failed in transit (timeout, connection, 5xx): the order may exist. Never a
    rejection: the retried activity looks the client order id up before placing again."""


class OrderAcceptedUnread(OrderStatusUnknown):
    """The exchange accepted the order and named it (``order_id``), but reading what filled
    (its fills or fees) failed. The order exists: a retry reads it by this id, never creates."""

    def __init__(self, message: str, *, order_id: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.order_id = order_id


class OrderRejected(ExchangeError):
    """The exchange refused the order; repeating the same request cannot help."""


class InsufficientFunds(OrderRejected):
    """Not enough balance for the order."""


class InvalidOrder(OrderRejected):
    """Amount, price or parameters are not acceptable (e.g. below the market minimum)."""


class DuplicateClientOrderId(OrderRejected):
    """An order with this client order id already exists; callers look it up instead."""


class OrderNotFound(ExchangeError):
    """The exchange knows no order with this id."""


class BadSymbol(ExchangeError):
    """The exchange has no such market."""


class AuthenticationError(ExchangeError):
    """Credentials are missing or wrong."""


class PermissionDenied(AuthenticationError):
    """The credentials are valid but may not do this (trading disabled, restricted)."""


class AccountSuspended(AuthenticationError):
    """The account is suspended or locked."""


class FatalExchangeError(ExchangeError):
    """Not the exchange saying no, but a call that can never work as made (unsupported
    method, missing argument, bad proxy settings): fails the phase (ERROR) for a human."""


#: Error type names the workflow treats as "the exchange said no" (never retried).
NON_RETRYABLE_TYPES: tuple[str, ...] = (
    "InsufficientFunds",
    "InvalidOrder",
    "OrderRejected",
    "BadSymbol",
    "AuthenticationError",
    "PermissionDenied",
    "AccountSuspended",
    "OrderNotFound",
    "FatalExchangeError",
)
