"""Benchmark: any agent, as the user wired it, killed mid-session; how soon is one back?

    .venv/bin/python bench/bench_agent_kinds.py [--kills 10] [--baseline 2] [--kind spec ...]

On a real livekit-server, with the watchdog (in this process, its worker links on) and
real workers of every kind (`tests/workers/`):

* spec:  `letta_voice_agent.py`: the user's worker, the guide's request handler pasted
         character for character (its import inside the handler), automatic dispatch,
         nothing of room-recovery anywhere else;
* top:   `letta_top_import.py`: the same with that one import at the top of the file;
* entrypoint: `letta_entrypoint_cleanup.py`: `ensure_clean_room` called from the entrypoint;
* plain: `plain_agent.py`: no room-recovery code at all (the watchdog alone);
* demo:  the demo agent (named dispatch, pre-join hook, session guard with heartbeat);
* named: `named_agent.py`: named dispatch, our request_handler, no guard.

Faults, each `--kills` times per kind:

* job:      the agent's job process is SIGKILLed (its worker lives on);
* job+idle: the job process and the worker's idle prewarmed processes are SIGKILLed
            together, so the replacement needs a fresh process;
* worker:   the serving worker is SIGKILLed with its jobs, while a second worker of the
            same agent is registered (the killed one is started again before the next trial);
* restart:  the only worker is SIGKILLed and `up`'s own supervisor (`system.supervisor`,
            with `up`'s registration observer) starts it again after 1 s; the time from the
            kill to its registration is printed beside it.

Each trial: a person (rtc, in this process) joins a fresh room with a plain token (as the
user's own page makes) and gets an agent; the fault; the clock runs until a *new* agent is
visible to the person. Also counted: agents that joined after the fault (more than one is a
duplicate), and room changes: the page (`web/static/app.js`) would leave for a new room if
no agent came within its 15 s join timeout (the person here never leaves: a trial slower
than that counts as one).

Baseline, measured in the same run (`--baseline` trials): the spec's client-only path, with
room-recovery's server side off (`ROOM_RECOVERY_WORKER_MONITOR=off`, no watchdog): the ghost
stays ~20 s, then the page retries in a new room after 1 s.
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
from livekit import api, rtc

from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.rules.restart import RestartPolicy
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.system.options import ExtraAgent
from room_recovery.system.parts import AGENT_READY_LINE
from room_recovery.system.registrations import AgentRegistration
from room_recovery.system.supervisor import PartSpec, Supervisor
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running

ROOT = Path(__file__).resolve().parents[1]
KEY = "benchkey"
SCRIPTS = {
    "spec": "letta_voice_agent.py",
    "top": "letta_top_import.py",
    "entrypoint": "letta_entrypoint_cleanup.py",
    "plain": "plain_agent.py",
    "named": "named_agent.py",
}
NAMES = {"spec": "", "top": "", "entrypoint": "", "plain": "", "demo": "bench-demo"}
NAMES["named"] = "bench-named"
FAULTS = ("job", "job+idle", "worker", "restart")
FULL = "worker is at full capacity"  # livekit-agents' log line
PREFIX = "bk-"
SETTLE = 10.0  # seconds a restarted worker gets before the next trial (--settle)
JOIN_TIMEOUT = 15.0  # the page's: later than this, it would have tried a new room
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


def agents_of(room: rtc.Room) -> list[rtc.RemoteParticipant]:
    return [p for p in room.remote_participants.values() if p.kind == AGENT]


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.005)


def argv_of(kind: str) -> list[str]:
    if kind == "demo":
        return ["-m", "room_recovery.demo", "--agent-name", NAMES["demo"], "--health-port", "0"]
    return [str(ROOT / "tests" / "workers" / SCRIPTS[kind]), "start"]


def worker_env(settings: Settings, kind: str) -> dict[str, str]:
    return {
        "LIVEKIT_URL": settings.livekit_url,
        "LIVEKIT_API_KEY": settings.livekit_api_key,
        "LIVEKIT_API_SECRET": settings.livekit_api_secret,
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "AGENT_NAME": NAMES[kind],
    }


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def job_pids(pid: int, port: int) -> list[int]:
    """The worker's job processes: its descendants connected to the server."""
    pids = []
    for child in descendants(pid):
        try:
            if any(c.raddr and c.raddr.port == port for c in child.net_connections("tcp")):
                pids.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def job_and_idle_pids(pid: int, port: int) -> list[int]:
    """The job processes and the idle prewarmed ones: every child of the forkserver."""
    jobs = set(job_pids(pid, port))
    for child in descendants(pid):
        try:
            if "forkserver" in " ".join(child.cmdline()):
                jobs.update(p.pid for p in child.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(jobs)


class Worker:
    """One worker process of a kind, in its own process group."""

    def __init__(self, kind: str, settings: Settings, log: Path, env: dict[str, str]) -> None:
        self.kind, self.settings, self.log, self.env = kind, settings, log, env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        env = os.environ | self.env | worker_env(self.settings, self.kind)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (starts at once)
                [sys.executable, *argv_of(self.kind)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=ROOT,
            )

        def registered() -> bool:
            with self.log.open("rb") as log:
                log.seek(offset)
                return b"registered worker" in log.read()

        await until(registered, 60, f"{self.kind} worker registered")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)


