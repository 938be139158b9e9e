"""The live status table (``starter.py status``, or inside the worker with
ENABLE_RICH_TABLE): one visibility list call per refresh, redrawn with ``rich.live``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text
from temporalio.client import Client
from temporalio.service import RPCError

from trader.observe.status_table import build_table, status_rows
from trader.observe.status_waits import with_price_waits

log = logging.getLogger(__name__)

# Piped output (scripts, CI logs) has no terminal width: wide enough for every column.
_PIPE_WIDTH = 160


def status_console() -> Console:
    """A console on stdout: the terminal's width, or a wide fixed one when piped."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=_PIPE_WIDTH if piped else None)


async def render_frame(client: Client, query: str, *, show_idle: bool) -> RenderableType:
    """One frame; a visibility outage is shown in the frame, not raised (the live table
    must outlive a restarting server)."""
    try:
        return build_table(
            await with_price_waits(client, await status_rows(client, query), show_idle=show_idle),
            show_idle=show_idle,
        )
    except RPCError as err:
        return Text(f"visibility unavailable: {err}", style="bold red")


async def live_status(
    client: Client,
    query: str,
    *,
    console: Console,
    refresh_hz: float,
    show_idle: bool,
    stop: asyncio.Event,
    max_frames: int | None = None,
) -> int:
    """Redraw the table ``refresh_hz`` times per second until ``stop`` is set (or after
    ``max_frames``); returns how many frames were drawn."""
    interval = 1.0 / refresh_hz
    loop = asyncio.get_running_loop()
    frames = 0
    # auto_refresh off: a frame is drawn when its data arrived, never a stale redraw from
    # Rich's own thread; redirecting stdout would swallow the worker's prints.
    with Live(
        console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False
    ) as live:
        while not stop.is_set():
            started = loop.time()
            live.update(await render_frame(client, query, show_idle=show_idle), refresh=True)
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(interval - (loop.time() - started), 0))
    return frames


async def print_once(client: Client, query: str, *, console: Console, show_idle: bool) -> None:
    """One frame for scripts: a visibility error propagates (a non-zero exit)."""
    console.print(
        build_table(
            await with_price_waits(client, await status_rows(client, query), show_idle=show_idle),
            show_idle=show_idle,
        )
    )
