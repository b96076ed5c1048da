"""Benchmark: a stalled worker is not a dead one. SIGSTOP for 2, 9 and 30 s; what is replaced?

    .venv/bin/python bench/bench_stall.py [--stalls 2,9,30] [--trials 3] [--kind spec]

On a real livekit-server, with the watchdog (worker links on) and one worker of a kind
(`tests/workers/`; default `spec`, the guide's request handler verbatim). Each trial: a
person (rtc) who publishes a microphone joins a fresh room and gets an agent; the worker's
*main* process is stopped (SIGSTOP) for the given time, its job processes keep running; then
SIGCONT, and 8 s to let anything that would happen, happen. Counted per trial: whether the
agent is still the same participant (sid), the dispatches beyond the room's own, the agents
the person saw join, and how long the watchdog held the link silent. Goal: the same agent,
0 dispatches, 0 joins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from livekit import rtc

from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agent_kinds import NAMES, Worker, agents_of, token, until

KEY = "benchkey"
PREFIX = "bs-"
AFTER = 8.0  # seconds after SIGCONT for anything that would happen to happen


async def trial(
    settings: object, watchdog: Watchdog, worker: Worker, kind: str, stall: float
) -> tuple[bool, int, int, float]:
    """(same agent, extra dispatches, agents joined, seconds the link was silent)."""
    room = rtc.Room()
    joined: list[str] = []
    room.on(
        "participant_connected",
        lambda p: (
            joined.append(p.sid) if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT else None
        ),
    )
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    await room.connect(settings.ws_url, token(settings, name, kind))  # type: ignore[attr-defined]
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    silent = 0.0
    try:
        await until(lambda: agents_of(room), 30, "first agent")
        first = agents_of(room)[0].sid
        await until(lambda: bool(watchdog.links.vouched(name)), 10, "the worker's link")
        joined.clear()
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            while time.monotonic() - started < stall:
                await asyncio.sleep(0.1)
                if watchdog.links.silent_count():
                    silent += 0.1
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        await asyncio.sleep(AFTER)
        same = [a.sid for a in agents_of(room)] == [first]
        async with RoomManager(settings=settings) as manager:  # type: ignore[arg-type]
            dispatches = await manager.list_dispatches(name)
        return same, max(0, len(dispatches) - 1), len(joined), silent
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        async with RoomManager(settings=settings) as manager:  # type: ignore[arg-type]
            await manager.delete_room(name)


async def main(stalls: list[float], trials: int, kind: str) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=PREFIX
    )
    results: list[tuple[float, bool, int, int, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        async with LiveKitServer(config, Path(folder)):
            options = WatchdogOptions(agent_name=NAMES[kind], automatic=not NAMES[kind])
            watchdog = Watchdog(settings, options)
            async with running(create_app(watchdog), "127.0.0.1", 0) as url:
                worker = Worker(
                    kind, settings, Path(folder) / "w.log", {WATCHDOG_URL_VARIABLE: url}
                )
                await worker.start()
                try:
                    for stall in stalls:
                        for number in range(trials):
                            same, extra, new, silent = await trial(
                                settings, watchdog, worker, kind, stall
                            )
                            results.append((stall, same, extra, new, silent))
                            print(
                                f"stall {stall:g} s #{number + 1}: same agent {same}, "
                                f"{extra} dispatch(es), {new} join(s), link silent {silent:.1f} s",
                                flush=True,
                            )
                finally:
                    worker.stop()
                lost = watchdog.links.lost_workers
    print()
    print(f"worker {kind}: its main process stopped (SIGSTOP), its jobs running on")
    print("| stall | trials | same agent | dispatches | agents joined | link silent (mean) |")
    print("|-------|--------|------------|------------|---------------|--------------------|")
    for stall in stalls:
        rows = [r for r in results if r[0] == stall]
        print(
            f"| {stall:>4g} s | {len(rows):>6} | {sum(r[1] for r in rows):>4}/{len(rows):<5} | "
            f"{sum(r[2] for r in rows):>10} | {sum(r[3] for r in rows):>13} | "
            f"{sum(r[4] for r in rows) / len(rows):>16.1f} s |"
        )
    print(f"workers the watchdog took for dead: {lost}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalls", default="2,9,30", help="seconds, comma-separated")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--kind", default="spec", choices=list(NAMES))
    arguments = parser.parse_args()
    stalls = [float(s) for s in arguments.stalls.split(",")]
    sys.exit(asyncio.run(main(stalls, arguments.trials, arguments.kind)))
