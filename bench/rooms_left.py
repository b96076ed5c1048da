"""Which rooms a node kill or a Redis restart leaves behind, and how long until they go.

    .venv/bin/python bench/rooms_left.py [--fault node|redis|both] [--node 2] [--follow 420]

Starts `room-recovery up --nodes 2` (`bench/chaos_cluster.py`, default stale timeout
300 s), puts people with an agent in rooms on the second node, strikes the fault (SIGKILL
of that node, which `up` starts again; or SIGKILL of Redis, which `up` starts again,
empty), then the people leave as the chaos bench's do: some say goodbye (`room_cleanup`
is not sent here: they disconnect), some vanish (their connection is dropped with the
node). Every 10 s, for --follow seconds, it lists the rooms each node still reports and who
is in them, and prints when the last one went. The rooms we touch are only our own
(`chaos-left-...`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
from livekit import api, rtc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_cluster import Cluster, own_cluster, part_pids, part_states, token

AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
PEOPLE = 3


async def seated(cluster: Cluster, node: int, room: str) -> rtc.Room | None:
    person = rtc.Room()
    url = f"ws://127.0.0.1:{cluster.node_ports[node]}"
    await person.connect(url, token(cluster, room, f"p-{room}"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(p.kind == AGENT for p in person.remote_participants.values()):
            return person
        await asyncio.sleep(0.1)
    print(f"  {room}: no agent in 20 s", flush=True)
    return person


async def listing(cluster: Cluster, prefix: str) -> dict[str, list[str]]:
    """Our rooms as any node answers, with who is in each; {} entries when none answers."""
    settings = cluster.settings
    for port in cluster.node_ports:
        url = f"http://127.0.0.1:{port}"
        try:
            async with api.LiveKitAPI(
                url, settings.livekit_api_key, settings.livekit_api_secret
            ) as lk:
                rooms = await asyncio.wait_for(lk.room.list_rooms(api.ListRoomsRequest()), 4)
                found = {}
                for room in rooms.rooms:
                    if not room.name.startswith(prefix):
                        continue
                    listed = await asyncio.wait_for(
                        lk.room.list_participants(api.ListParticipantsRequest(room=room.name)), 4
                    )
                    found[room.name] = [
                        f"{p.identity}:{api.ParticipantInfo.State.Name(p.state)}"
                        for p in listed.participants
                    ]
                return found
        except (TimeoutError, api.TwirpError, aiohttp.ClientError, OSError):
            continue
    return {"(no node answers)": []}


async def wait_running(cluster: Cluster, part: str, old_pid: int) -> float:
    """Seconds until `up` runs `part` again: a new pid, healthy."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        pid = part_pids(cluster.state_dir).get(part)
        if pid not in (None, old_pid) and part_states(cluster.state_dir).get(part) == "healthy":
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    return float("nan")


async def main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    prefix = "chaos-left-"
    with own_cluster(2, second_watch=False) as cluster:
        print(f"cluster: 2 nodes, state {cluster.state_dir}", flush=True)
        await asyncio.sleep(3)
        people = []
        for n in range(PEOPLE):
            person = await seated(cluster, args.node - 1, f"{prefix}{n}")
            if person is not None:
                people.append(person)
        print(
            f"{len(people)} people with an agent on node {args.node}:",
            await listing(cluster, prefix),
        )
        pids = part_pids(cluster.state_dir)
        if args.fault in ("node", "both"):
            part = cluster.node_part(args.node - 1)
            os.kill(pids[part], signal.SIGKILL)
            back = await wait_running(cluster, part, pids[part])
            print(
                f"node {args.node} SIGKILLed; up had it running again in {back:.1f} s", flush=True
            )
        if args.fault in ("redis", "both"):
            os.kill(pids["redis"], signal.SIGKILL)
            back = await wait_running(cluster, "redis", pids["redis"])
            print(f"redis SIGKILLed; up had it running again in {back:.1f} s", flush=True)
        for person in people:  # they leave, as the chaos bench's people do
            await person.disconnect()
        left_at = time.monotonic()
        print("the people left; following the rooms:", flush=True)
        last: dict[str, list[str]] = {}
        gone_after = None
        while time.monotonic() - left_at < args.follow:
            found = await listing(cluster, prefix)
            t = time.monotonic() - left_at
            if found != last:
                print(f"  t={t:5.0f}s {len(found)} room(s): {found}", flush=True)
                last = found
            if not found and gone_after is None:
                gone_after = t
                if args.stop_when_gone:
                    break
            await asyncio.sleep(10)
        print(
            f"all rooms gone {gone_after:.0f} s after the people left"
            if gone_after is not None
            else f"rooms still there after {args.follow:g} s: {sorted(last)}"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", choices=("node", "redis", "both"), default="node")
    parser.add_argument("--node", type=int, choices=(1, 2), default=2, help="whose people, killed")
    parser.add_argument("--follow", type=float, default=420.0, help="seconds to follow the rooms")
    parser.add_argument("--stop-when-gone", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
