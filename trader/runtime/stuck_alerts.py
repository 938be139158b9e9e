"""Stuck-symbol alerts: the Telegram bot process checks every ~STUCK_TIMEOUT_SECONDS / 2 for
symbols in a working phase past the timeout (``stuck.stuck_symbols`` from visibility, or
the legacy engine's state file through ``legacy.legacy_stuck``) and sends one message per
stuck *episode*, then one "no longer stuck" when that episode ends.

The bot is one process per deployment, so there is one alert per episode whatever the
number of workers. An episode is (workflow id, phase, phase since): its de-duplication
key in the notifier's sent-log, so a restarted bot does not send it again, and a new
episode (another phase, or the same phase entered again later) is sent. The "no longer
stuck" message needs this process to have seen the episode (an episode that ends while
the bot is down gets none). A failed check is logged and tried again at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client

from activities.notify import Notifier
from trader.config import Settings
from trader.core.messages import format_stuck_alert, format_unstuck
from trader.runtime import legacy
from trader.runtime.stuck import StuckSymbol, stuck_symbols
from trader.telegram.notifier import RetryLater, Undeliverable

log = logging.getLogger("durable_trader.telegram")

MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 60.0
"""Bounds on the check interval (half the stuck timeout)."""


def check_interval(timeout_s: float) -> float:
    return min(max(timeout_s / 2, MIN_INTERVAL_S), MAX_INTERVAL_S)


def episode_key(row: StuckSymbol) -> str:
    since = row.since.isoformat() if row.since else "?"
    return f"stuck:{row.workflow_id}:{row.phase}:{since}"


class StuckAlerts:
    def __init__(self, settings: Settings, client: Client | None, notifier: Notifier) -> None:
        """``client``: None in legacy mode (the engine's state file is read instead)."""
        self.settings, self.client, self.notifier = settings, client, notifier
        self.timeout_s = settings.stuck_timeout_seconds
        self.interval_s = check_interval(self.timeout_s)
        self.open: dict[str, StuckSymbol] = {}
        """Episodes alerted (or found already alerted) and not yet over, by key."""
        self.checks = 0
        """Checks completed."""

    async def _stuck(self) -> list[StuckSymbol]:
        if self.client is None:
            return await asyncio.to_thread(
                legacy.legacy_stuck, self.settings, timeout_s=self.timeout_s
            )
        return await stuck_symbols(
            self.client, timeout_s=self.timeout_s, task_queue=self.settings.task_queue
        )

    async def check(self) -> None:
        """One check: alert new episodes, note the end of the ones alerted."""
        current = {episode_key(r): r for r in await self._stuck()}
        for key, row in current.items():
            if key not in self.open:
                text = format_stuck_alert(
                    symbol=row.symbol, phase=row.phase, timeout_s=self.timeout_s, since=row.since
                )
                if await self._deliver(text, key):
                    self.open[key] = row
        for key in self.open.keys() - current.keys():
            row = self.open[key]
            text = format_unstuck(symbol=row.symbol, phase=row.phase, since=row.since)
            if await self._deliver(text, f"un{key}"):
                del self.open[key]
        self.checks += 1

    async def _deliver(self, text: str, key: str) -> bool:
        """Sent (now or before) or undeliverable: done. False: try at the next check."""
        try:
            await self.notifier.send(text, key=key)
        except RetryLater as exc:
            log.warning("stuck alert not sent, next check retries: %s", exc)
            return False
        except Undeliverable as exc:
            log.error("stuck alert undeliverable, dropped: %s", exc)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Check until ``stop``; a check is bounded and never ends the loop."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(max(self.interval_s, 30.0)):
                    await self.check()
            except Exception as exc:  # visibility or the state file unreadable: next time
                log.warning("stuck check failed: %s", type(exc).__name__, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
