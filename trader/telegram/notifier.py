"""``TelegramNotifier``: sends each notification once to every configured chat, through
python-telegram-bot, de-duplicated on its key by the sent-log (``sent_log.py``).

What a failure becomes (the caller, the notify activity, turns these into Temporal terms):

- ``RetryLater(delay)``: Telegram's flood control (429) asked for more time than the attempt
  has left (a shorter ``retry_after`` is waited out here), or the network failed: the next
  attempt goes after ``delay`` (None: the retry policy's backoff).
- ``Undeliverable``: the token or a chat id is wrong, the bot was blocked: retrying cannot
  help; the message is dropped (logged), trading goes on.

Error texts are scrubbed of the token before they leave (they end up in workflow histories
and logs); httpx's request log, which prints URLs and so the token, is kept at WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from trader.telegram.sent_log import Claim, SentLog

log = logging.getLogger("durable_trader.telegram")
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the bot URL

DEFAULT_API_URL = "https://api.telegram.org"


class RetryLater(Exception):
    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Undeliverable(Exception):
    """Telegram refused the message for good (bad token, unknown chat, bot blocked)."""


def make_bot(token: str, api_url: str, *, timeout_s: float = 5.0) -> Bot:
    """A python-telegram-bot ``Bot`` on ``api_url`` (the real API, or the local fake)."""
    request = HTTPXRequest(connect_timeout=timeout_s, read_timeout=timeout_s)
    return Bot(token, base_url=f"{api_url.rstrip('/')}/bot", request=request)


def retry_after_seconds(exc: RetryAfter) -> float:
    value = exc._retry_after  # the timedelta behind the (deprecation-warning) property
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramNotifier:
    def __init__(self, *, token: str, chat_ids: list[str], api_url: str, sent_log: Path) -> None:
        self._token = token
        self.chat_ids = chat_ids
        self.bot = make_bot(token, api_url)
        self.log = SentLog(sent_log)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def send(self, text: str, *, key: str = "", deadline: float | None = None) -> None:
        """Send ``text`` to every chat not yet sent it under ``key`` (empty: no de-duplication).

        ``deadline`` (``time.monotonic()``): a 429 whose wait ends after it raises
        ``RetryLater`` instead of waiting.
        """
        for chat in self.chat_ids:
            claim = self.log.claim(key, chat) if key else Claim.MINE
            if claim is Claim.SENT:
                log.info("notification %s already sent to a chat: not sent again", key)
                continue
            if claim is Claim.IN_DOUBT:
                log.warning(
                    "notification %s: an earlier attempt died during its request; whether "
                    "Telegram got it is unknown, not sent again (never twice)",
                    key,
                )
                continue
            try:
                await self._send_one(chat, text, deadline)
            except BaseException:
                if key:
                    self.log.release(key, chat)
                raise
            if key:
                self.log.sent(key, chat)

    async def _send_one(self, chat: str, text: str, deadline: float | None) -> None:
        while True:
            try:
                await self.bot.send_message(chat_id=chat, text=text)
                return
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise RetryLater(
                        f"Telegram flood control: retry in {wait:g} s", delay=wait
                    ) from None
                log.info("Telegram flood control: waiting %g s", wait)
                await asyncio.sleep(wait)
            except (InvalidToken, Forbidden, BadRequest, ChatMigrated) as exc:
                raise Undeliverable(self.scrub(f"{type(exc).__name__}: {exc}")) from None
            except TelegramError as exc:  # network, timeout, 5xx: the next attempt resends
                raise RetryLater(self.scrub(f"{type(exc).__name__}: {exc}")) from None

    async def close(self) -> None:
        await self.bot.shutdown()
        self.log.close()
