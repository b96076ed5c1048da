"""What a LiveKit cluster and our watchdogs do while the Redis they share does not answer.

    .venv/bin/python bench/redis_down.py [--nodes 2] [--down 10] [--after 30]

Starts `room-recovery up --nodes N` and a second watchdog (`bench/chaos_cluster.py`), puts
one person with an agent on each node, then SIGSTOPs the redis-server for --down seconds
(its sockets stay open and nothing answers: a hung Redis, or one cut off by the network; a
Redis that is stopped refuses connections at once instead, the gentler case) and SIGCONTs
it. Every probe round (about every 2 s, from 5 s before the stop to --after seconds after
it resumed) it tries, on each node: a new person joining a new room, with the agent in the
token (connected? agent within 10 s?); ListRooms and CreateRoom through that node's API;
a CreateDispatch into an existing room. It follows the people already in: still connected,
agent still there. And it asks both watchdogs who leads. Prints one line per round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from livekit import api, rtc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_cluster import Cluster, own_cluster, part_pids, roles, token

AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
CALL = 3.0  # seconds each API probe may take
JOIN = 10.0  # seconds a new person may take to connect and see an agent


@dataclass
class Person:
    room: rtc.Room
    name: str
    node: int
    gone: bool = False

    def has_agent(self) -> bool:
        return any(p.kind == AGENT for p in self.room.remote_participants.values())


async def join(cluster: Cluster, node: int, room: str) -> tuple[Person | None, str]:
    """A new person on `node`: (the person, "agent in X s" / what failed)."""
    started = time.monotonic()
    person = Person(rtc.Room(), room, node)
    person.room.on("disconnected", lambda *_: setattr(person, "gone", True))
    url = f"ws://127.0.0.1:{cluster.node_ports[node]}"
    try:
        # never cancelled: a connect cut short makes the rtc SDK's FFI panic (see chaos.py)
        await person.room.connect(url, token(cluster, room, f"p-{room}"))
    except rtc.ConnectError as exc:
        return None, f"no join after {time.monotonic() - started:.1f}s ({type(exc).__name__})"
    joined = time.monotonic()
    while time.monotonic() - joined < JOIN:
        if person.has_agent():
            return person, f"agent {time.monotonic() - started:.1f}s"
        await asyncio.sleep(0.1)
    return person, f"joined in {joined - started:.1f}s, no agent in {JOIN:g}s"


async def api_probe(cluster: Cluster, node: int, existing: str) -> dict[str, str]:
    settings = cluster.settings
    url = f"http://127.0.0.1:{cluster.node_ports[node]}"
    out = {}
    async with api.LiveKitAPI(url, settings.livekit_api_key, settings.livekit_api_secret) as lk:
        calls = {
            "list": lambda: lk.room.list_rooms(api.ListRoomsRequest()),
            "create": lambda: lk.room.create_room(
                api.CreateRoomRequest(name=f"chaos-probe-{secrets.token_hex(3)}")
            ),
            "dispatch": lambda: lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(room=existing, agent_name="no-such-agent")
            ),
        }
        for name, call in calls.items():
            started = time.monotonic()
            try:
                await asyncio.wait_for(call(), CALL)
                out[name] = f"ok {time.monotonic() - started:.1f}s"
            except TimeoutError:
                out[name] = "hangs"
            except (api.TwirpError, aiohttp.ClientError, OSError) as exc:
                out[name] = f"error {getattr(exc, 'code', type(exc).__name__)}"
    return out


async def main(args: argparse.Namespace) -> int:
    # SIGTERM (or an FFI panic, which the rtc SDK turns into one) cancels the run, so that
    # the cluster and the second watchdog it started are stopped on the way out
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with own_cluster(args.nodes) as cluster:
        print(f"cluster: {cluster.nodes} nodes, state {cluster.state_dir}", flush=True)
        async with aiohttp.ClientSession() as http:
            for _ in range(60):  # both watchdogs up, one leading
                found = await roles(http, cluster.watch_ports)
                if sorted(map(str, found)) == ["leader", "standby"]:
                    break
                await asyncio.sleep(0.5)
            people = []
            for node in range(cluster.nodes):
                person, outcome = await join(cluster, node, f"chaos-before-{node}")
                print(f"before: a person on node {node + 1}: {outcome}", flush=True)
                if person is not None:
                    people.append(person)
            redis = part_pids(cluster.state_dir)["redis"]
            stop_at = time.monotonic() + 5
            resume_at = stop_at + args.down
            phase = "before"

            async def probe_round(number: int) -> str:
                t, now_phase = time.monotonic() - stop_at, phase
                existing = people[0].name if people else "chaos-before-0"
                found, probes, joins = await asyncio.gather(
                    roles(http, cluster.watch_ports),
                    asyncio.gather(
                        *(api_probe(cluster, k, existing) for k in range(cluster.nodes))
                    ),
                    asyncio.gather(
                        *(join(cluster, k, f"chaos-r{number}-{k}") for k in range(cluster.nodes))
                    ),
                )
                for person, _ in joins:
                    if person is not None:
                        await person.room.disconnect()
                held = [
                    f"n{p.node + 1}:{'gone' if p.gone else 'in'}"
                    f"{'+agent' if p.has_agent() and not p.gone else ''}"
                    for p in people
                ]
                cells = [f"t={t:+5.1f}s {now_phase:<6} watchdogs {found}"]
                for k in range(cluster.nodes):
                    cells.append(
                        f"node {k + 1}: join {joins[k][1]}; "
                        + ", ".join(f"{name} {v}" for name, v in probes[k].items())
                    )
                cells.append("people in: " + " ".join(held))
                line = " | ".join(cells)
                print(line, flush=True)
                return line

            rounds: list[asyncio.Task[str]] = []
            number = 0
            while time.monotonic() < resume_at + args.after:
                if phase == "before" and time.monotonic() >= stop_at:
                    os.kill(redis, signal.SIGSTOP)
                    phase = "down"
                if phase == "down" and time.monotonic() >= resume_at:
                    os.kill(redis, signal.SIGCONT)
                    phase = "after"
                rounds.append(asyncio.create_task(probe_round(number)))
                number += 1
                await asyncio.sleep(2.0)
            if phase == "down":
                os.kill(redis, signal.SIGCONT)
            print("\nin order:")
            lines = await asyncio.gather(*rounds)
            for line in sorted(lines, key=lambda x: float(x[2:8].strip().rstrip("s"))):
                print(line)
            for person in people:
                await person.room.disconnect()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--down", type=float, default=10.0, help="seconds Redis is stopped")
    parser.add_argument("--after", type=float, default=30.0, help="seconds followed after")
    sys.exit(asyncio.run(main(parser.parse_args())))
