"""Benchmark: any agent, as the user wired it, killed mid-session; how soon is one back?

    .venv/bin/python bench/bench_agent_kinds.py [--kills 10] [--baseline 2]

On a real livekit-server, with the watchdog (in this process, its worker links on) and
real workers of two kinds:

* demo:  the demo agent (named dispatch, pre-join hook, session guard with heartbeat);
* spec:  `tests/workers/letta_voice_agent.py`, wired as the spec says: automatic dispatch
         (no agent_name) and only the spec's request-handler snippet; no room-recovery code
         in its entrypoint;
* named: `tests/workers/named_agent.py`: named dispatch, our request_handler, no guard.

Faults, each `--kills` times per kind:

* job:     the agent's job process is SIGKILLed (its worker lives on);
* worker:  the serving worker is SIGKILLed with its jobs, while a second worker of the same
           agent is registered (the killed one is started again before the next trial);
* restart: the only worker is SIGKILLed and started again 1 s later, as `up`'s supervisor
           does; its restart time (kill to linked again) is printed beside it.

Each trial: a person (rtc, in this process) joins a fresh room and gets an agent; the
fault; the clock runs until a *new* agent is visible to the person. Also counted: agents
that joined after the fault (more than one is a duplicate) and room changes (the person
never leaves: recovery is in place, so always 0 here).

With `--unannounced N`, N more job kills per agent (but the demo agent, whose heartbeat
shows it at once) run with the worker monitor's announcement off (ROOM_RECOVERY_ANNOUNCE=off):
the new agent is then shown on LiveKit's next 3 s tick, as before issue 12's fix.

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

from room_recovery.agent.announce import ANNOUNCE_SWITCH
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running

ROOT = Path(__file__).resolve().parents[1]
KEY = "benchkey"
DEMO = "bench-demo"
NAMED = "bench-named"
NAMES = {"demo": DEMO, "spec": "", "named": NAMED}
FULL = "worker is at full capacity"  # livekit-agents' log line
PREFIX = "bk-"
SETTLE = 10.0  # seconds a restarted worker gets before the next trial (--settle)
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


def agents_of(room: rtc.Room) -> list[rtc.RemoteParticipant]:
    return [p for p in room.remote_participants.values() if p.kind == AGENT]


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.005)


class Worker:
    """One worker process of a kind, in its own process group."""

    def __init__(self, kind: str, settings: Settings, log: Path, env: dict[str, str]) -> None:
        self.kind, self.settings, self.log, self.env = kind, settings, log, env
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if self.kind == "demo":
            argv = ["-m", "room_recovery.demo", "--agent-name", DEMO, "--health-port", "0"]
        else:
            script = "letta_voice_agent.py" if self.kind == "spec" else "named_agent.py"
            argv = [str(ROOT / "tests" / "workers" / script), "start"]
        env = (
            os.environ
            | self.env
            | {
                "LIVEKIT_URL": self.settings.livekit_url,
                "LIVEKIT_API_KEY": self.settings.livekit_api_key,
                "LIVEKIT_API_SECRET": self.settings.livekit_api_secret,
                "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
                "AGENT_NAME": NAMED,
            }
        )
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (starts at once)
                [sys.executable, *argv],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=ROOT,
            )
        ready = "linked to the watchdog" if WATCHDOG_URL_VARIABLE in self.env else "registered"

        def registered() -> bool:
            with self.log.open("rb") as log:
                log.seek(offset)
                return ready.encode() in log.read()

        await until(registered, 60, f"{self.kind} worker ready")

    def job_pids(self, port: int) -> list[int]:
        assert self.process is not None
        pids = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any(c.raddr and c.raddr.port == port for c in child.net_connections("tcp")):
                    pids.append(child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return pids

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
        with_group = self.process.pid
        try:
            os.killpg(with_group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)


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


async def restart(worker: Worker, started: float) -> float:
    """Start `worker` again 1 s after its death, as `up` does; seconds from kill to ready."""
    await asyncio.sleep(1.0)
    await worker.start()
    return time.perf_counter() - started


async def trial(
    settings: Settings, kind: str, fault: str, pool: list[Worker], port: int
) -> tuple[float, int, float | None]:
    """One kill; returns (seconds to a new agent, agents that joined after the kill, and
    for `restart` the seconds until the worker was ready again)."""
    room = rtc.Room()
    joined: list[str] = []
    room.on("participant_connected", lambda p: joined.append(p.sid) if p.kind == AGENT else None)
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    await room.connect(settings.ws_url, token(settings, name, kind))
    serving: Worker | None = None
    try:
        await until(lambda: agents_of(room), 30, "first agent")
        first = agents_of(room)[0].sid
        await until(lambda: any(w.job_pids(port) for w in pool), 10, "job process")
        serving = next(w for w in pool if w.job_pids(port))
        await asyncio.sleep(0.5)  # a session under way, heartbeat running
        joined.clear()
        started = time.perf_counter()
        back: asyncio.Task[float] | None = None
        if fault == "job":
            os.kill(serving.job_pids(port)[0], signal.SIGKILL)
        else:
            serving.kill()
            if fault == "restart":
                back = asyncio.create_task(restart(serving, started))
        await until(lambda: any(a.sid != first for a in agents_of(room)), 40, "new agent")
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)  # a duplicate dispatch would show up within this
        return elapsed, len(set(joined)), (await back if back else None)
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        async with RoomManager(settings=settings) as manager:
            await manager.delete_room(name)  # the job ends now, not after the empty-room wait
        if fault == "worker" and serving is not None:
            await serving.start()  # back to two workers for the next trial
            await asyncio.sleep(SETTLE)  # its job process pool warms up (see --settle)
        await until(lambda: not any(w.job_pids(port) for w in pool), 30, "the job to end")


async def baseline_trial(settings: Settings, worker: Worker, port: int) -> float:
    """The spec's client path: wait out the ghost, then retry in a new room after 1 s."""
    room = rtc.Room()
    await room.connect(settings.ws_url, token(settings, f"{PREFIX}{uuid.uuid4().hex[:8]}", "spec"))
    try:
        await until(lambda: agents_of(room), 30, "first agent")
        first = agents_of(room)[0].sid
        await asyncio.sleep(0.5)
        os.kill(worker.job_pids(port)[0], signal.SIGKILL)
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
        await until(lambda: not worker.job_pids(port), 30, "the job to end")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def row(name: str, seconds: list[float], duplicates: int) -> str:
    return (
        f"| {name:<30} | {len(seconds):>2} | {statistics.median(seconds):5.2f} | "
        f"{percentile(seconds, 0.95):5.2f} | {max(seconds):5.2f} | 0 | {duplicates} |"
    )