class SupervisedWorker:
    """One worker run by `up`'s supervisor: restarted 1 s after it dies, its registration
    told to the watchdog (`system.registrations`), exactly as under `room-recovery up`."""

    def __init__(self, kind: str, settings: Settings, folder: Path, watchdog_url: str) -> None:
        self.kind = kind
        agent = ExtraAgent("letta", (sys.executable, *argv_of(kind)), automatic=not NAMES[kind])
        env = worker_env(settings, kind) | {WATCHDOG_URL_VARIABLE: watchdog_url}
        spec = PartSpec(
            agent.part_name, agent.argv, env=env, settle=60, ready_line=AGENT_READY_LINE
        )
        self.registration = AgentRegistration(agent, settings, watchdog_url)
        self.registered_at = 0.0  # perf_counter time of its last registration
        # always 1 s, never giving up: `up`'s first restart, for every trial
        policy = RestartPolicy(first_delay=1.0, max_delay=1.0, crash_limit=10_000)
        self.supervisor = Supervisor(
            folder / "supervised", [spec], restart=policy, observers={spec.name: self}
        )
        self.part = self.supervisor.parts[spec.name]

    def registered(self, line: str) -> str | None:  # the supervisor's PartObserver
        self.registered_at = time.perf_counter()
        return self.registration.registered(line)

    async def exited(self) -> None:
        await self.registration.exited()

    @property
    def pid(self) -> int:
        assert self.part.pid is not None
        return self.part.pid

    @property
    def log(self) -> Path:
        return self.supervisor.log_dir / f"{self.part.spec.name}.log"

    async def start(self) -> None:
        await self.supervisor.start()

    def kill(self) -> None:
        for process in [psutil.Process(self.pid), *descendants(self.pid)]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue

    async def ready_again(self, old_pid: int) -> None:
        await until(lambda: self.part.pid != old_pid and self.part.ready.is_set(), 60, "a restart")

    async def close(self) -> None:
        await self.supervisor.stop()


def token(settings: Settings, room: str, kind: str) -> str:
    grant = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(f"person-{uuid.uuid4().hex[:6]}")
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if NAMES[kind]:
        dispatch = api.RoomAgentDispatch(agent_name=NAMES[kind])
        grant = grant.with_room_config(api.RoomConfiguration(agents=[dispatch]))
    return grant.to_jwt()


