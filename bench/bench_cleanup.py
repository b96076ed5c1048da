"""Benchmark: cleanup_stale_rooms against a one-at-a-time loop, on a real livekit-server.

    .venv/bin/python bench/bench_cleanup.py [--rooms 1000] [--rounds 3]

Each round creates N stale rooms twice: one batch is cleaned by the one-at-a-time loop the
spec's users would write (list, then delete each room in turn), the other by
`RoomManager.cleanup_stale_rooms` (bounded concurrency, one HTTP session, and a check of
who is really in each room before it is deleted). The order alternates between rounds.
Prints rooms/s for both, the ratio, and the API calls each made.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from livekit import api

from room_recovery.livekit_server import LiveKitServer, ServerConfig
from room_recovery.manager import RoomManager

KEY = "benchkey"


async def create_rooms(lkapi: api.LiveKitAPI, prefix: str, count: int) -> None:
    gate = asyncio.Semaphore(32)

    async def create(index: int) -> None:
        async with gate:
            await lkapi.room.create_room(api.CreateRoomRequest(name=f"{prefix}{index:05d}"))

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            group.create_task(create(index))


async def one_at_a_time(lkapi: api.LiveKitAPI, prefix: str) -> tuple[float, int, int]:
    """The baseline: list, then delete each matching room in turn. (seconds, calls, rooms)"""
    started = time.perf_counter()
    rooms = (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms
    calls, deleted = 1, 0
    for room in rooms:
        if room.name.startswith(prefix) and room.num_participants == 0:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room.name))
            calls += 1
            deleted += 1
    return time.perf_counter() - started, calls, deleted


async def with_manager(url: str, secret: str, prefix: str) -> tuple[float, int, int]:
    """cleanup_stale_rooms over the same kind of batch. (seconds, calls, rooms)"""
    async with RoomManager(url, KEY, secret, 0.001, room_prefix=prefix) as manager:
        started = time.perf_counter()
        report = await manager.cleanup_stale_rooms()
        elapsed = time.perf_counter() - started
        assert report.ok, report.failed
        return elapsed, manager.api_calls, len(report.deleted)


async def main(rooms: int, rounds: int) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    baseline: list[tuple[float, int, int]] = []
    ours: list[tuple[float, int, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        async with (
            LiveKitServer(config, Path(folder)),
            api.LiveKitAPI(config.url, KEY, secret) as lkapi,
        ):
            for round_number in range(rounds):
                await create_rooms(lkapi, f"loop{round_number}-", rooms)
                await create_rooms(lkapi, f"ours{round_number}-", rooms)
                if round_number % 2 == 0:
                    baseline.append(await one_at_a_time(lkapi, f"loop{round_number}-"))
                    ours.append(await with_manager(config.url, secret, f"ours{round_number}-"))
                else:
                    ours.append(await with_manager(config.url, secret, f"ours{round_number}-"))
                    baseline.append(await one_at_a_time(lkapi, f"loop{round_number}-"))
                print(
                    f"round {round_number + 1}: loop {rooms / baseline[-1][0]:.0f} rooms/s, "
                    f"cleanup_stale_rooms {rooms / ours[-1][0]:.0f} rooms/s",
                    flush=True,
                )
    return report(rooms, baseline, ours)


def report(
    rooms: int, baseline: list[tuple[float, int, int]], ours: list[tuple[float, int, int]]
) -> int:
    loop_rate = statistics.median(rooms / seconds for seconds, _, _ in baseline)
    our_rate = statistics.median(rooms / seconds for seconds, _, _ in ours)
    ratio = our_rate / loop_rate
    print()
    print(f"stale rooms per round: {rooms}, rounds: {len(ours)} (medians below)")
    print(f"one-at-a-time loop:    {loop_rate:8.0f} rooms/s   {baseline[0][1]} API calls")
    print(f"cleanup_stale_rooms:   {our_rate:8.0f} rooms/s   {ours[0][1]} API calls")
    print(f"ratio:                 {ratio:8.2f}x   (target: at least 5x)")
    print(
        "API calls per deleted room: loop 1 + listing; cleanup_stale_rooms 2 + listing "
        "(ListParticipants before DeleteRoom, because num_participants lags up to 5 s "
        "and leaves agents out)"
    )
    deleted_everything = all(d == rooms for _, _, d in baseline + ours)
    return 0 if deleted_everything else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.rooms, arguments.rounds)))
