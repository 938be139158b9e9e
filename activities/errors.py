"""Translate domain errors into Temporal ``ApplicationError``s where they leave an activity.

The ``type`` is the domain class name, which is what workflows and retry policies match on
(``non_retryable_error_types`` matches exact names only, so subclasses must be mapped here).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from trader.core.errors import (
    ExchangeError,
    OrderAcceptedUnread,
    OrderRejected,
    RetryableExchangeError,
)


def to_application_error(exc: ExchangeError) -> ApplicationError:
    """Map a domain exchange error to the ApplicationError Temporal should see (an order the
    exchange accepted keeps its exchange id in the failure's details)."""
    if isinstance(exc, RetryableExchangeError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        details = (exc.order_id,) if isinstance(exc, OrderAcceptedUnread) else ()
        return ApplicationError(
            str(exc),
            *details,
            type=type(exc).__name__,
            non_retryable=False,
            next_retry_delay=delay,
        )
    type_name = type(exc).__name__
    if isinstance(exc, OrderRejected) and type_name not in ("InsufficientFunds", "InvalidOrder"):
        type_name = "OrderRejected"
    return ApplicationError(str(exc), type=type_name, non_retryable=True)
