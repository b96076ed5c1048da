"""Benchmark: an agent killed mid-session, and how long until the person has an agent again.

    .venv/bin/python bench/bench_recovery.py [--kills 20] [--baseline 3]

On a real livekit-server with one real demo-agent worker. Each trial: a person connects
(token dispatch), the agent joins, then the agent's job process is SIGKILLed; the clock
runs until a *new* agent is visible to the person.

* watchdog: the watchdog runs (in this process, default settings); the person does nothing.
* spec's client path: no watchdog. The spec's page only times out while *waiting* for an
  agent, so the best it can do is notice the agent leave (when the server drops the ghost,
  about 20 s later), then disconnect, wait 1 s, and connect to a fresh room, as its retry
  does. Each trial takes about 22 s, so fewer are run; they are interleaved with the others.

Prints p50 and p95 (and max) of each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from aiohttp import web
from livekit import rtc

from room_recovery.core.settings import Settings, load_settings
from room_recovery.core.tokens import person_token
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig, free_port
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app

KEY = "benchkey"
AGENT = "bench-agent"
WATCHED = "bench-wd-"
UNWATCHED = "bench-spec-"


def agents_of(room: rtc.Room) -> list[rtc.RemoteParticipant]:
    kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    return [p for p in room.remote_participants.values() if p.kind == kind]


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.01)


def job_process(worker: subprocess.Popen[bytes], port: int) -> int | None:
    for child in psutil.Process(worker.pid).children(recursive=True):
        try:
            if any(c.raddr and c.raddr.port == port for c in child.net_connections("tcp")):
                return child.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


async def connect(settings: Settings, room_name: str) -> rtc.Room:
    room = rtc.Room()
    identity = f"person-{uuid.uuid4().hex[:6]}"
    await room.connect(settings.ws_url, person_token(settings, room_name, identity, AGENT))
    return room


async def kill_the_agent(room: rtc.Room, worker: subprocess.Popen[bytes], port: int) -> str:
    await until(lambda: agents_of(room), 20, "first agent")
    first = agents_of(room)[0].sid
    await until(lambda: job_process(worker, port) is not None, 10, "job process")
    pid = job_process(worker, port)
    assert pid is not None
    await asyncio.sleep(0.5)  # let the heartbeat start, as in a real session
    os.kill(pid, signal.SIGKILL)
    return first


async def trial_with_watchdog(
    settings: Settings, worker: subprocess.Popen[bytes], port: int
) -> float:
    room = await connect(settings, f"{WATCHED}{uuid.uuid4().hex[:8]}")
    try:
        first = await kill_the_agent(room, worker, port)
        started = time.perf_counter()
        await until(lambda: any(a.sid != first for a in agents_of(room)), 30, "new agent")
        return time.perf_counter() - started
    finally:
        await room.disconnect()
        await no_job_left(worker, port)


async def no_job_left(worker: subprocess.Popen[bytes], port: int) -> None:
    """Until the agent of the last trial has left, so the next kill hits the right job."""
    await until(lambda: job_process(worker, port) is None, 20, "the last job to end")


async def trial_spec_client(
    settings: Settings, worker: subprocess.Popen[bytes], port: int
) -> float:
    room = await connect(settings, f"{UNWATCHED}{uuid.uuid4().hex[:8]}")
    try:
        first = await kill_the_agent(room, worker, port)
        started = time.perf_counter()
        await until(lambda: not any(a.sid == first for a in agents_of(room)), 40, "ghost to go")
    finally:
        await room.disconnect()
    await asyncio.sleep(1.0)  # the spec's first retry delay
    retry = await connect(settings, f"{UNWATCHED}{uuid.uuid4().hex[:8]}")
    try:
        await until(lambda: agents_of(retry), 20, "agent after retry")
        return time.perf_counter() - started
    finally:
        await retry.disconnect()
        await no_job_left(worker, port)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        # the watchdog's own signals alone (heartbeat, waiting person): the worker monitor,
        # which replaces a dead job at once, is measured in bench_agent_kinds.py
        "ROOM_RECOVERY_WORKER_MONITOR": "off",
        "LIVEKIT_URL": settings.livekit_url,
        "LIVEKIT_API_KEY": settings.livekit_api_key,
        "LIVEKIT_API_SECRET": settings.livekit_api_secret,
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "room_recovery.demo",
                "--agent-name",
                AGENT,
                "--health-port",
                "0",
                "--grace",
                "1",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


async def wait_registered(log: Path) -> None:
    await until(lambda: "registered: " in log.read_text(errors="replace"), 60, "registration")


def summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<22} n={len(seconds):<3} p50 {statistics.median(seconds):6.2f} s   "
        f"p95 {p95:6.2f} s   max {max(seconds):6.2f} s"
    )


async def main(kills: int, baseline: int) -> int:
    secret = secrets.token_urlsafe(32)
    hook_port = free_port()  # LiveKit's webhooks reach the watchdog, as `up` configures them
    config = ServerConfig.on_free_ports(
        {KEY: secret}, log_level="warn", webhook_urls=(f"http://127.0.0.1:{hook_port}/webhook",)
    )
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=WATCHED
    )
    watched: list[float] = []
    spec: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        log = Path(os.environ.get("BENCH_WORKER_LOG", Path(folder) / "worker.log"))
        async with LiveKitServer(config, Path(folder)):
            worker = start_worker(settings, log)
            try:
                await wait_registered(log)
                watchdog = Watchdog(settings, WatchdogOptions(agent_name=AGENT))
                runner = web.AppRunner(create_app(watchdog), access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", hook_port).start()
                try:
                    every = max(1, kills // max(1, baseline))
                    for number in range(kills):
                        watched.append(
                            await trial_with_watchdog(settings, worker, config.http_port)
                        )
                        print(f"watchdog trial {number + 1}: {watched[-1]:.2f} s", flush=True)
                        if len(spec) < baseline and (number + 1) % every == 0:
                            spec.append(await trial_spec_client(settings, worker, config.http_port))
                            print(f"spec client trial {len(spec)}: {spec[-1]:.2f} s", flush=True)
                finally:
                    await runner.cleanup()
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(5)
    print()
    print("time from the agent's SIGKILL to a new agent visible to the person")
    print(summary("watchdog", watched))
    if spec:
        print(summary("spec's client retry", spec))
        print(
            f"ratio of medians: {statistics.median(spec) / statistics.median(watched):.1f}x faster"
        )
    print("target: watchdog p95 under 3 s")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=3)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.kills, arguments.baseline)))