async def main(kills: int, baseline: int, kinds: list[str], unannounced: int) -> int:
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
                    Path(folder) / "plain.log",
                    {"ROOM_RECOVERY_WORKER_MONITOR": "off"},
                )
                await plain.start()
                try:
                    for number in range(baseline):
                        spec_times.append(await baseline_trial(settings, plain, config.http_port))
                        print(f"baseline {number + 1}: {spec_times[-1]:.2f} s", flush=True)
                finally:
                    plain.stop()
            runs: list[tuple[str, str, tuple[str, ...], int, dict[str, str]]] = [
                (kind, kind, ("job", "worker", "restart"), kills, {}) for kind in kinds
            ]
            if unannounced:  # the same agents, shown on LiveKit's 3 s tick (issue 12's before)
                off = {ANNOUNCE_SWITCH: "off"}
                runs += [
                    (f"{kind} unannounced", kind, ("job",), unannounced, off)
                    for kind in kinds
                    if kind != "demo"  # its heartbeat shows it at once anyway
                ]
            for label, kind, faults, count, extra in runs:
                options = WatchdogOptions(agent_name=NAMES[kind], automatic=kind == "spec")
                watchdog = Watchdog(settings, options)
                async with running(create_app(watchdog), "127.0.0.1", 0) as url:
                    env = {WATCHDOG_URL_VARIABLE: url} | extra
                    pool = [
                        Worker(kind, settings, Path(folder) / f"{kind}-{n}.log", env)
                        for n in (0, 1)
                    ]
                    try:
                        for fault in faults:
                            workers = pool if fault == "worker" else pool[:1]
                            for idle in pool[len(workers) :]:
                                idle.stop()  # one worker only: it alone serves the agent
                            for worker in workers:
                                if worker.process is None or worker.process.poll() is not None:
                                    await worker.start()
                            times, readies, duplicates = [], [], 0
                            for number in range(count):
                                elapsed, new, ready = await trial(
                                    settings, kind, fault, workers, config.http_port
                                )
                                times.append(elapsed)
                                readies += [ready] if ready is not None else []
                                duplicates += max(0, new - 1)
                                print(
                                    f"{label} {fault} {number + 1}: {elapsed:.2f} s, {new} new"
                                    + (f", worker ready after {ready:.2f} s" if ready else ""),
                                    flush=True,
                                )
                            name = f"{label}, {fault} killed"
                            medians[name] = statistics.median(times)
                            rows.append(row(name, times, duplicates))
                            if readies:
                                notes.append(
                                    f"{name}: the worker was ready again after p50 "
                                    f"{statistics.median(readies):.2f} s (kill, 1 s, start)"
                                )
                    finally:
                        for worker in pool:
                            worker.stop()
                    # livekit-agents marks a worker full while its load (CPU by default)
                    # is at its load_threshold, and says so only on the next status update
                    full = sum(w.log.read_text(errors="replace").count(FULL) for w in pool)
                    notes.append(f"{label}: its workers marked themselves full {full} time(s)")
    print()
    print("time from the SIGKILL to a new agent visible to the person (seconds)")
    header = "| agent, fault                   |  n |   p50 |   p95 |   max |"
    print(header + " room changes | duplicates |")
    print(
        "|--------------------------------|----|-------|-------|-------|--------------|------------|"
    )
    for line in rows:
        print(line)
    if spec_times:
        baseline_row = row("spec's client path (baseline)", spec_times, 0)
        print(baseline_row.replace("| 0 | 0 |", "| 1 | 0 |"))
        base = statistics.median(spec_times)
        for name, median in medians.items():
            print(f"{name}: {base / median:.1f}x faster than the baseline (medians)")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=2)
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE,
        help="seconds after a killed worker is started again before the next trial (a "
        "worker that just started serves its first job in about 4.6 s here, not 0.5 s)",
    )
    parser.add_argument(
        "--unannounced",
        type=int,
        default=0,
        help="also this many job kills per agent with the announcement off (before/after)",
    )
    parser.add_argument(
        "--kind", action="append", choices=list(NAMES), help="only these agents (repeatable)"
    )
    arguments = parser.parse_args()
    kinds = arguments.kind or list(NAMES)
    SETTLE = arguments.settle
    sys.exit(asyncio.run(main(arguments.kills, arguments.baseline, kinds, arguments.unannounced)))
