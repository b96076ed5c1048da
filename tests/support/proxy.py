"""A TCP proxy in front of livekit-server's API that can stall some calls or refuse all.

    async with FaultyProxy(server_port) as proxy:
        proxy.stall_when(b"ListParticipants", b"room-name")  # those requests never get an answer
        proxy.refusing = True                                 # every new connection is closed

Each request on a connection (aiohttp sends one at a time) is held for good when its bytes,
from its `POST` on, contain every marker: a server that stops answering one call, as a
stuck room or a dropped packet would, while every other call goes through.
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self.stalled = 0  # requests held so far
        self._markers: tuple[bytes, ...] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def stall_when(self, *markers: bytes) -> None:
        self._markers = markers

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self._writers.add(client_w)
        if self.refusing:
            client_w.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        for pump in (self._pump(client_r, server_w, True), self._pump(server_r, client_w, False)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        """Copy one direction; upstream, hold a request that carries every marker."""
        request = b""
        try:
            while chunk := await reader.read(65536):
                if upstream:
                    start = chunk.rfind(b"POST ")
                    request = chunk[start:] if start >= 0 else request + chunk
                    if self._markers and all(marker in request for marker in self._markers):
                        self.stalled += 1
                        await asyncio.Event().wait()  # held until the proxy closes
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
