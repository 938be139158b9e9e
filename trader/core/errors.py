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
Activities translate ``ExchangeError`` into ``ApplicationError`` whose ``type`` is the
class's ``error_type``, an ``ErrorType`` whose value is a class name (the class's own, or for
an ``OrderRejected`` subclass without a type of its own, ``"OrderRejected"``): that is what
workflows branch on and retry policies match. Those strings are in recorded histories: never
rename a class or a value.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar


class ErrorType(str, Enum):
    """The ``ApplicationError.type`` an exchange error leaves an activity as: a class name.

    The non-retryable ones come first, in the order the retry policies recorded in histories
    list them (``NON_RETRYABLE_TYPES`` follows this order).
    """

    INSUFFICIENT_FUNDS = "InsufficientFunds"
    INVALID_ORDER = "InvalidOrder"
    ORDER_REJECTED = "OrderRejected"
    BAD_SYMBOL = "BadSymbol"
    AUTHENTICATION_ERROR = "AuthenticationError"
    PERMISSION_DENIED = "PermissionDenied"
    ACCOUNT_SUSPENDED = "AccountSuspended"
    ORDER_NOT_FOUND = "OrderNotFound"
    FATAL_EXCHANGE_ERROR = "FatalExchangeError"
    EXCHANGE_ERROR = "ExchangeError"
    RETRYABLE = "RetryableExchangeError"
    ORDER_STATUS_UNKNOWN = "OrderStatusUnknown"
    ORDER_ACCEPTED_UNREAD = "OrderAcceptedUnread"


class TraderError(Exception):
    """Base of every error the trader raises on purpose."""


class ConfigError(TraderError):
    """Settings are invalid; the message names the field and the expected form."""


class ExchangeError(TraderError):
    """Base for errors at the exchange boundary."""

    #: Whether Temporal retries it; False also puts its type into ``NON_RETRYABLE_TYPES``.
    retryable: ClassVar[bool] = False
    #: The type it leaves an activity as; a subclass without its own travels as its parent.
    error_type: ClassVar[ErrorType] = ErrorType.EXCHANGE_ERROR


class RetryableExchangeError(ExchangeError):
    """Transient: the call may succeed if repeated (after ``retry_after`` seconds if set)."""

    retryable = True
    error_type = ErrorType.RETRYABLE

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderStatusUnknown(RetryableExchangeError):
    """A create failed in transit (timeout, connection, 5xx): the order may exist. Never a
    rejection: the retried activity looks the client order id up before placing again."""

    error_type = ErrorType.ORDER_STATUS_UNKNOWN


class OrderAcceptedUnread(OrderStatusUnknown):
    """The exchange accepted the order and named it (``order_id``), but reading what filled
    (its fills or fees) failed. The order exists: a retry reads it by this id, never creates."""

    error_type = ErrorType.ORDER_ACCEPTED_UNREAD

    def __init__(self, message: str, *, order_id: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.order_id = order_id


class OrderRejected(ExchangeError):
    """The exchange refused the order; repeating the same request cannot help."""

    error_type = ErrorType.ORDER_REJECTED


class InsufficientFunds(OrderRejected):
    """Not enough balance for the order."""

    error_type = ErrorType.INSUFFICIENT_FUNDS


class InvalidOrder(OrderRejected):
    """Amount, price or parameters are not acceptable (e.g. below the market minimum)."""

    error_type = ErrorType.INVALID_ORDER


class DuplicateClientOrderId(OrderRejected):
    """An order with this client order id already exists; callers look it up instead. Has no
    type of its own: should one leave an activity, it travels as ``OrderRejected``."""


class OrderNotFound(ExchangeError):
    """The exchange knows no order with this id."""

    error_type = ErrorType.ORDER_NOT_FOUND


class BadSymbol(ExchangeError):
    """The exchange has no such market."""

    error_type = ErrorType.BAD_SYMBOL


class AuthenticationError(ExchangeError):
    """Credentials are missing or wrong."""

    error_type = ErrorType.AUTHENTICATION_ERROR


class PermissionDenied(AuthenticationError):
    """The credentials are valid but may not do this (trading disabled, restricted)."""

    error_type = ErrorType.PERMISSION_DENIED


class AccountSuspended(AuthenticationError):
    """The account is suspended or locked."""

    error_type = ErrorType.ACCOUNT_SUSPENDED


class FatalExchangeError(ExchangeError):
    """Not the exchange saying no, but a call that can never work as made (unsupported
    method, missing argument, bad proxy settings): fails the phase (ERROR) for a human."""

    error_type = ErrorType.FATAL_EXCHANGE_ERROR


def exchange_error_classes() -> list[type[ExchangeError]]:
    """Every subclass of ``ExchangeError`` (not the base itself), parents before children."""
    found: list[type[ExchangeError]] = []
    todo = list(ExchangeError.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _types_of(classes: list[type[ExchangeError]]) -> tuple[ErrorType, ...]:
    return tuple(t for t in ErrorType if any(cls.error_type is t for cls in classes))


#: Error types the workflow treats as "the exchange said no" (never retried): the types of
#: every exchange error that is not ``retryable``, in ``ErrorType`` order.
NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(
    t.value for t in _types_of([c for c in exchange_error_classes() if not c.retryable])
)

#: Error types meaning "the exchange refused the order": it was never placed.
REJECTION_TYPES: tuple[ErrorType, ...] = _types_of(
    [c for c in exchange_error_classes() if issubclass(c, OrderRejected)]
)
