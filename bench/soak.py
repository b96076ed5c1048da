"""Soak: healthy agents are never removed. Sessions run for minutes; count every removal.

    .venv/bin/python bench/soak.py [--minutes 10] [--sessions 20]

On a real livekit-server with the watchdog (links on) and two demo workers (`--max-jobs`
raised so that they take every session). Each session is a person (rtc, in this process)
with the demo agent, kept for the whole run, as long calls are. Nothing is killed. At the
end it prints what a healthy run must show as zero:

* agents that left a person's room, and agents that joined after the first (replacements);
* the watchdog's recoveries by cause (ghost_removed, agent_died, worker_died, ...);
* job processes that died, as the workers' monitors logged them.

Exit status 1 when any of these is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from livekit import api, rtc

from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running

ROOT = Path(__file__).resolve().parents[1]
KEY = "soakkey"
AGENT_NAME = "soak-agent"
PREFIX = "soak-"
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


def start_worker(settings: Settings, log: Path, url: str, max_jobs: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "LIVEKIT_URL": settings.livekit_url,
        "LIVEKIT_API_KEY": settings.livekit_api_key,
        "LIVEKIT_API_SECRET": settings.livekit_api_secret,
        WATCHDOG_URL_VARIABLE: url,
    }
    argv = ["-m", "room_recovery.demo", "--agent-name", AGENT_NAME, "--health-port", "0"]
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, *argv, "--max-jobs", str(max_jobs)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=ROOT,
        )


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.05)


class Session:
    """A person in a room of their own, counting the agents that come and go."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.joined: list[str] = []
        self.left: list[str] = []
        self.room.on(
            "participant_connected",
            lambda p: self.joined.append(p.identity) if p.kind == AGENT else None,
        )
        self.room.on(
            "participant_disconnected",
            lambda p: self.left.append(p.identity) if p.kind == AGENT else None,
        )

    async def start(self, settings: Settings) -> None:
        token = (
            api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
            .with_identity(f"person-{uuid.uuid4().hex[:6]}")
            .with_grants(api.VideoGrants(room_join=True, room=f"{PREFIX}{uuid.uuid4().hex[:8]}"))
            .with_room_config(
                api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME)])
            )
        )
        await self.room.connect(settings.ws_url, token.to_jwt())
        await until(lambda: self.joined, 60, "agent")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(5)


async def main(minutes: float, sessions: int) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=PREFIX
    )
    with tempfile.TemporaryDirectory() as folder:
        logs = [Path(folder) / f"worker-{n}.log" for n in (0, 1)]
        async with LiveKitServer(config, Path(folder)):
            watchdog = Watchdog(settings, WatchdogOptions(agent_name=AGENT_NAME))
            async with running(create_app(watchdog), "127.0.0.1", 0) as url:
                workers = [start_worker(settings, log, url, sessions) for log in logs]
                people = [Session() for _ in range(sessions)]
                try:
                    await until(
                        lambda: all("linked to the watchdog" in log.read_text() for log in logs),
                        90,
                        "two linked workers",
                    )
                    for person in people:  # one after the other, as people arrive
                        await person.start(settings)
                    print(f"{sessions} sessions with an agent; soaking {minutes:g} min", flush=True)
                    await asyncio.sleep(minutes * 60)  # the soak itself: nothing is done to them
                finally:
                    for person in people:
                        await asyncio.wait_for(person.room.disconnect(), 10)
                    for worker in workers:
                        stop(worker)
            causes = {
                sample.labels["cause"]: sample.value
                for metric in watchdog.metrics.registry.collect()
                if metric.name == "room_recovery_recoveries"
                for sample in metric.samples
                if sample.name.endswith("_total")
            }
            deaths = sum(log.read_text().count("job process exited") for log in logs)
    left = sum(len(p.left) for p in people)
    replacements = sum(max(0, len(p.joined) - 1) for p in people)
    print(f"agents that left a person's room: {left}")
    print(f"agents that joined after the first: {replacements}")
    print(f"watchdog recoveries by cause: {causes or 'none'}")
    print(f"job processes that died: {deaths}")
    problems = left + replacements + deaths + int(sum(causes.values()))
    print("removals of healthy agents: none" if not problems else f"PROBLEMS: {problems}")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=20)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.minutes, arguments.sessions)))