async def trial(
    settings: Settings, kind: str, fault: str, pool: list[Worker | SupervisedWorker], port: int
) -> tuple[float, int, float | None]:
    """One kill; returns (seconds to a new agent, agents that joined after the kill, and
    for `restart` the seconds until the worker registered again)."""
    room = rtc.Room()
    joined: list[str] = []
    room.on("participant_connected", lambda p: joined.append(p.sid) if p.kind == AGENT else None)
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    await room.connect(settings.ws_url, token(settings, name, kind))
    serving: Worker | SupervisedWorker | None = None
    try:
        await until(lambda: agents_of(room), 30, "first agent")
        first = agents_of(room)[0].sid
        await until(lambda: any(job_pids(w.pid, port) for w in pool), 10, "job process")
        serving = next(w for w in pool if job_pids(w.pid, port))
        await asyncio.sleep(0.5)  # a session under way, heartbeat running
        joined.clear()
        old_pid = serving.pid
        victims = (job_and_idle_pids if fault == "job+idle" else job_pids)(old_pid, port)
        started = time.perf_counter()
        if fault in ("job", "job+idle"):
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
        else:
            serving.kill()
        await until(lambda: any(a.sid != first for a in agents_of(room)), 60, "new agent")
        elapsed = time.perf_counter() - started
        ready = None
        if isinstance(serving, SupervisedWorker):
            await serving.ready_again(old_pid)
            ready = serving.registered_at - started
        await asyncio.sleep(1.0)  # a duplicate dispatch would show up within this
        return elapsed, len(set(joined)), ready
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        async with RoomManager(settings=settings) as manager:
            await manager.delete_room(name)  # the job ends now, not after the empty-room wait
        if fault == "worker" and isinstance(serving, Worker):
            await serving.start()  # back to two workers for the next trial
        if fault in ("worker", "restart", "job+idle"):
            await asyncio.sleep(SETTLE)  # its job process pool warms up (see --settle)
        await until(lambda: not any(job_pids(w.pid, port) for w in pool), 30, "the job to end")


async def baseline_trial(settings: Settings, worker: Worker, port: int) -> float:
    """The spec's client path: wait out the ghost, then retry in a new room after 1 s."""
    room = rtc.Room()
    await room.connect(settings.ws_url, token(settings, f"{PREFIX}{uuid.uuid4().hex[:8]}", "spec"))
    try:
        await until(lambda: agents_of(room), 30, "first agent")
        first = agents_of(room)[0].sid
        await asyncio.sleep(0.5)
        os.kill(job_pids(worker.pid, port)[0], signal.SIGKILL)
        started = time.perf_counter()
        await until(lambda: not any(a.sid == first for a in agents_of(room)), 40, "ghost to go")
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
    await asyncio.sleep(1.0)  # the spec's first retry delay
    retry = rtc.Room()
    await retry.connect(settings.ws_url, token(settings, f"{PREFIX}{uuid.uuid4().hex[:8]}", "spec"))
    try:
        await until(lambda: agents_of(retry), 30, "agent after retry")
        return time.perf_counter() - started
    finally:
        await asyncio.wait_for(retry.disconnect(), 10)
        await until(lambda: not job_pids(worker.pid, port), 30, "the job to end")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def row(name: str, seconds: list[float], duplicates: int, moved: int) -> str:
    return (
        f"| {name:<28} | {len(seconds):>2} | {statistics.median(seconds):5.2f} | "
        f"{percentile(seconds, 0.95):5.2f} | {max(seconds):5.2f} | {moved:>12} | "
        f"{duplicates:>10} |"
    )


