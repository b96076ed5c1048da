"""Participants without media, for benchmarks: each holds only LiveKit's signalling socket.

    python bench/signal_participants.py URL KEY SECRET PREFIX FIRST COUNT

Joins rooms PREFIX{FIRST}..PREFIX{FIRST+COUNT-1}, each with a person (`person-N`) and an
agent (`agent-N`, participant kind agent, no heartbeat), answers the server's pings, prints
`READY <joined>` and holds them until its standard input closes; then prints `LEFT <n>`,
the sockets the server closed on its own while they were held.

The rtc SDK opens a peer connection per participant: joining 200 took 52 s here, and
holding them 1.2 CPU-seconds a second in the holding process, which would leave no core for
what is being measured at 1,000 participants. A signalling socket alone is a JOINED
participant that ListParticipants and the room listing show, and costs the server a socket.
But livekit-server 1.13.5 removes a participant that is not ACTIVE (no peer connection) a
minute after its join (`JOIN_TIMEOUT`, `rtc/room.go`): measure within that minute.
(Joining each again before then, which replaces it in place, kept 4,000 participants but
loaded this 2-core machine's server until API calls timed out.)
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
from livekit import api
from livekit.protocol import rtc as signal

PROTOCOL = 15


def token(key: str, secret: str, room: str, identity: str, kind: str) -> str:
    grant = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if kind:
        grant = grant.with_kind(kind)  # type: ignore[arg-type]
    return grant.to_jwt()


class Holder:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.replace("http", "ws", 1)
        self.closed = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def connect(self, jwt: str) -> tuple[aiohttp.ClientWebSocketResponse, int]:
        ws = await self.session.ws_connect(
            f"{self.url}/rtc?access_token={jwt}&protocol={PROTOCOL}&auto_subscribe=0"
        )
        first = signal.SignalResponse()
        first.ParseFromString((await ws.receive()).data)
        if first.WhichOneof("message") != "join":
            raise RuntimeError(f"expected a join response, got {first}")
        return ws, max(1, first.join.ping_interval)

    async def join(self, jwt: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            ws, interval = await self.connect(jwt)
        task = asyncio.create_task(self.hold(ws, interval))
        self.tasks.add(task)

    async def hold(self, ws: aiohttp.ClientWebSocketResponse, interval: int) -> None:
        async def ping() -> None:
            while not ws.closed:
                ping = signal.SignalRequest(ping=int(time.time() * 1000))
                await ws.send_bytes(ping.SerializeToString())
                await asyncio.sleep(interval)

        pinger = asyncio.create_task(ping())
        try:
            async for _message in ws:  # offers, trickles, pongs: read and dropped
                pass
            self.closed += 1
        finally:
            pinger.cancel()
            await ws.close()


async def main(url: str, key: str, secret: str, prefix: str, first: int, count: int) -> None:
    gate = asyncio.Semaphore(25)
    # a held socket is a connection: no pool limit (aiohttp allows 100 by default)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        holder = Holder(session, url)
        joins = []
        for n in range(first, first + count):
            room = f"{prefix}{n}"
            for identity, kind in ((f"person-{n}", ""), (f"agent-{n}", "agent")):
                joins.append(holder.join(token(key, secret, room, identity, kind), gate))
        await asyncio.gather(*joins)
        print(f"READY {len(joins)}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it
        closed = holder.closed
        for task in holder.tasks:
            task.cancel()
        await asyncio.gather(*holder.tasks, return_exceptions=True)
        print(f"LEFT {closed}", flush=True)


if __name__ == "__main__":
    url, key, secret, prefix, first, count = sys.argv[1:7]
    asyncio.run(main(url, key, secret, prefix, int(first), int(count)))
