"""Which runner executes workflow code: temporalio's sandbox (the default) or none.

The sandbox re-creates each workflow run in an isolated module namespace and proxies the
modules it restricts, so a non-deterministic call (``time.time()``, file I/O, a random
number) fails the workflow task at once instead of breaking replay later. That check costs
time on every activation: measured on the stream path, 4-8 ms of a decision's ~46 ms p50
(the deciding task and the Portfolio's Update; docs/benchmarks.md, "The sandbox's share").
``WORKFLOW_SANDBOX=false`` trades the run-time check for that time; determinism then rests
on the replay tests (tests/test_replay.py) and review alone. The same workflow code runs
either way, and a history written by one replays under the other.
"""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    return SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
