"""Which failed ``state`` queries mean "no worker answered" (a side possibly missing) and
which are that symbol's own (``fsm_state_unavailable``)."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode

from activities.validator import _unanswered


@pytest.mark.parametrize(
    ("status", "message", "unanswered"),
    [
        (RPCStatusCode.DEADLINE_EXCEEDED, "context deadline exceeded", True),
        (RPCStatusCode.FAILED_PRECONDITION, "No poller seen for task queue recently", True),
        (RPCStatusCode.FAILED_PRECONDITION, "workflow is closed", False),
        (RPCStatusCode.INVALID_ARGUMENT, "bad query", False),
        (RPCStatusCode.PERMISSION_DENIED, "not allowed", False),
        (RPCStatusCode.UNAVAILABLE, "server unavailable", False),
        (RPCStatusCode.INTERNAL, "internal error", False),
    ],
)
def test_only_a_timeout_or_no_poller_counts_as_no_worker(status, message, unanswered):
    assert _unanswered(RPCError(message, status, b"")) is unanswered
