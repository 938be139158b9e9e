"""``TelegramNotifier``: sends each notification once to every configured chat, through
python-telegram-bot, de-duplicated on its key by the sent-log (``sent_log.py``).

What a failure becomes (the caller, the notify activity, turns these into Temporal terms):

- ``RetryLater(delay)``: Telegram's flood control (429) asked for more time than the attempt
  has left (a shorter ``retry_after`` is waited out here, if the request after the wait
  still fits), the network failed, or another attempt's claim may still be on the wire:
  the next attempt goes after ``delay`` (None: the retry policy's backoff).
- ``Undeliverable``: the token or a chat id is wrong, the bot was blocked: retrying cannot
  help; the message is dropped (logged), trading goes on.

Every chat is tried before a failure is raised (one blocked chat never silences the
others); the raised error stands for all of them: ``RetryLater`` if any chat may still get
it, and the retry sends only to the chats that did not (the sent-log is per (key, chat)).

Error texts are scrubbed of the token before they leave (they end up in workflow histories
and logs); httpx's request log, which prints URLs and so the token, is kept at WARNING.
"""

from __future__ import annotations

import asyncio
import hashlib
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

REQUEST_TIMEOUT_S = 5.0
"""A bound on one ``sendMessage`` round trip."""
DEFAULT_ATTEMPT_S = 10.0
"""How long a send attempt may run when the caller does not say: the notify activity's
start-to-close timeout (``workflows/base.py``) and the legacy engine's wait."""


class RetryLater(Exception):
    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Undeliverable(Exception):
    """Telegram refused the message for good (bad token, unknown chat, bot blocked)."""


def make_bot(token: str, api_url: str, *, timeout_s: float = REQUEST_TIMEOUT_S) -> Bot:
    """A python-telegram-bot ``Bot`` on ``api_url`` (the real API, or the local fake)."""
    request = HTTPXRequest(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        write_timeout=timeout_s,
        pool_timeout=timeout_s,
    )
    return Bot(token, base_url=f"{api_url.rstrip('/')}/bot", request=request)


