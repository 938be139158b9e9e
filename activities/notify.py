"""Notification activity and the deployment's notifier: Telegram when TELEGRAM_TOKEN and
TELEGRAM_CHAT_IDS are set, the log otherwise. The workflow never lets a failed notification
block or fail trading (it runs in the background and its failure is only logged)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from trader import contracts as c
from trader.config import Settings
from trader.telegram.notifier import RetryLater, TelegramNotifier, Undeliverable

log = logging.getLogger("durable_trader.notify")

_MARGIN_S = 1.0
"""Of an attempt's start-to-close timeout, kept for answering Temporal (the notifier itself
keeps its request's timeout free after any 429 wait)."""


class Notifier(Protocol):
    async def send(
        self,
        text: str,
        *,
        key: str = "",
        deadline: float | None = None,
        attempt_s: float | None = None,
    ) -> None:
        """Deliver ``text`` once per ``key``; ``deadline`` (monotonic) bounds any wait;
        ``attempt_s``: how long one attempt may run (its start-to-close timeout)."""
        ...


class LogNotifier:
    """Writes notifications to the log (no Telegram configured, or a both-mode shadow's,
    which are never sent: ``prefix`` says so in the line, e.g. ``legacy shadow, not sent``)."""

    def __init__(self, prefix: str = "") -> None:
        self.sent: list[str] = []
        self.prefix = prefix

    async def send(
        self,
        text: str,
        *,
        key: str = "",
        deadline: float | None = None,
        attempt_s: float | None = None,
    ) -> None:
        self.sent.append(text)
        if self.prefix:
            log.info("notify (%s): %s", self.prefix, text)
        else:
            log.info("notify: %s", text)


def build_notifier(settings: Settings | None = None) -> Notifier:
    """This deployment's notifier, for both engines (the worker's notify activity and the
    legacy engine): Telegram when a token and chat ids are in the environment."""
    if settings is None or settings.telegram_token is None or not settings.chat_ids:
        return LogNotifier()
    return TelegramNotifier(
        token=settings.telegram_token.get_secret_value(),
        chat_ids=settings.chat_ids,
        api_url=settings.telegram_api_url,
        sent_log=settings.data_dir / "telegram_sent.sqlite",
    )


async def close_notifier(notifier: Notifier) -> None:
    if isinstance(notifier, TelegramNotifier):
        await notifier.close()


class NotifyActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name=c.NOTIFY)
    async def notify(self, note: c.Notification) -> None:
        info = activity.info()
        timeout = info.start_to_close_timeout
        deadline = time.monotonic() + timeout.total_seconds() - _MARGIN_S if timeout else None
        try:
            await self.notifier.send(
                note.text,
                key=note.key,
                deadline=deadline,
                attempt_s=timeout.total_seconds() if timeout else None,
            )
        except RetryLater as exc:
            delay = timedelta(seconds=exc.delay) if exc.delay is not None else None
            raise ApplicationError(
                str(exc), type="NotifyRetryLater", next_retry_delay=delay
            ) from None
        except Undeliverable as exc:
            log.warning("notification %s (%s) undeliverable: %s", note.key, note.kind, exc)
            raise ApplicationError(
                str(exc), type="NotifyUndeliverable", non_retryable=True
            ) from None
