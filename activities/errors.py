"""Translate domain errors into Temporal ``ApplicationError``s where they leave an activity.

The ``type`` is the class's ``error_type`` (a class name), which is what workflows and retry
policies match on (``non_retryable_error_types`` matches exact names only, so a subclass
without a type of its own travels as its parent's).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from trader.core.errors import ExchangeError, OrderAcceptedUnread, RetryableExchangeError


def to_application_error(exc: ExchangeError) -> ApplicationError:
    """Map a domain exchange error to the ApplicationError Temporal should see (an order the
    exchange accepted keeps its exchange id in the failure's details)."""
    if isinstance(exc, RetryableExchangeError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        details = (exc.order_id,) if isinstance(exc, OrderAcceptedUnread) else ()
        return ApplicationError(
            str(exc),
            *details,
            type=exc.error_type.value,
            non_retryable=False,
            next_retry_delay=delay,
        )
    return ApplicationError(str(exc), type=exc.error_type.value, non_retryable=True)