def sent_key(key: str, text: str) -> str:
    """The sent-log's key: the caller's key and a hash of the text. A key that comes back
    for another message (a workflow reset, a rollback of ``notify_seq``) is another entry,
    so it is sent; the same message under the same key is not."""
    return f"{key}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def retry_after_seconds(exc: RetryAfter) -> float:
    value = exc._retry_after  # the timedelta behind the (deprecation-warning) property
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramNotifier:
    def __init__(
        self,
        *,
        token: str,
        chat_ids: list[str],
        api_url: str,
        sent_log: Path,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._token = token
        self.chat_ids = chat_ids
        self.request_timeout_s = request_timeout_s
        """A bound on one ``sendMessage`` round trip (a 429 is waited out only when the
        request after the wait still ends before the attempt's deadline)."""
        self.bot = make_bot(token, api_url, timeout_s=request_timeout_s)
        self.log = SentLog(sent_log)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def send(
        self,
        text: str,
        *,
        key: str = "",
        deadline: float | None = None,
        attempt_s: float | None = None,
    ) -> None:
        """Send ``text`` to every chat not yet sent it under ``key`` (empty: no de-duplication).

        Every chat is tried, whatever the others did; then the failures are raised together
        (``RetryLater`` if any chat may succeed later, else ``Undeliverable``): a retry sends
        only to the chats that did not get it (the sent-log is per (key, chat)).

        ``deadline`` (``time.monotonic()``): a 429 whose wait, and the request after it,
        would end after it raises ``RetryLater`` instead of waiting. ``attempt_s``: how long
        an attempt may run (the activity's start-to-close timeout; default
        ``DEFAULT_ATTEMPT_S``): another attempt's claim younger than that may still be on
        the wire (retry later), an older one is in doubt (not resent).
        """
        busy_s = DEFAULT_ATTEMPT_S if attempt_s is None else attempt_s
        dedup_key = sent_key(key, text) if key else ""
        failures: list[RetryLater | Undeliverable] = []
        for n, chat in enumerate(self.chat_ids, 1):
            try:
                await self._send_to(chat, text, dedup_key, deadline, busy_s)
            except (RetryLater, Undeliverable) as exc:
                failures.append(_for_chat(exc, n, len(self.chat_ids)))
        if failures:
            raise _combined(failures)

    async def _send_to(
        self, chat: str, text: str, key: str, deadline: float | None, busy_s: float
    ) -> None:
        if key:
            claim, age = await self.log.claim(key, chat, busy_s=busy_s)
            if claim is Claim.SENT:
                log.info("notification %s already sent to a chat: not sent again", key)
                return
            if claim is Claim.BUSY:
                raise RetryLater(
                    f"another attempt claimed it {age:.1f} s ago and may still be sending it",
                    delay=max(busy_s - age, 0.1),
                )
            if claim is Claim.IN_DOUBT:
                log.warning(
                    "notification %s: an earlier attempt died during its request; whether "
                    "Telegram got it is unknown, not sent again (never twice)",
                    key,
                )
                return
        wire = _Wire()
        try:
            await self._send_one(chat, text, deadline, wire)
        except (RetryLater, Undeliverable):
            # Telegram said no, or the request failed in this process: the next attempt
            # resends (a request that timed out may have arrived: see docs/telegram.md).
            if key:
                await self.log.release(key, chat)
            raise
        except BaseException:
            # Cancelled (a worker shutting down, the legacy engine's timeout) or a bug:
            # release only if no request can have reached Telegram; otherwise the claim
            # stays, in doubt, and the message is not resent.
            if key and not wire.on:
                await asyncio.shield(self.log.release(key, chat))
            raise
        if key:
            await self.log.sent(key, chat)

    async def _send_one(self, chat: str, text: str, deadline: float | None, wire: _Wire) -> None:
        while True:
            try:
                wire.on = True
                async with asyncio.timeout(self.request_timeout_s):
                    await self.bot.send_message(chat_id=chat, text=text)
                return
            except RetryAfter as exc:
                wire.on = False  # refused by flood control: not delivered
                wait = retry_after_seconds(exc)
                if deadline is not None and (
                    time.monotonic() + wait + self.request_timeout_s > deadline
                ):
                    raise RetryLater(
                        f"Telegram flood control: retry in {wait:g} s", delay=wait
                    ) from None
                log.info("Telegram flood control: waiting %g s", wait)
                await asyncio.sleep(wait)
            except (InvalidToken, Forbidden, BadRequest, ChatMigrated) as exc:
                raise Undeliverable(self.scrub(f"{type(exc).__name__}: {exc}")) from None
            except TelegramError as exc:  # network, timeout, 5xx: the next attempt resends
                raise RetryLater(self.scrub(f"{type(exc).__name__}: {exc}")) from None
            except TimeoutError:
                raise RetryLater(
                    f"no answer from Telegram in {self.request_timeout_s:g} s"
                ) from None

    async def close(self) -> None:
        await self.bot.shutdown()
        self.log.close()


class _Wire:
    """Whether a request that may have reached Telegram is (or was last) in flight."""

    on = False


def _for_chat(exc: RetryLater | Undeliverable, n: int, total: int) -> RetryLater | Undeliverable:
    # Chats by position, never by id: the text goes into workflow histories.
    text = f"chat {n} of {total}: {exc}"
    return RetryLater(text, delay=exc.delay) if isinstance(exc, RetryLater) else Undeliverable(text)


def _combined(failures: list[RetryLater | Undeliverable]) -> RetryLater | Undeliverable:
    text = "; ".join(str(f) for f in failures)
    later = [f for f in failures if isinstance(f, RetryLater)]
    if not later:
        return Undeliverable(text)
    # Wait as long as the longest flood-control (or busy) delay; none known: the backoff.
    delays = [f.delay for f in later if f.delay is not None]
    return RetryLater(text, delay=max(delays) if delays else None)
