"""Notification activity. Log-only until the Telegram issue plugs a bot in behind
``Notifier``; the workflow never lets a failed notification block trading."""

from __future__ import annotations

import logging
from typing import Protocol

from temporalio import activity

from trader import contracts as c

log = logging.getLogger("durable_trader.notify")


class Notifier(Protocol):
    async def send(self, text: str) -> None: ...


class LogNotifier:
    """Writes notifications to the log (used when no Telegram token is configured)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)
        log.info("notify: %s", text)


def build_notifier() -> Notifier:
    """This deployment's notifier, for both engines (the worker's notify activity and the
    legacy engine): log only until a Telegram bot is plugged in here."""
    return LogNotifier()


class NotifyActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name=c.NOTIFY)
    async def notify(self, note: c.Notification) -> None:
        await self.notifier.send(note.text)