async def run_kind(
    kind: str, faults: tuple[str, ...], kills: int, settings: Settings, folder: Path, port: int
) -> tuple[list[str], list[str], dict[str, float]]:
    """Every fault of one kind, each `kills` times: table rows, notes, medians."""
    rows: list[str] = []
    notes: list[str] = []
    medians: dict[str, float] = {}
    options = WatchdogOptions(agent_name=NAMES[kind], automatic=not NAMES[kind])
    watchdog = Watchdog(settings, options)
    async with running(create_app(watchdog), "127.0.0.1", 0) as url:
        env = {WATCHDOG_URL_VARIABLE: url}
        for fault in faults:
            pool: list[Worker | SupervisedWorker]
            if fault == "restart":
                pool = [SupervisedWorker(kind, settings, folder / f"{kind}-sup", url)]
            else:
                count = 2 if fault == "worker" else 1
                pool = [
                    Worker(kind, settings, folder / f"{kind}-{fault}-{n}.log", env)
                    for n in range(count)
                ]
            for worker in pool:
                await worker.start()
            times: list[float] = []
            readies: list[float] = []
            duplicates = 0
            try:
                for number in range(kills):
                    elapsed, new, ready = await trial(settings, kind, fault, pool, port)
                    times.append(elapsed)
                    readies += [ready] if ready is not None else []
                    duplicates += max(0, new - 1)
                    print(
                        f"{kind} {fault} {number + 1}: {elapsed:.2f} s, {new} new"
                        + (f", worker registered after {ready:.2f} s" if ready else ""),
                        flush=True,
                    )
            finally:
                for worker in pool:
                    if isinstance(worker, SupervisedWorker):
                        await worker.close()
                    else:
                        worker.stop()
            name = f"{kind}, {fault}"
            medians[name] = statistics.median(times)
            moved = sum(1 for t in times if t > JOIN_TIMEOUT)
            rows.append(row(name, times, duplicates, moved))
            if readies:
                gaps = [t - r for t, r in zip(times, readies, strict=False)]
                notes.append(
                    f"{name}: registered again after p50 {statistics.median(readies):.2f} s; "
                    f"the agent came p50 {statistics.median(gaps):.2f} s, "
                    f"p95 {percentile(gaps, 0.95):.2f} s after that"
                )
            full = sum(w.log.read_text(errors="replace").count(FULL) for w in pool)
            if full:
                notes.append(f"{name}: its workers marked themselves full {full} time(s)")
    return rows, notes, medians


async def main(kills: int, baseline: int, kinds: list[str], faults: tuple[str, ...]) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=PREFIX
    )
    rows: list[str] = []
    notes: list[str] = []
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        async with LiveKitServer(config, Path(folder)):
            spec_times: list[float] = []
            if baseline:  # first, so that a cut-short run still has it
                plain = Worker(
                    "spec",
                    settings,
                    Path(folder) / "baseline.log",
                    {"ROOM_RECOVERY_WORKER_MONITOR": "off"},
                )
                await plain.start()
                try:
                    for number in range(baseline):
                        spec_times.append(await baseline_trial(settings, plain, config.http_port))
                        print(f"baseline {number + 1}: {spec_times[-1]:.2f} s", flush=True)
                finally:
                    plain.stop()
            for kind in kinds:
                kind_rows, kind_notes, kind_medians = await run_kind(
                    kind, faults, kills, settings, Path(folder), config.http_port
                )
                rows += kind_rows
                notes += kind_notes
                medians |= kind_medians
    print()
    print("time from the SIGKILL to a new agent visible to the person (seconds)")
    print(
        "| agent, fault                 |  n |   p50 |   p95 |   max | room changes | duplicates |"
    )
    print(
        "|------------------------------|----|-------|-------|-------|--------------|------------|"
    )
    for line in rows:
        print(line)
    if spec_times:
        print(row("spec's client path (baseline)", spec_times, 0, len(spec_times)))
        base = statistics.median(spec_times)
        for name, median in medians.items():
            print(f"{name}: {base / median:.1f}x faster than the baseline (medians)")
    for line in notes:
        print(line)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=2)
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE,
        help="seconds after a worker is started again before the next trial (a worker that "
        "just started serves its first job in about 4.6 s here, not 0.5 s)",
    )
    parser.add_argument(
        "--kind", action="append", choices=list(NAMES), help="only these agents (repeatable)"
    )
    parser.add_argument(
        "--fault", action="append", choices=FAULTS, help="only these faults (repeatable)"
    )
    arguments = parser.parse_args()
    SETTLE = arguments.settle
    sys.exit(
        asyncio.run(
            main(
                arguments.kills,
                arguments.baseline,
                arguments.kind or list(NAMES),
                tuple(arguments.fault or FAULTS),
            )
        )
    )
