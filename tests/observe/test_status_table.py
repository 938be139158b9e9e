"""The status table against a real dev server (real visibility) and real SymbolTrader
workflows: one symbol in ERROR, one holding, one idle. Frames are captured with Rich's
recording console and checked against what the workflows themselves report."""

from __future__ import annotations

import asyncio
import io
import re
import time

from rich.console import Console
from temporalio.client import (
    Client,
    Interceptor,
    ListWorkflowsInput,
    OutboundInterceptor,
    QueryWorkflowInput,
    WorkflowExecutionAsyncIterator,
)

from tests.e2e.helpers import run, write_config
from tests.observe.scene import visible_rows
from trader.core.phases import Phase
from trader.observe.status_live import live_status
from trader.observe.status_table import StatusRow, build_table, status_rows
from trader.runtime.converter import DATA_CONVERTER

ANSI = re.compile(r"\x1b\[([0-9;]*)m")


def _frame(rows: list[StatusRow], *, show_idle: bool) -> tuple[list[str], list[str]]:
    """(plain lines, styled lines) of one frame as a terminal would show it."""
    console = Console(
        record=True, width=220, force_terminal=True, color_system="standard", file=io.StringIO()
    )
    console.print(build_table(rows, show_idle=show_idle))
    plain = console.export_text(clear=False).splitlines()
    return plain, console.export_text(styles=True).splitlines()


def _line_of(lines: list[str], text: str) -> int:
    [index] = [i for i, line in enumerate(lines) if text in line]
    return index


def _sgr_before(styled_line: str, word: str) -> set[str]:
    """The ANSI SGR codes in effect where ``word`` starts in a styled line."""
    match = re.search(r"((?:\x1b\[[0-9;]*m)*)" + re.escape(word), styled_line)
    assert match, f"{word!r} is not in {styled_line!r}"
    return {code for group in ANSI.findall(match.group(1)) for code in group.split(";")}


async def test_frame_rows_order_colours_and_values(scene):
    rows_by_id = await visible_rows(scene)
    rows = [
        r for r in await status_rows(scene.bench.client, scene.query) if r.workflow_id in rows_by_id
    ]
    held = await scene.bench.state(scene.holder)
    failed = await scene.bench.state(scene.failing)
    assert held.phase is Phase.POSITION and failed.phase is Phase.ERROR

    plain, styled = _frame(rows, show_idle=False)
    text = "\n".join(plain)
    err_line, held_line = _line_of(plain, "ETH/USDT"), _line_of(plain, " position ")
    assert err_line < held_line  # errors first, then open trades
    assert "BTC/USDT" in plain[held_line]
    assert " idle " not in text and "1 idle/warmup hidden" in text

    # Values come from the memo; they must agree with what the workflow's state says.
    pnl = (held.current_price / held.trade.entry_price - 1) * 100
    assert f"{pnl:+.2f}" in plain[held_line].split()
    assert format(held.trade.entry_price.normalize(), "f") in plain[held_line].split()
    assert format(held.current_price.normalize(), "f") in plain[held_line].split()
    assert failed.note[:25] in plain[err_line]  # the last transition's reason
    # The refused sell left ETH's position held: ERROR shows it too.
    assert failed.holds_position
    assert format(failed.trade.entry_price.normalize(), "f") in plain[err_line].split()

    assert "31" in _sgr_before(styled[err_line], "error")  # red
    assert "32" in _sgr_before(styled[held_line], "position")  # green

    plain_all, styled_all = _frame(rows, show_idle=True)
    idle_line = _line_of(plain_all, " idle ")
    assert _line_of(plain_all, " position ") < idle_line  # the rest comes last
    assert "hidden" not in "\n".join(plain_all)
    assert not {"31", "32", "33"} & _sgr_before(styled_all[idle_line], "idle")


class _CountCalls(Interceptor):
    """Counts the client's visibility list calls and queries (no Temporal mock: the calls
    go on to the real server)."""

    def __init__(self) -> None:
        self.lists = 0
        self.queries = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class _Out(OutboundInterceptor):
            def list_workflows(self, input: ListWorkflowsInput) -> WorkflowExecutionAsyncIterator:
                counter.lists += 1
                return super().list_workflows(input)

            async def query_workflow(self, input: QueryWorkflowInput):  # noqa: ANN202
                counter.queries += 1
                return await super().query_workflow(input)

        return _Out(next)


async def test_live_table_makes_one_list_call_per_refresh(scene, dev_env):
    counter = _CountCalls()
    client = Client(
        dev_env.client.service_client,
        namespace=dev_env.client.namespace,
        data_converter=DATA_CONVERTER,
        interceptors=[counter],
    )
    await visible_rows(scene, client)
    counter.lists = 0
    console = Console(
        record=True, width=220, force_terminal=True, color_system="standard", file=io.StringIO()
    )
    # A number of frames, not a wall-clock window: a loaded machine may draw few in one.
    stop = asyncio.Event()
    hz, max_frames = 5.0, 8
    guard = asyncio.get_running_loop().call_later(60.0, stop.set)  # if it never gets there
    started = time.monotonic()
    frames = await live_status(
        client,
        scene.query,
        console=console,
        refresh_hz=hz,
        show_idle=False,
        stop=stop,
        max_frames=max_frames,
    )
    elapsed = time.monotonic() - started
    guard.cancel()
    assert frames == max_frames and not stop.is_set()
    assert counter.lists == frames and counter.queries == 0
    assert elapsed >= (frames - 1) / hz - 0.01  # never faster than hz
    text = console.export_text()
    assert text.count("durable-trader") >= frames and "ETH/USDT" in text  # + a final redraw


async def test_starter_status_once_prints_the_table(scene, dev_env, tmp_path):
    await visible_rows(scene)
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=dev_env.client.service_client.config.target_host,
        data_dir=tmp_path / "data",
        queue=scene.bench.task_queue,
    )
    res = await asyncio.to_thread(run, "starter.py", "--config", str(cfg), "status", "--once")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert _line_of(lines, " error ") < _line_of(lines, " position ")
    assert "1 idle/warmup hidden" in res.stdout
    res = await asyncio.to_thread(
        run, "starter.py", "--config", str(cfg), "status", "--once", "--show-idle"
    )
    assert res.returncode == 0 and " idle " in res.stdout and "hidden" not in res.stdout
