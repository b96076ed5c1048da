"""Chaos: hundreds of sessions through the page's token endpoint while faults strike.

    .venv/bin/python bench/chaos.py [--sessions 200] [--concurrency 5] [--fault-every 6]
    .venv/bin/python bench/chaos.py --nodes 2 --sessions 1000 --concurrency 8 --fault-every 12
    .venv/bin/python bench/chaos.py --nodes 3 --sessions 200 --concurrency 8 --no-faults
    .venv/bin/python bench/chaos.py --page http://127.0.0.1:8080 --state-dir DIR

The agent worker is the guide's (--worker spec, the default: `tests/workers/
letta_voice_agent.py`, automatic dispatch and the guide's request handler verbatim, run by
`up --no-agent --agent-command 'auto:letta=...'` with one idle job process per CPU, as
livekit-agents keeps), or the demo agent (--worker demo): a figure measured on a worker no
user has counts for nothing.

Without --page it starts its own voice system (`room-recovery up --detach` on free ports,
in a temporary state folder, with the token bounds off: every person comes from
loopback) and stops it at the end. With --page it drives a running system; the process
faults then need that system's --state-dir, and act only on the parts its `up` started
(by their pidfiles and status.json). LIVEKIT_* come from the environment or .env.

Each session is a person as the page is one: a token from /api/token (which names the
node to join: the page server hands out the nodes in turn), a join, an agent within the
page's join timeout (else a new room, after the page's retry delay, up to its retries,
then the page's final explanation), a few seconds of talk, then `room_cleanup`, leave, and
`/api/leave` (the page server deletes the room, as the page asks it to).
The first wave of people (--concurrency of them) arrives spread over --ramp seconds (5 by
default), as people do; each later person starts as an earlier one ends. --ramp 0 is a
flash crowd: the whole first wave within milliseconds, on a worker just started.
The people share this machine's CPU with the system they measure (their WebRTC takes a
third of a core at 8 at once); with --nodes, --people-nice N runs them at nice N (the
system's parts, the second watchdog included, keep theirs), closer to people whose
browsers run on machines of their own.
While the agent talks, if it leaves, the person waits in the room for a replacement as the
page does while a recovery is under way. One session in twenty is a person who vanishes: a
separate process, SIGKILLed once the agent is there.

On one node, faults strike every --fault-every seconds, at random, one after another:

    job_killed        SIGKILL one of the agent worker's job processes (someone's agent)
    watchdog_killed   SIGKILL the watchdog (the supervisor restarts it)
    watchdog_stopped  SIGSTOP the watchdog for 12 s (the supervisor finds it silent)
    web_stopped       SIGSTOP the page server for 3 s (token requests hang meanwhile)
    server_killed     SIGKILL livekit-server (every room is lost; pages start again)

With --nodes N (2 or 3) it runs `up --detach --nodes N` (redis-server with a password, N
livekit-server nodes, the agent worker, the page server, one watchdog) and starts a second
`room-recovery watch` on the same Redis itself (`chaos_cluster.py`). Faults then strike at
random moments, --fault-every seconds apart on average, each in a task of its own, so a
new one may strike while another lasts:

    job_killed        SIGKILL one of the worker's job processes
    worker_killed     SIGKILL the agent worker (`up` restarts it; its jobs die with it)
    node_killed       SIGKILL one livekit-server node (`up` restarts it)
    leader_killed     SIGKILL the watchdog that leads (`up`'s, restarted by `up`, or the
                      second, restarted by the bench 1 s later)
    leader_stopped    SIGSTOP the leader for 8 s: past its 3 s lease
    redis_restarted   SIGKILL or SIGTERM redis-server (`up` restarts it, empty: no snapshots)
    redis_down        SIGSTOP redis-server for 10 s, then SIGCONT: a Redis that hangs or is
                      cut off (sockets open, no answer). Stopping it outright would have
                      `up` start it again at once, and refused connections are the easy case
    web_stopped       SIGSTOP the page server for 3 s

A fault lasts from its strike until the system is whole again: the part struck runs again,
every part of `up` says it is healthy (the agent worker only while registered), the second
watchdog answers and one watchdog leads (a job kill: 1 s). Only processes this run's `up`
started (status.json in its state folder) and the bench's own second watchdog are struck.

A session "saw" a fault that lasted while it ran. Per fault, the table gives: sessions;
the share that got an agent, and the share that ended on the page's explanation instead
(together they must be 100 %: nobody waits forever); p50/p95 seconds from the first join
to the first agent; duplicate agents (two agents on a person's screen at once that LiveKit
also lists in the room at once: a removed agent stays on screens until LiveKit's 3 s tick,
and is counted apart); for rooms whose agent was replaced, dispatches per room; live agents
removed in those sessions' rooms; and their rooms still open --left-wait seconds after the
last session.

Live agents removed (a cluster run): every agent our code removed is in a log with its
room (the watchdogs' and the agent worker's JSON logs: "Removed dead agent IDENTITY (SID)",
or the pre-join cleanup's "Removed participant agent-ROOM"). Each counts as dead, rightly
removed, only when something killed it between the moment it could first have been there
(when a person of the bench first saw that sid; else the start of its room's session) and
its removal: the worker logged its room's job process dying, the agent worker died (its
pid changed in status.json), or a node it depended on died (node 1, where the worker's job
processes connect, or the node Redis's room_node_map gave its room; any node if none was
seen). Every other removal is a live agent removed. The rule can only err towards "dead"
when an unrelated death falls in that window, so the count is a floor, not a ceiling, in
runs with many faults; each live one is printed with its room for a look at the logs.

Jobs a full worker ended (the monitor's "🍂 Ending job" lines: rooms with nobody but agents,
or only ghosts of a dead node): how many, and how many of them fell while a person of the
bench was in that room (between their token for it and their leaving it), which must be 0.

A cluster run also prints what each part cost (CPU seconds of each process `up` started,
with its children, and of the bench, as a share of one core over the run, and per session
at once), Redis's commands a second, memory and keys, and the seconds during which two
watchdogs, or none, said they lead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from livekit import api, rtc

from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.messages import room_cleanup

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.system import free_port_triple, spare_port  # noqa: E402
from tests.support.worker import connected_children  # noqa: E402

from chaos_cluster import (  # noqa: E402
    CLUSTER_FAULTS,
    WORKERS,
    Cluster,
    ClusterFaults,
    Removal,
    Watcher,
    Worker,
    chaos_env,
    judge_removals,
    own_cluster,
    read_jobs_ended,
    read_removals,
)

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
RAMP = 5.0  # --ramp: seconds over which the first wave of people arrives


@dataclass
class Session:
    index: int
    vanish: bool
    started: float = 0.0
    ended: float = 0.0
    rooms: list[str] = field(default_factory=list)
    time_to_agent: float | None = None
    explained: str | None = None  # the page's final explanation, when no agent came
    duplicates: int = 0  # two live agents in the room at once, as LiveKit lists it
    shown_twice: int = 0  # two agents on the person's screen, only one of them in the room
    replaced: int = 0  # agents that left mid-talk and were replaced in the room
    dispatches: list[int] = field(default_factory=list)  # per room with a replacement
    room_started: dict[str, float] = field(default_factory=dict)  # room -> wall clock
    room_left: dict[str, float] = field(default_factory=dict)  # room -> wall clock


# every agent sid a person saw, and when first (wall clock): the removals' audit reads it
SEEN_AGENTS: dict[str, float] = {}


def saw_agent(sid: str, at: float | None = None) -> None:
    SEEN_AGENTS.setdefault(sid, time.time() if at is None else at)


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

    async def leave(self, http: aiohttp.ClientSession, grant: dict[str, str]) -> None:
        """What the page does once it has disconnected: ask the page server to delete the
        room the person leaves (`/api/leave`), so that an agent that does not leave on
        room_cleanup (the guide's worker) ends with it. Best effort, as the page's is."""
        leave = {key: grant[key] for key in ("room", "identity", "leave_key")}
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with http.post(f"{self.url}/api/leave", json=leave) as response:
                await response.read()


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
            s.room_started[grant["room"]] = time.time()
            attempt_in = vanish_attempt if s.vanish else talk_attempt
            try:
                came = await attempt_in(page, grant, s)
            except (aiohttp.ClientError, OSError, api.TwirpError) as exc:
                came = False  # LiveKit went away mid-attempt: the page starts again
                s.explained = f"connection lost: {exc or type(exc).__name__}"
            finally:
                s.room_left[grant["room"]] = time.time()
            if came:
                s.explained = None
                if not s.vanish:  # a person who vanished sends nothing
                    await page.leave(http, grant)
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

    checks: set[asyncio.Task[None]] = set()

    def on_change(*_: object) -> None:
        for agent in agents():
            saw_agent(agent.sid)
        if len(agents()) > 1:  # LiveKit's word: a removed agent stays on screen up to 3 s
            check = asyncio.create_task(confirm_duplicate(page, room.name, agents(), s))
            checks.add(check)
            check.add_done_callback(checks.discard)
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
        on_change()
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
        await asyncio.gather(*checks, return_exceptions=True)
        await room.disconnect()


async def confirm_duplicate(
    page: Page, room: str, shown: list[rtc.RemoteParticipant], s: Session
) -> None:
    """Count two agents on the person's screen as a duplicate only when LiveKit lists two of
    them in the room at once: an agent removed a moment ago (a dead one, replaced) stays on
    the other participants' screens until LiveKit's next 3-second tick."""
    sids = {agent.sid for agent in shown}
    settings = page.settings
    async with api.LiveKitAPI(
        settings.http_url, settings.livekit_api_key, settings.livekit_api_secret
    ) as lkapi:
        try:
            listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
        except (api.TwirpError, aiohttp.ClientError, OSError):
            s.duplicates += 1  # LiveKit cannot say: counted, never hidden
            return
    gone = api.ParticipantInfo.State.DISCONNECTED
    live = [p for p in listed.participants if p.sid in sids and p.state != gone]
    if len(live) > 1:
        s.duplicates += 1
    else:
        s.shown_twice += 1


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
                kinds = [p for p in listed.participants if p.kind == api.ParticipantInfo.Kind.AGENT]
                for agent in kinds:
                    saw_agent(agent.sid, agent.joined_at_ms / 1000 or None)
                if kinds:
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

    def __init__(self, state_dir: Path, livekit_port: int, worker_part: str = "agent") -> None:
        self.state_dir = state_dir
        self.livekit_port = livekit_port
        self.worker_part = worker_part
        self.struck: list[tuple[float, str]] = []

    def pid(self, part: str) -> int | None:
        try:
            status = json.loads((self.state_dir / "status.json").read_text())
            return int(status["parts"][part]["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def strike(self, fault: str) -> bool:
        if fault == "job_killed":
            worker = self.pid(self.worker_part)
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
def own_system(worker: Worker) -> Iterator[tuple[str, Path, Settings]]:
    """`up --detach` on free ports in a temporary state folder, running `worker`; `down` at
    the end."""
    folder = Path(tempfile.mkdtemp(prefix="chaos-"))
    port, web, watch, agent = free_port_triple(), spare_port(), spare_port(), spare_port()
    env = chaos_env(port, folder)
    cli = [sys.executable, "-m", "room_recovery.cli"]
    ports = ["--web-port", str(web), "--watch-port", str(watch), "--agent-health-port", str(agent)]
    started = subprocess.run(
        [*cli, "up", "--detach", *ports, *worker.flags],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise SystemExit(f"could not start the system: {started.stderr.strip()}")
    settings = load_settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key="chaoskey",
        livekit_api_secret=env["LIVEKIT_API_SECRET"],
        room_prefix="chaos-",
    )
    try:
        yield f"http://127.0.0.1:{web}", folder, settings
    finally:
        subprocess.run([*cli, "down"], env=env, cwd=folder, capture_output=True, timeout=90)


@dataclass
class Run:
    """What a run gives `report`: the sessions, the faults (name, start, end: monotonic),
    the rooms still open after the wait, and on a cluster its audit and cost."""

    results: list[Session]
    struck: list[tuple[str, float, float]]
    left: set[str]
    faults: list[str]
    removals: list[Removal] = field(default_factory=list)
    watcher: Watcher | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    jobs_ended: list[tuple[float, str, str]] = field(default_factory=list)  # a full worker's


async def drive(page: Page, state_dir: Path | None, args: argparse.Namespace) -> Run:
    sessions, concurrency, every = args.sessions, args.concurrency, args.fault_every
    livekit_port = int(page.settings.http_url.rsplit(":", 1)[1].split("/")[0])
    part = WORKERS[args.worker].part
    faults = Faults(state_dir, livekit_port, part) if state_dir and not args.no_faults else None
    results = [Session(n, random.random() < VANISH_SHARE) for n in range(sessions)]
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        agent = (await page.configure(http))[0]
        stop = asyncio.Event()
        injector = None
        if faults is not None:
            injector = asyncio.create_task(strike_at_random(faults, every, stop, args.fault or []))
        try:
            await run_sessions(page, http, agent, results, concurrency, args.ramp)
        finally:
            stop.set()
            if injector is not None:
                await injector
    left = await rooms_left(page, results, args.left_wait)
    struck = [(name, at, at) for at, name in faults.struck] if faults else []
    return Run(results, struck, left, list(FAULTS))


async def drive_cluster(cluster: Cluster, args: argparse.Namespace) -> Run:
    """The sessions on `up --nodes N`, faults overlapping (each its own task, struck at
    random moments --fault-every seconds apart on average), the cluster watched meanwhile."""
    page = Page(cluster.page_url, cluster.settings)
    results = [Session(n, random.random() < VANISH_SHARE) for n in range(args.sessions)]
    names = args.fault or list(CLUSTER_FAULTS)
    weights = [CLUSTER_FAULTS[name] for name in names]
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        agent = (await page.configure(http))[0]
        faults = ClusterFaults(cluster, http)
        watcher = Watcher(cluster)
        stop, watched = asyncio.Event(), asyncio.Event()
        active = lambda: sum(1 for s in results if s.started and not s.ended)  # noqa: E731
        watching = asyncio.create_task(watcher.run(watched, active))
        keeper = asyncio.create_task(cluster.second.keep_running())
        strikes: set[asyncio.Task[None]] = set()

        async def inject() -> None:
            await asyncio.gather(asyncio.wait_for(stop.wait(), 15), return_exceptions=True)
            while not stop.is_set():
                task = asyncio.create_task(faults.strike(random.choices(names, weights)[0]))
                strikes.add(task)
                task.add_done_callback(strikes.discard)
                pause = random.expovariate(1 / args.fault_every)
                await asyncio.gather(asyncio.wait_for(stop.wait(), pause), return_exceptions=True)

        injector = asyncio.create_task(inject()) if not args.no_faults else None
        try:
            await run_sessions(page, http, agent, results, args.concurrency, args.ramp)
        finally:
            stop.set()
            if injector is not None:
                await injector
            await asyncio.gather(*strikes, return_exceptions=True)
            watched.set()
            await watching
    watcher.deaths.extend(faults.kills)  # exact: the sampled pid changes come a second late
    left = await rooms_left(page, results, args.left_wait)
    await describe_left(page, left)
    cluster.second.wanted = False
    keeper.cancel()
    room_start = {room: at for s in results for room, at in s.room_started.items()}
    found = read_removals(cluster.state_dir, cluster.worker.part)
    removals = judge_removals(found, watcher, SEEN_AGENTS, room_start)
    struck = [(x.name, x.start, x.end) for x in faults.strikes]
    run = Run(results, struck, left, names, removals, watcher, dict(faults.skipped))
    run.jobs_ended = read_jobs_ended(cluster.state_dir, cluster.worker.part)
    return run


async def run_sessions(
    page: Page,
    http: aiohttp.ClientSession,
    agent: str,
    results: list[Session],
    concurrency: int,
    ramp: float,
) -> None:
    """The sessions, `concurrency` at once. The first wave arrives spread over `ramp`
    seconds, as people do; later ones start as earlier ones end. `ramp` 0 is a flash crowd:
    the whole first wave within a few milliseconds."""
    gate = asyncio.Semaphore(concurrency)
    every = 50 if len(results) >= 500 else 20

    async def one(s: Session) -> None:
        async with gate:
            if s.index < concurrency:
                await asyncio.sleep(ramp * s.index / concurrency)
            await run_session(page, http, agent, s)
            done = sum(1 for r in results if r.ended)
            if done % every == 0:
                print(f"  {done}/{len(results)} sessions", flush=True)

    await asyncio.gather(*(one(s) for s in results))


async def rooms_left(page: Page, results: list[Session], wait: float) -> set[str]:
    """The sessions' rooms still open `wait` seconds after the last session."""
    print(f"waiting {wait:g} s for rooms to close...", flush=True)
    await asyncio.sleep(wait)
    rooms = sorted({room for s in results for room in s.rooms})
    for attempt in range(10):  # a node may be restarting
        try:
            async with api.LiveKitAPI(
                page.settings.http_url,
                page.settings.livekit_api_key,
                page.settings.livekit_api_secret,
            ) as lkapi:
                listed = await lkapi.room.list_rooms(api.ListRoomsRequest(names=rooms))
            return {room.name for room in listed.rooms}
        except (api.TwirpError, aiohttp.ClientError, OSError):
            await asyncio.sleep(2 + attempt)
    raise SystemExit("could not list the rooms left behind")


async def describe_left(page: Page, left: set[str]) -> None:
    """Who is still in each room left behind (at most 10), to find out why."""
    settings = page.settings
    async with api.LiveKitAPI(
        settings.http_url, settings.livekit_api_key, settings.livekit_api_secret
    ) as lkapi:
        for room in sorted(left)[:10]:
            try:
                listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
            except (api.TwirpError, aiohttp.ClientError, OSError) as exc:
                print(f"  left: {room}: {exc}")
                continue
            who = [
                f"{p.identity} {api.ParticipantInfo.Kind.Name(p.kind)} "
                f"{api.ParticipantInfo.State.Name(p.state)} {p.sid} joined {p.joined_at}"
                for p in listed.participants
            ]
            print(f"  left: {room} at {time.time():.0f}: {who or 'nobody'}", flush=True)


def report(run: Run, waited: float, sessions_out: Path | None = None) -> bool:
    results, struck = run.results, run.struck

    def saw(s: Session) -> set[str]:
        seen = {name for name, start, end in struck if start <= s.ended and end >= s.started}
        return (seen or {"none"}) | ({"vanish"} if s.vanish else set())

    live = [r for r in run.removals if not r.dead_because]
    live_rooms = {r.room for r in live}
    rows = ["all", "none", *run.faults, "vanish"]
    header = (
        f"{'fault':<17}{'sessions':>9}{'agent':>14}{'explained':>11}{'p50 s':>7}{'p95 s':>7}"
        f"{'dupes':>7}{'disp/room':>10}{'live rm':>8}{'left':>6}"
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
        rooms = {room for s in group for room in s.rooms}
        print(
            f"{row:<17}{len(group):>9}{share:>14}{len(explained):>11}{p50:>7.2f}{p95:>7.2f}"
            f"{sum(s.duplicates for s in group):>7}{disp:>10}{len(rooms & live_rooms):>8}"
            f"{len(rooms & run.left):>6}"
        )
    shown = sum(s.shown_twice for s in results)
    print(
        f"\ndupes: two live agents listed by LiveKit at once; a person's screen also showed "
        f"a removed agent beside its replacement {shown} time(s) (until LiveKit's 3 s tick)"
    )
    counts = {name: sum(1 for n, _, _ in struck if n == name) for name in run.faults}
    print("faults struck: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    if run.skipped:
        print(
            "faults skipped (no target then): "
            + ", ".join(f"{n} {c}" for n, c in run.skipped.items())
        )
    overlapping = sum(
        1
        for i, (_, a0, a1) in enumerate(struck)
        if any(b0 <= a1 and b1 >= a0 for j, (_, b0, b1) in enumerate(struck) if j != i)
    )
    if struck:
        print(f"faults that overlapped another: {overlapping} of {len(struck)}")
    print(f"rooms left behind {waited:g} s after the run: {len(run.left)}")
    if run.watcher is not None:
        report_cluster(run, live)
    unended = [s for s in results if s.time_to_agent is None and s.explained is None]
    dupes = sum(s.duplicates for s in results)
    ok = not unended and not run.left and dupes == 0 and not live
    print("verdict:", "every session got an agent or an explanation" if ok else "FAILED")
    if sessions_out is not None:  # last: a path that cannot be written loses no table
        write_sessions(sessions_out, results, saw)
    return ok


def write_sessions(path: Path, results: list[Session], saw: Callable[[Session], set[str]]) -> None:
    """One JSON line per session: when it ran (seconds from the first start), its rooms,
    its time to the agent or its explanation, and the faults it saw."""
    first = min((s.started for s in results if s.started), default=0.0)
    try:
        out = path.open("w")
    except OSError as exc:
        print(f"--sessions-out: cannot write {path}: {exc.strerror or exc}")
        return
    with out:
        for s in results:
            line = {
                "index": s.index,
                "started": round(s.started - first, 3),
                "ended": round(s.ended - first, 3),
                "rooms": s.rooms,
                "time_to_agent": s.time_to_agent,
                "explained": s.explained,
                "replaced": s.replaced,
                "duplicates": s.duplicates,
                "shown_twice": s.shown_twice,
                "saw": sorted(saw(s)),
            }
            out.write(json.dumps(line) + "\n")
    print(f"sessions written to {path}")


def report_cluster(run: Run, live: list[Removal]) -> None:
    watcher = run.watcher
    assert watcher is not None
    print(f"\nagent removals by our code: {len(run.removals)}")
    why: dict[str, int] = {}
    for removal in run.removals:
        why[removal.dead_because or "LIVE"] = why.get(removal.dead_because or "LIVE", 0) + 1
    for reason, count in sorted(why.items()):
        print(f"  {reason}: {count}")
    for removal in live:
        print(f"  live agent removed: {removal}")
    in_use = [
        (at, room)
        for at, room, _ in run.jobs_ended
        for s in run.results
        if s.room_started.get(room, math.inf) <= at <= s.room_left.get(room, math.inf)
    ]
    ghosts = sum(1 for _, _, why in run.jobs_ended if "ghost" in why)
    print(
        f"jobs a full worker ended: {len(run.jobs_ended)} ({ghosts} for ghosts); "
        f"in a room a person of the bench was in: {len(in_use)}"
    )
    for at, room in in_use:
        print(f"  ended while a person was there: {room} at {at:.3f}")
    deaths: dict[str, int] = {}
    for death in watcher.deaths:
        deaths[death.part] = deaths.get(death.part, 0) + 1
    print("part deaths seen (pid changes): " + ", ".join(f"{p} {n}" for p, n in deaths.items()))
    print(
        f"seconds with two watchdogs saying 'leader': {watcher.two_leaders:g}; "
        f"with none: {watcher.no_leader:g}"
    )
    mean = statistics.mean(watcher.concurrent) if watcher.concurrent else 0.0
    print(f"\ncost over {watcher.ended - watcher.started:.0f} s, {mean:.1f} sessions at once:")
    for part, share in watcher.cost().items():
        each = f"{share / mean * 100:.2f} % per session" if mean else ""
        print(f"  {part:<11}{share * 100:6.1f} % of a core  {each}")
    for key, value in watcher.redis_load().items():
        print(f"  redis {key}: {value:.1f}")


def nice_value(text: str) -> int:
    """--people-nice: 0 (as the system's parts) to 19 (the lowest); raising a priority
    needs root, so the people are never put above the system."""
    if not text.isdigit() or int(text) > 19:
        raise argparse.ArgumentTypeError(f"{text!r} is no nice value from 0 to 19, e.g. 10")
    return int(text)


async def main(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    # SIGTERM (or an FFI panic, which the rtc SDK turns into one) cancels the run, so that
    # the system this run started is stopped on the way out
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if args.worker_jobs is not None:  # the guide's test worker reads it (its load by jobs)
        os.environ["LETTA_JOBS_AT_LIMIT"] = str(args.worker_jobs)
    if args.nodes > 1:
        with own_cluster(args.nodes, worker=WORKERS[args.worker]) as cluster:
            if args.people_nice:  # this thread, and the people's threads it starts from now
                os.setpriority(os.PRIO_PROCESS, 0, args.people_nice)
            print(
                f"own cluster: {args.nodes} nodes, {args.worker} worker "
                f"(at its limit at {os.environ.get('LETTA_JOBS_AT_LIMIT', '12')} jobs), "
                f"people at nice {os.getpriority(os.PRIO_PROCESS, 0)}, "
                f"page {cluster.page_url}, state {cluster.state_dir}",
                flush=True,
            )
            run = await drive_cluster(cluster, args)
        return 0 if report(run, args.left_wait, args.sessions_out) else 1
    if args.page:
        page = Page(args.page.rstrip("/"), load_settings())
        run = await drive(page, args.state_dir, args)
        return 0 if report(run, args.left_wait, args.sessions_out) else 1
    with own_system(WORKERS[args.worker]) as (url, state_dir, settings):
        print(f"own system: {args.worker} worker, page {url}, state {state_dir}", flush=True)
        run = await drive(Page(url, settings), state_dir, args)
    return 0 if report(run, args.left_wait, args.sessions_out) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--fault-every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--nodes", type=int, default=1, help="2 or 3: up --nodes N (a cluster)")
    parser.add_argument(
        "--worker",
        choices=sorted(WORKERS),
        default="spec",
        help="the agent worker of the system it starts: spec (default), the guide's worker "
        "(tests/workers/letta_voice_agent.py: automatic dispatch, the guide's request handler "
        "verbatim), or demo, the demo agent",
    )
    parser.add_argument(
        "--worker-jobs",
        type=int,
        help="the spec worker's limit in jobs (default 12): LiveKit sends it no job at that many",
    )
    parser.add_argument(
        "--people-nice",
        type=nice_value,
        default=0,
        help="with --nodes: run the bench's people at this nice value (the system's parts keep "
        "theirs), as if their browsers were on machines of their own",
    )
    parser.add_argument("--page", help="a running system's page URL (default: start one)")
    parser.add_argument("--state-dir", type=Path, help="that system's state folder (faults)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--fault",
        action="append",
        choices=sorted({*FAULTS, *CLUSTER_FAULTS}),
        help="only these faults (repeatable)",
    )
    parser.add_argument("--no-faults", action="store_true", help="no faults: a cost run")
    parser.add_argument(
        "--ramp",
        type=float,
        default=RAMP,
        help="seconds over which the first sessions arrive (0: all at once, a flash crowd)",
    )
    parser.add_argument("--sessions-out", type=Path, help="write each session as a JSON line")
    parser.add_argument(
        "--left-wait", type=float, default=LEFT_BEHIND_WAIT, help="seconds before counting rooms"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
