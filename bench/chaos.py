"""Chaos: hundreds of sessions through the page's token endpoint while faults strike.

    .venv/bin/python bench/chaos.py [--sessions 200] [--concurrency 5] [--fault-every 6]
    .venv/bin/python bench/chaos.py --page http://127.0.0.1:8080 --state-dir DIR

Without --page it starts its own voice system (`room-recovery up --detach` on free ports,
in a temporary state folder, with the token bounds off: every person comes from
loopback) and stops it at the end. With --page it drives a running system; the process
faults then need that system's --state-dir, and act only on the parts its `up` started
(by their pidfiles and status.json). LIVEKIT_* come from the environment or .env.

Each session is a person as the page is one: a token from /api/token, a join, an agent
within the page's join timeout (else a new room, after the page's retry delay, up to its
retries, then the page's final explanation), a few seconds of talk, then `room_cleanup`
and leave. While the agent talks, if it leaves, the person waits in the room for a
replacement as the page does while a recovery is under way. One session in twenty is a
person who vanishes: a separate process, SIGKILLed once the agent is there.

Faults strike every --fault-every seconds, at random:

    job_killed        SIGKILL one of the agent worker's job processes (someone's agent)
    watchdog_killed   SIGKILL the watchdog (the supervisor restarts it)
    watchdog_stopped  SIGSTOP the watchdog for 12 s (the supervisor finds it silent)
    web_stopped       SIGSTOP the page server for 3 s (token requests hang meanwhile)
    server_killed     SIGKILL livekit-server (every room is lost; pages start again)

A session "saw" a fault that struck while it ran. Per fault, the table gives: sessions;
the share that got an agent, and the share that ended on the page's explanation instead
(together they must be 100 %: nobody waits forever); p50/p95 seconds from the first join
to the first agent; duplicate agents seen in one room at once; and, for rooms whose agent
was replaced, dispatches per room. 60 s after the last session, the rooms still open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from livekit import api, rtc

from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.messages import room_cleanup
from room_recovery.system.livekit_server import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.system import free_port_triple  # noqa: E402
from tests.support.worker import connected_children  # noqa: E402

AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
FAULTS = {  # weight of each fault
    "job_killed": 5,
    "watchdog_killed": 2,
    "watchdog_stopped": 1,
    "web_stopped": 2,
    "server_killed": 1,
}
VANISH_SHARE = 0.05
LEFT_BEHIND_WAIT = 60.0  # --left-wait


@dataclass
class Session:
    index: int
    vanish: bool
    started: float = 0.0
    ended: float = 0.0
    rooms: list[str] = field(default_factory=list)
    time_to_agent: float | None = None
    explained: str | None = None  # the page's final explanation, when no agent came
    duplicates: int = 0
    replaced: int = 0  # agents that left mid-talk and were replaced in the room
    dispatches: list[int] = field(default_factory=list)  # per room with a replacement


@dataclass
class Page:
    """What the page knows: its URL, its timing (`/api/config`), and LiveKit's keys."""

    url: str
    settings: Settings
    join_timeout: float = 15.0
    max_retries: int = 3
    retry_step: float = 1.0
    recovery_wait: float = 10.0

    async def configure(self, http: aiohttp.ClientSession) -> list[str]:
        async with http.get(f"{self.url}/api/config") as response:
            config = await response.json()
        self.join_timeout = float(config["join_timeout"])
        self.max_retries = int(config["max_retries"])
        self.retry_step = float(config["retry_step"])
        self.recovery_wait = float(config["protocol"]["room_status"]["recovery_wait"])
        return [agent["name"] for agent in config["agents"]]

    async def token(self, http: aiohttp.ClientSession, agent: str) -> dict[str, str]:
        async with http.post(f"{self.url}/api/token", json={"agent": agent}) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body.get('error')}")
            return dict(body)


# --- one person -------------------------------------------------------------------------


