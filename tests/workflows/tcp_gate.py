"""A TCP proxy in front of the Temporal server that can hold a client's requests.

A client connected through it is a worker whose network stalls: while the gate is closed,
what the client sends waits in the proxy (its Updates are neither delivered nor failed);
opening the gate delivers them, late, as a slow network or a paused process would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpGate:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.open = asyncio.Event()
        self.open.set()
        self.target = ""
        """host:port to connect the client to."""
        self._pipes: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await src.read(65536):
                if gated:
                    await self.open.wait()
                dst.write(chunk)
                await dst.drain()
        dst.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        for pipe in (
            self._pipe(reader, up_writer, gated=True),
            self._pipe(up_reader, writer, gated=False),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


@contextlib.asynccontextmanager
async def tcp_gate(upstream: str) -> AsyncIterator[TcpGate]:
    gate = TcpGate(upstream)
    server = await asyncio.start_server(gate._serve, "127.0.0.1", 0)
    gate.target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield gate
    finally:
        gate.open.set()
        server.close()
        for task in list(gate._pipes):
            task.cancel()
        await asyncio.gather(*gate._pipes, return_exceptions=True)
