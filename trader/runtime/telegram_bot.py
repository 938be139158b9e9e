"""The Telegram command bot: ``python starter.py telegram``, one process per deployment.

Telegram allows one ``getUpdates`` poller per token (a second one is answered 409 Conflict),
so the commands run in a process of their own, never in every worker. Each command calls the
code of the matching ``starter.py`` command (``trader/runtime/commands.py`` for the
workflows, ``trader/runtime/legacy.py``'s ``control`` for the legacy engine) and answers the
chat with its outcome. Only TELEGRAM_CHAT_IDS may command; any other chat is ignored and its
id logged (the token never is). The same process sends the stuck-symbol alerts
(``stuck_alerts.py``): one process, so one alert per episode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from telegram import Bot, Update
from telegram.error import Conflict, TelegramError
from temporalio.client import Client

from activities.notify import build_notifier, close_notifier
from trader.config import Settings
from trader.core.errors import ConfigError
from trader.core.messages import fmt
from trader.ledger import profit as ledger_profit
from trader.observe.status_table import sort_rows, status_rows, traders_query
from trader.runtime import commands, hybrid, legacy
from trader.runtime.stuck_alerts import StuckAlerts
from trader.telegram.notifier import make_bot

log = logging.getLogger("durable_trader.telegram")
T = TypeVar("T")

HELP = """/status: every symbol's phase and PnL
/profit [days]: realized PnL from the ledger (all time, or the last days)
/forceexit SYMBOL|all: sell now (refused when flat, with why)
/pause [SYMBOL]: no new entries (open trades go on)
/resume [SYMBOL]: entries again
/stop [close]: stop at the next quiet phase (close: sell held positions first)
/help: this"""

_POLL_S = 10
_MAX_TEXT = 4000  # Telegram's limit is 4096 characters
MAX_IN_FLIGHT = 8
"""Commands handled at once (each in its own task): a slow one never holds up ``/status``;
beyond this many the poller waits for one to finish."""

STALE_AFTER_S = 60.0
"""A command sent longer ago than this (``message.date``) is answered as ignored, not run:
Telegram keeps unconfirmed updates for 24 h, so without this a ``/forceexit all`` sent while
the bot was down would run whenever it came back."""


class CommandBot:
    def __init__(
        self,
        settings: Settings,
        client: Client | None,
        *,
        bot: Bot | None = None,
        symbol_timeout_s: float = commands.SYMBOL_TIMEOUT_S,
        stale_after_s: float = STALE_AFTER_S,
        max_in_flight: int = MAX_IN_FLIGHT,
    ):
        """``client``: None in legacy mode (the engine is asked through its request queue).
        ``symbol_timeout_s``: how long one symbol's answer is waited for."""
        assert settings.telegram_token is not None, "TELEGRAM_TOKEN is required"
        self.settings, self.client = settings, client
        self.allowed = set(settings.chat_ids)
        self.bot = bot or make_bot(
            settings.telegram_token.get_secret_value(),
            settings.telegram_api_url,
            timeout_s=_POLL_S + 10,
        )
        self.symbol_timeout_s, self.stale_after_s = symbol_timeout_s, stale_after_s
        self.max_in_flight = max_in_flight
        self.handled = 0
        """Updates processed (answered or ignored)."""
        self.in_flight = 0
        """Updates being handled now."""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and handle updates until ``stop``. Each update gets a task of its own; the
        next poll (which confirms the batch to Telegram) goes out at once, and the last
        offset is confirmed on the way out too, so a stopped bot leaves nothing to serve
        again. Commands still running at the stop are cancelled."""
        offset: int | None = None
        slots = asyncio.Semaphore(self.max_in_flight)
        running: set[asyncio.Task[None]] = set()
        async with self.bot:
            try:
                while not stop.is_set():
                    try:
                        updates = await _until(
                            self.bot.get_updates(offset=offset, timeout=_POLL_S), stop
                        )
                    except Conflict:
                        log.error("another process polls this bot's updates (409): retrying")
                        await _sleep(5, stop)
                        continue
                    except TelegramError as exc:
                        log.warning("getUpdates failed: %s", type(exc).__name__)
                        await _sleep(1, stop)
                        continue
                    for update in updates or ():
                        if not await _until(slots.acquire(), stop):
                            break  # stopping: left unconfirmed, for the next start
                        offset = update.update_id + 1
                        task = asyncio.create_task(self._handle_in_slot(update, slots))
                        running.add(task)
                        task.add_done_callback(running.discard)
            finally:
                for task in list(running):
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                if offset is not None:
                    await self._confirm(offset)

    async def _handle_in_slot(self, update: Update, slots: asyncio.Semaphore) -> None:
        self.in_flight += 1
        try:
            await self.handle(update)
            self.handled += 1
        finally:
            self.in_flight -= 1
            slots.release()

    async def _confirm(self, offset: int) -> None:
        # The poll cancelled at the stop may still hold the update stream for a moment
        # (409): try a few times, then leave it (the next start confirms it; stale commands
        # are ignored anyway).
        for _ in range(10):
            try:
                await self.bot.get_updates(offset=offset, timeout=0)
                return
            except Conflict:
                await asyncio.sleep(0.3)
            except TelegramError as exc:
                log.warning("could not confirm the last updates: %s", type(exc).__name__)
                return

    async def handle(self, update: Update) -> None:
        msg = update.message  # not edited messages: editing an old command never re-runs it
        if msg is None or not msg.text:
            if update.edited_message is not None:
                log.info("ignored an edited message: a command runs when sent, not when edited")
            return
        chat = str(msg.chat_id)
        if chat not in self.allowed:
            log.warning("ignored a message from chat %s: not in TELEGRAM_CHAT_IDS", chat)
            return
        age = time.time() - msg.date.timestamp()
        try:
            if age > self.stale_after_s:
                log.warning("ignored a command sent %.0f s ago: stale", age)
                answer = (
                    f"ignored {msg.text.split()[0]}: sent {age:.0f} s ago (the bot was away); "
                    f"commands older than {self.stale_after_s:g} s are not run. Send it "
                    "again if you still want it."
                )
            else:
                answer = await self.answer(msg.text)
        except Exception as exc:  # a failed command is answered; the bot goes on
            log.warning("command %r failed: %s", msg.text, type(exc).__name__, exc_info=True)
            answer = f"failed: {exc or type(exc).__name__}"
        try:
            await self.bot.send_message(chat_id=chat, text=answer[:_MAX_TEXT])
        except TelegramError as exc:
            log.warning("could not answer a command: %s", type(exc).__name__)

    async def answer(self, text: str) -> str:
        word, *args = text.split()
        command = word.split("@", 1)[0].lower()
        if command == "/status":
            return await self._status()
        if command == "/profit":
            return await self._profit(args)
        if command == "/forceexit" and len(args) == 1:
            return await self._force_exit(args[0])
        if command in ("/pause", "/resume") and len(args) <= 1:
            return await self._control(command[1:], [a.upper() for a in args])
        if command == "/stop" and args in ([], ["close"]):
            return await self._control("stop", [], close=bool(args))
        return HELP if command in ("/help", "/start") else f"not understood: {text}\n\n{HELP}"

    async def _status(self) -> str:
        if self.client is None:
            rows = legacy.legacy_rows(self.settings)
        else:
            rows = sort_rows(
                await status_rows(self.client, traders_query(self.settings.task_queue))
            )
        if not rows:
            return "no symbol running"
        lines = []
        for r in rows:
            memo = r.memo
            held = (
                f" @ {fmt(memo.entry)}, last {fmt(memo.price)}, {fmt(memo.pnl_pct, 2)} %"
                if memo is not None and memo.pnl_pct is not None
                else ""
            )
            lines.append(f"{r.symbol}: {r.phase}{held}")
        return "\n".join(lines)

    async def _profit(self, args: Sequence[str]) -> str:
        days = float(args[0]) if args and _is_number(args[0]) else None
        since = time.time() - days * 86400 if days is not None else None
        # The figures of ``starter.py profit`` (one implementation), in a chat's shape.
        p = await ledger_profit.load(
            self.settings.ledger_target, since=since, counted=hybrid.profit_account(self.settings)
        )
        if not p.symbols:
            period = "" if since is None else " in that period"
            return f"no closed trades{period} ({p.counted})"
        return ledger_profit.to_message(p)

    async def _force_exit(self, target: str) -> str:
        every = target.lower() == "all"
        return await self._sides(
            fsm=lambda client: self._fsm_force_exit(client, target, every=every),
            legacy=lambda: self._legacy("force-exit", [] if every else [target.upper()]),
        )

    async def _control(self, command: str, symbols: list[str], *, close: bool = False) -> str:
        return await self._sides(
            fsm=lambda client: self._fsm_control(client, command, symbols, close=close),
            legacy=lambda: self._legacy(command, symbols, close=close),
        )

    async def _sides(
        self,
        *,
        fsm: Callable[[Client], Awaitable[str]],
        legacy: Callable[[], Awaitable[str]],
    ) -> str:
        """The engine(s) this mode runs. FSM_MODE=both: both, primary first, each answer
        (or failure) on its own lines under its engine and role, as ``starter.py`` does: a
        command given to the shadow only would leave the real account untouched."""
        if self.client is None:
            return await legacy()
        if not hybrid.is_both(self.settings):
            return await fsm(self.client)
        client = self.client
        calls = {hybrid.FSM: lambda: fsm(client), hybrid.LEGACY: legacy}
        roles = hybrid.roles(self.settings)
        lines = []
        for engine in (roles.primary, roles.shadow or ""):
            try:
                text = await calls[engine]()
            except Exception as exc:  # one side's failure is its own answer
                log.warning("%s side failed", engine, exc_info=True)
                text = f"failed: {exc or type(exc).__name__}"
            name = hybrid.label(self.settings, engine)
            lines += [f"{name}: {line}" for line in text.splitlines()]
        return "\n".join(lines)

    async def _fsm_force_exit(self, client: Client, target: str, *, every: bool) -> str:
        symbols = (
            await commands.deployment_symbols(client, self.settings) if every else [target.upper()]
        )
        answers = await commands.force_exit_each(
            client, self.settings, symbols, "telegram", timeout_s=self.symbol_timeout_s
        )
        return "\n".join(answers) or "no symbol running"

    async def _fsm_control(
        self, client: Client, command: str, symbols: list[str], *, close: bool
    ) -> str:
        if command == "stop":
            done = await commands.stop(
                client, self.settings, close_positions=close, timeout_s=self.symbol_timeout_s
            )
            return f"stopping: {', '.join(done)}"
        done = await commands.signal_all(
            client,
            self.settings,
            f"{command}_entries",
            symbols=symbols or None,
            timeout_s=self.symbol_timeout_s,
        )
        return f"{command}d: {', '.join(done)}"

    async def _legacy(self, command: str, symbols: list[str], *, close: bool = False) -> str:
        _, text = await asyncio.to_thread(
            legacy.control,
            self.settings,
            command,
            symbols,
            reason="telegram" if command == "force-exit" else "",
            close_positions=close,
        )
        return text


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


async def _until(call: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Await ``call`` unless ``stop`` is set first (then cancel it: None)."""
    task = asyncio.ensure_future(call)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return None


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def check_settings(settings: Settings) -> None:
    """Refuse to start without a bot and chats (before any client or server starts)."""
    if settings.telegram_token is None or not settings.chat_ids:
        raise ConfigError(
            "starter.py telegram needs TELEGRAM_TOKEN and TELEGRAM_CHAT_IDS in the environment"
        )


async def serve_commands(settings: Settings, client: Client | None, stop: asyncio.Event) -> None:
    """``starter.py telegram``: answer commands, and alert stuck symbols
    (``stuck_alerts.py``), until ``stop`` is set."""
    check_settings(settings)
    log.info("answering Telegram commands from %d chat(s)", len(settings.chat_ids))
    notifier = build_notifier(settings)
    alerts = asyncio.create_task(StuckAlerts(settings, client, notifier).run(stop))
    try:
        await CommandBot(settings, client).run(stop)
    finally:
        alerts.cancel()  # a check still running at the stop is not waited for
        await asyncio.gather(alerts, return_exceptions=True)
        await close_notifier(notifier)