async def run_session(page: Page, http: aiohttp.ClientSession, agent: str, s: Session) -> None:
    s.started = time.monotonic()
    try:
        for attempt in range(1 + page.max_retries):
            if attempt:
                await asyncio.sleep(attempt * page.retry_step)
            try:
                grant = await asyncio.wait_for(page.token(http, agent), 10)
            except (TimeoutError, RuntimeError, aiohttp.ClientError, OSError) as exc:
                s.explained = f"token: {exc or type(exc).__name__}"
                continue
            s.rooms.append(grant["room"])
            attempt_in = vanish_attempt if s.vanish else talk_attempt
            try:
                came = await attempt_in(page, grant, s)
            except (aiohttp.ClientError, OSError, api.TwirpError) as exc:
                came = False  # LiveKit went away mid-attempt: the page starts again
                s.explained = f"connection lost: {exc or type(exc).__name__}"
            if came:
                s.explained = None
                return
            s.explained = s.explained or "no agent within the join timeout"
    finally:
        s.ended = time.monotonic()


async def talk_attempt(page: Page, grant: dict[str, str], s: Session) -> bool:
    """One room: True once the agent came and the talk ended well."""
    room = rtc.Room()
    changed = asyncio.Event()
    gone = asyncio.Event()

    def agents() -> list[rtc.RemoteParticipant]:
        return [p for p in room.remote_participants.values() if p.kind == AGENT]

    def on_change(*_: object) -> None:
        if len(agents()) > 1:
            s.duplicates += 1
        changed.set()

    room.on("participant_connected", on_change)
    room.on("participant_disconnected", on_change)
    room.on("room_metadata_changed", on_change)

    def on_disconnected(*_: object) -> None:
        gone.set()
        changed.set()

    room.on("disconnected", on_disconnected)
    try:
        # never cancelled: a connect cut short between its callback and the SDK's "ready"
        # makes the FFI panic, and the SDK then SIGTERMs this whole process
        await room.connect(grant["url"], grant["token"])
        if not await wait_for_agent(room, agents, changed, gone, page.join_timeout):
            return False
        if s.time_to_agent is None:
            s.time_to_agent = time.monotonic() - s.started
        talk_until = time.monotonic() + random.uniform(3, 6)
        replaced_here = False
        while (left := talk_until - time.monotonic()) > 0 and not gone.is_set():
            changed.clear()
            if agents():
                with_timeout = asyncio.wait_for(changed.wait(), left)
                await asyncio.gather(with_timeout, return_exceptions=True)
                continue
            # the agent left mid-talk: the page waits in the room for its replacement
            wait = max(page.join_timeout, page.recovery_wait)
            if not await wait_for_agent(room, agents, changed, gone, wait):
                return False
            s.replaced += 1
            replaced_here = True
        if gone.is_set():
            return False
        if replaced_here:
            s.dispatches.append(await dispatch_count(page.settings, grant["room"]))
        await room.local_participant.publish_data(room_cleanup().to_bytes(), reliable=True)
        return True
    except (TimeoutError, rtc.ConnectError, RuntimeError):
        return False
    finally:
        await room.disconnect()


async def wait_for_agent(
    room: rtc.Room,
    agents: object,
    changed: asyncio.Event,
    gone: asyncio.Event,
    timeout: float,
) -> bool:
    deadline = time.monotonic() + timeout
    while not agents():  # type: ignore[operator]
        if gone.is_set() or '"failed"' in (room.metadata or ""):
            return False  # the room is lost, or the watchdog gave up: the page moves on
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        changed.clear()
        await asyncio.gather(asyncio.wait_for(changed.wait(), left), return_exceptions=True)
    return True


