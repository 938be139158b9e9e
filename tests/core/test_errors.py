"""Error types: one enum, the sets the workflow uses derived from the exception classes."""

from __future__ import annotations

import inspect

import pytest

from trader.core import errors as e
from trader.core.errors import NON_RETRYABLE_TYPES, REJECTION_TYPES, ErrorType

# As listed by hand before they were derived: retry policies in recorded histories carry
# NON_RETRYABLE_TYPES in this order, and the workflow's rejection branches test these.
HAND_LISTED_NON_RETRYABLE = (
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
HAND_LISTED_REJECTIONS = ("InsufficientFunds", "InvalidOrder", "OrderRejected")

# The ApplicationError type each exception left an activity as before ErrorType existed:
# its class name, except an OrderRejected subclass other than the two named ones.
TRAVELS_AS = {
    "ExchangeError": "ExchangeError",
    "RetryableExchangeError": "RetryableExchangeError",
    "OrderStatusUnknown": "OrderStatusUnknown",
    "OrderAcceptedUnread": "OrderAcceptedUnread",
    "OrderRejected": "OrderRejected",
    "InsufficientFunds": "InsufficientFunds",
    "InvalidOrder": "InvalidOrder",
    "DuplicateClientOrderId": "OrderRejected",
    "OrderNotFound": "OrderNotFound",
    "BadSymbol": "BadSymbol",
    "AuthenticationError": "AuthenticationError",
    "PermissionDenied": "PermissionDenied",
    "AccountSuspended": "AccountSuspended",
    "FatalExchangeError": "FatalExchangeError",
}


def test_derived_non_retryable_types_are_the_hand_listed_ones_in_order():
    assert NON_RETRYABLE_TYPES == HAND_LISTED_NON_RETRYABLE
    assert all(type(t) is str for t in NON_RETRYABLE_TYPES)  # plain strings for RetryPolicy


def test_derived_rejection_types_are_the_hand_listed_ones():
    assert tuple(t.value for t in REJECTION_TYPES) == HAND_LISTED_REJECTIONS


def test_every_exchange_error_class_travels_as_before():
    classes: list[type[e.ExchangeError]] = [e.ExchangeError, *e.exchange_error_classes()]
    assert {c.__name__: c.error_type.value for c in classes} == TRAVELS_AS


@pytest.mark.parametrize("member", ErrorType, ids=lambda t: t.name)
def test_every_error_type_names_the_exception_class_that_travels_as_it(member):
    cls = getattr(e, member.value)
    assert inspect.isclass(cls) and issubclass(cls, e.ExchangeError)
    assert cls.error_type is member


def test_every_exchange_error_class_is_found_by_the_walk():
    defined = {
        obj
        for obj in vars(e).values()
        if inspect.isclass(obj) and issubclass(obj, e.ExchangeError) and obj is not e.ExchangeError
    }
    assert set(e.exchange_error_classes()) == defined
