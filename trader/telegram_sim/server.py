"""The fake Bot API server (aiohttp), run in a thread of its own: usable from sync and async
tests alike, and by worker processes over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class SentMessage:
    token: str
    chat_id: str
    text: str
    ts: float


@dataclass
class Fault:
    kind: str
    """fail | rate_limit | hang"""
    count: int = 1
    status: int = 500
    retry_after: int = 1
    seconds: float = 30.0
    match: str = ""
    """Only messages containing this text (empty: any)."""
    chat: str = ""
    """Only messages to this chat (empty: any)."""


class FakeBotApi:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.messages: list[SentMessage] = []
        self.faults: list[Fault] = []
        self.refused: list[str] = []
        """sendMessage calls answered with a fault (their texts), in order."""
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1
        self._polling = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    # --- control (any thread) ------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def texts(self, chat_id: str | None = None) -> list[str]:
        with self._lock:
            return [m.text for m in self.messages if chat_id is None or m.chat_id == chat_id]

    def pending_updates(self) -> int:
        """Updates not yet confirmed (Telegram serves them again to the next poller)."""
        with self._lock:
            return len(self._updates)

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def inject(
        self, chat_id: str, text: str, *, date: float | None = None, edited: bool = False
    ) -> None:
        """A user's message in ``chat_id``, served by the next ``getUpdates``.

        ``date``: when the user sent it (epoch seconds; default now): an older one is a
        command sent while the bot was down. ``edited``: an ``edited_message`` update (the
        user edited an earlier message to this text), as Telegram sends it."""
        with self._lock:
            uid, self._next_update = self._next_update, self._next_update + 1
            chat = int(chat_id)
            entities = (
                [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
                if text.startswith("/")
                else []
            )
            message: dict[str, Any] = {
                "message_id": 10_000 + uid,
                "date": int(time.time() if date is None else date),
                "chat": {"id": chat, "type": "private"},
                "from": {"id": chat, "is_bot": False, "first_name": "operator"},
                "text": text,
                "entities": entities,
            }
            if edited:
                message["edit_date"] = int(time.time())
            self._updates.append(
                {"update_id": uid, "edited_message" if edited else "message": message}
            )
        if self._loop is not None and self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeBotApi:
        self._thread = threading.Thread(target=self._serve, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Bot API did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._new_update = asyncio.Event()
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/bot{token}/{method}", self._api)
        app.router.add_get("/_sim/messages", self._get_messages)
        app.router.add_post("/_sim/updates", self._post_update)
        app.router.add_post("/_sim/fault", self._post_fault)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    # --- the Bot API -----------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        params = await _params(request)
        method = request.match_info["method"]
        token = request.match_info["token"]
        if method == "getMe":
            return _ok({"id": 4242, "is_bot": True, "first_name": "sim", "username": "sim_bot"})
        if method == "sendMessage":
            return await self._send(token, params)
        if method == "getUpdates":
            return await self._get_updates(request, params)
        return _ok(True)

    async def _send(self, token: str, params: dict[str, Any]) -> web.Response:
        chat, text = str(params.get("chat_id")), str(params.get("text", ""))
        with self._lock:
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.match in text and f.chat in ("", chat) and f.count > 0
                ),
                None,
            )
            if fault is not None:
                fault.count -= 1
            if fault is None or fault.kind == "hang":
                self.messages.append(SentMessage(token, chat, text, time.time()))
            else:
                self.refused.append(text)
            mid, self._next_message = self._next_message, self._next_message + 1
        if fault is not None and fault.kind == "rate_limit":
            return _error(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                parameters={"retry_after": fault.retry_after},
            )
        if fault is not None and fault.kind == "fail":
            return _error(fault.status, "Internal Server Error")
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        return _ok(
            {
                "message_id": mid,
                "date": int(time.time()),
                "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else 0, "type": "private"},
                "text": text,
            }
        )

    async def _get_updates(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        if self._polling:
            return _error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
            )
        self._polling += 1
        try:
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + float(params.get("timeout") or 0)
            assert self._new_update is not None
            while True:
                with self._lock:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                    ready = list(self._updates)
                    self._new_update.clear()
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return _ok(ready)
                if request.transport is None or request.transport.is_closing():
                    return _ok([])  # the poller hung up: its poll ends (a new one may come)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_update.wait(), timeout=min(left, 0.2))
        finally:
            self._polling -= 1

    # --- control over HTTP ---------------------------------------------------------------
    async def _get_messages(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response([asdict(m) for m in self.messages])

    async def _post_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.inject(str(body["chat_id"]), str(body["text"]))
        return web.json_response({"ok": True})

    async def _post_fault(self, request: web.Request) -> web.Response:
        self.add_fault(Fault(**await request.json()))
        return web.json_response({"ok": True})


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.post()
    out: dict[str, Any] = {}
    for k, v in form.items():
        raw = v if isinstance(v, str) else ""
        try:
            out[k] = json.loads(raw)
        except ValueError:
            out[k] = raw
    return out


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, **extra: Any) -> web.Response:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return web.json_response(body, status=status)