async def vanish_attempt(page: Page, grant: dict[str, str], s: Session) -> bool:
    """A person in a process of their own, SIGKILLed once their agent is there."""
    process = subprocess.Popen(  # noqa: ASYNC220 (starts at once, never blocks)
        [sys.executable, "-m", "tests.support.participant_process", grant["url"], grant["token"]],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + page.join_timeout + 5
        async with api.LiveKitAPI(
            page.settings.http_url, page.settings.livekit_api_key, page.settings.livekit_api_secret
        ) as lkapi:
            request = api.ListParticipantsRequest(room=grant["room"])
            while time.monotonic() < deadline:
                try:
                    listed = await lkapi.room.list_participants(request)
                except (api.TwirpError, aiohttp.ClientError, OSError):
                    listed = api.ListParticipantsResponse()  # LiveKit restarting: ask again
                if any(p.kind == api.ParticipantInfo.Kind.AGENT for p in listed.participants):
                    if s.time_to_agent is None:
                        s.time_to_agent = time.monotonic() - s.started
                    return True
                await asyncio.sleep(0.25)
        return False
    finally:
        process.kill()
        process.wait()


async def dispatch_count(settings: Settings, room: str) -> int:
    async with api.LiveKitAPI(
        settings.http_url, settings.livekit_api_key, settings.livekit_api_secret
    ) as lkapi:
        try:
            return len(await lkapi.agent_dispatch.list_dispatch(room))
        except (api.TwirpError, aiohttp.ClientError, OSError):
            return 0


# --- faults -------------------------------------------------------------------------------


class Faults:
    """Strikes the parts `up` started (by status.json's pids), and remembers when."""

    def __init__(self, state_dir: Path, livekit_port: int) -> None:
        self.state_dir = state_dir
        self.livekit_port = livekit_port
        self.struck: list[tuple[float, str]] = []

    def pid(self, part: str) -> int | None:
        try:
            status = json.loads((self.state_dir / "status.json").read_text())
            return int(status["parts"][part]["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def strike(self, fault: str) -> bool:
        if fault == "job_killed":
            worker = self.pid("agent")
            jobs = connected_children(worker, self.livekit_port) if worker else []
            return bool(jobs) and self._signal(random.choice(jobs), signal.SIGKILL, fault)
        if fault in ("watchdog_killed", "server_killed"):
            part = "watch" if fault == "watchdog_killed" else "livekit"
            pid = self.pid(part)
            return pid is not None and self._signal(pid, signal.SIGKILL, fault)
        part, pause = ("watch", 12.0) if fault == "watchdog_stopped" else ("web", 3.0)
        pid = self.pid(part)
        if pid is None or not self._signal(pid, signal.SIGSTOP, fault):
            return False
        await asyncio.sleep(pause)
        with _gone():
            os.kill(pid, signal.SIGCONT)  # if the supervisor has not killed it meanwhile
        return True

    def _signal(self, pid: int, signum: int, fault: str) -> bool:
        with _gone():
            os.kill(pid, signum)
            self.struck.append((time.monotonic(), fault))
            return True
        return False


@contextmanager
def _gone() -> Iterator[None]:
    try:
        yield
    except ProcessLookupError:
        pass


async def strike_at_random(
    faults: Faults, every: float, stop: asyncio.Event, chosen: list[str]
) -> None:
    names = chosen or list(FAULTS)
    weights = [FAULTS[name] for name in names]
    while not stop.is_set():
        await asyncio.gather(asyncio.wait_for(stop.wait(), every), return_exceptions=True)
        if not stop.is_set():
            await faults.strike(random.choices(names, weights)[0])


# --- the run ------------------------------------------------------------------------------


@contextmanager
def own_system() -> Iterator[tuple[str, Path, Settings]]:
    """`up --detach` on free ports in a temporary state folder; `down` at the end."""
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    port, web, watch, agent = free_port_triple(), free_port(), free_port(), free_port()
    secret = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))} | {
        "LIVEKIT_URL": f"ws://127.0.0.1:{port}",
        "LIVEKIT_API_KEY": "chaoskey",
        "LIVEKIT_API_SECRET": secret,
        "ROOM_PREFIX": "chaos-",
        "ROOM_RECOVERY_STATE": str(folder),
        "ROOM_RECOVERY_TOKEN_RATE": "0",
        "ROOM_RECOVERY_TOKEN_ROOMS": "0",
    }
    cli = [sys.executable, "-m", "room_recovery.cli"]
    ports = ["--web-port", str(web), "--watch-port", str(watch), "--agent-health-port", str(agent)]
    started = subprocess.run(
        [*cli, "up", "--detach", *ports], env=env, cwd=folder, capture_output=True, text=True
    )
    if started.returncode != 0:
        raise SystemExit(f"could not start the system: {started.stderr.strip()}")
    settings = load_settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key="chaoskey",
        livekit_api_secret=secret,
        room_prefix="chaos-",
    )
    try:
        yield f"http://127.0.0.1:{web}", folder, settings
    finally:
        subprocess.run([*cli, "down"], env=env, cwd=folder, capture_output=True, timeout=90)


async def drive(
    page: Page, state_dir: Path | None, args: argparse.Namespace
) -> tuple[list[Session], list[tuple[float, str]], int]:
    sessions, concurrency, every = args.sessions, args.concurrency, args.fault_every
    livekit_port = int(page.settings.http_url.rsplit(":", 1)[1].split("/")[0])
    faults = Faults(state_dir, livekit_port) if state_dir else None
    results = [Session(n, random.random() < VANISH_SHARE) for n in range(sessions)]
    gate = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        agent = (await page.configure(http))[0]
        injector = None
        if faults is not None:
            strikes = strike_at_random(faults, every, stop, args.fault or [])
            injector = asyncio.create_task(strikes)

        async def one(s: Session) -> None:
            async with gate:
                await run_session(page, http, agent, s)
                done = sum(1 for r in results if r.ended)
                if done % 20 == 0:
                    print(f"  {done}/{sessions} sessions", flush=True)

        try:
            await asyncio.gather(*(one(s) for s in results))
        finally:
            stop.set()
            if injector is not None:
                await injector
    print(f"waiting {args.left_wait:g} s for rooms to close...", flush=True)
    await asyncio.sleep(args.left_wait)
    rooms = {room for s in results for room in s.rooms}
    async with api.LiveKitAPI(
        page.settings.http_url, page.settings.livekit_api_key, page.settings.livekit_api_secret
    ) as lkapi:
        listed = await lkapi.room.list_rooms(api.ListRoomsRequest(names=sorted(rooms)))
    return results, faults.struck if faults else [], len(listed.rooms)


def report(
    results: list[Session], struck: list[tuple[float, str]], left: int, waited: float
) -> bool:
    def saw(s: Session) -> set[str]:
        seen = {name for at, name in struck if s.started <= at <= s.ended}
        return (seen or {"none"}) | ({"vanish"} if s.vanish else set())

    rows = ["all", "none", *FAULTS, "vanish"]
    header = (
        f"{'fault':<17}{'sessions':>9}{'agent':>14}{'explained':>11}{'p50 s':>7}{'p95 s':>7}"
        f"{'dupes':>7}{'disp/room':>10}"
    )
    print("\n" + header)
    for row in rows:
        group = [s for s in results if row == "all" or row in saw(s)]
        if not group:
            continue
        agent = [s for s in group if s.time_to_agent is not None and s.explained is None]
        explained = [s for s in group if s.explained is not None]
        times = sorted(s.time_to_agent for s in group if s.time_to_agent is not None)
        p50 = statistics.median(times) if times else float("nan")
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))] if times else float("nan")
        per_room = [d for s in group for d in s.dispatches]
        disp = f"{statistics.mean(per_room):.2f}" if per_room else "-"
        share = f"{len(agent)} ({len(agent) / len(group):.1%})"
        print(
            f"{row:<17}{len(group):>9}{share:>14}{len(explained):>11}{p50:>7.2f}{p95:>7.2f}"
            f"{sum(s.duplicates for s in group):>7}{disp:>10}"
        )
    counts = {name: sum(1 for _, n in struck if n == name) for name in FAULTS}
    print("\nfaults struck: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    print(f"rooms left behind {waited:g} s after the run: {left}")
    unended = [s for s in results if s.time_to_agent is None and s.explained is None]
    dupes = sum(s.duplicates for s in results)
    ok = not unended and left == 0 and dupes == 0
    print("verdict:", "every session got an agent or an explanation" if ok else "FAILED")
    return ok


async def main(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    # SIGTERM (or an FFI panic, which the rtc SDK turns into one) cancels the run, so that
    # the system this run started is stopped on the way out
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if args.page:
        page = Page(args.page.rstrip("/"), load_settings())
        results, struck, left = await drive(page, args.state_dir, args)
        return 0 if report(results, struck, left, args.left_wait) else 1
    with own_system() as (url, state_dir, settings):
        print(f"own system: page {url}, state {state_dir}", flush=True)
        page = Page(url, settings)
        results, struck, left = await drive(page, state_dir, args)
    return 0 if report(results, struck, left, args.left_wait) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--fault-every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--page", help="a running system's page URL (default: start one)")
    parser.add_argument("--state-dir", type=Path, help="that system's state folder (faults)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--fault", action="append", choices=list(FAULTS), help="only these faults (repeatable)"
    )
    parser.add_argument(
        "--left-wait", type=float, default=LEFT_BEHIND_WAIT, help="seconds before counting rooms"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
