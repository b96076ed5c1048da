"""The cluster side of `bench/chaos.py`: the system it starts, the faults, what it audits.

`own_cluster` runs `room-recovery up --detach --nodes N` on free ports in a temporary state
folder (redis-server with its password, N livekit-server nodes, the agent worker, the page
server and one watchdog) and starts a SECOND watchdog itself (`room-recovery watch` with the
same environment and REDIS_URL), restarted by the bench when it dies, stopped by its handle.

`Watcher` samples, every second, status.json (which pid each part has: a new pid is a death
of the old one), Redis's room_node_map (which node hosts each room), the CPU time of every
process the bench's `up` started (and their children) and of the bench itself, and Redis's
INFO. `audit_removals` reads every agent removal our code logged (the watchdogs' and the
agent worker's JSON logs: "Removed dead agent IDENTITY (SID) from room ROOM") and judges
each removed sid dead or live at that moment (see `Removal`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil
import redis.asyncio as aioredis
from livekit import api

from room_recovery.core.settings import Settings, load_settings
from room_recovery.system.livekit_server import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.system import free_port_triple, spare_port  # noqa: E402

CLUSTER_FAULTS = {  # weight of each fault on a cluster
    "job_killed": 4,
    "worker_killed": 1,
    "node_killed": 2,
    "leader_killed": 2,
    "leader_stopped": 2,
    "redis_restarted": 1,
    "redis_down": 1,
    "web_stopped": 2,
}
LEADER_STOP = 8.0  # seconds a stopped leader stays stopped: past its 3 s lease, short of
# the supervisor's 10 s "silent" verdict for `up`'s own watchdog
REDIS_DOWN = 10.0
WEB_STOP = 3.0
SETTLED = 60.0  # longest a fault is followed until its part is healthy again


def wall() -> float:
    return time.time()


@dataclass(frozen=True)
class Worker:
    """The agent worker a chaos run's `up` starts: `up`'s flags for it, its part's name
    (its pid in status.json, its log `logs/PART.log`), and how a watchdog names its agent."""

    kind: str
    flags: tuple[str, ...]
    part: str
    watch_agent: str


GUIDE_WORKER = ROOT / "tests" / "workers" / "letta_voice_agent.py"
WORKERS = {
    # the user's worker as the guide wires it: automatic dispatch, the guide's request
    # handler pasted character for character, nothing else of ours (`up --agent-command`)
    "spec": Worker(
        "spec",
        ("--no-agent", "--agent-command", f"auto:letta={sys.executable} {GUIDE_WORKER} start"),
        "agent-letta",
        "auto:letta",
    ),
    # the demo agent: named dispatch, our request handler, its session guard and heartbeat
    "demo": Worker("demo", (), "agent", "demo-agent"),
}


# --- the system -----------------------------------------------------------------------------


def normal_priority() -> None:
    """In a child of a bench whose people run niced (chaos.py --people-nice): the system's
    own parts run at the usual priority (lowering a nice value needs root; else as is)."""
    with suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, 0)


@dataclass
class SecondWatch:
    """A second `room-recovery watch`, same environment as `up`'s (REDIS_URL included)."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    agents: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    wanted: bool = True  # restarted by `keep_running` while True

    def start(self) -> None:
        flags = [f for name in self.agents for f in ("--agent", name)]
        argv = [sys.executable, "-m", "room_recovery.cli", "watch", "--port", str(self.port)]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*argv, *flags],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.log.parent,
                preexec_fn=normal_priority,  # part of the system, not of the niced people
            )

    @property
    def pid(self) -> int | None:
        running = self.process is not None and self.process.poll() is None
        return self.process.pid if running and self.process else None

    async def keep_running(self) -> None:
        """The bench is this watchdog's supervisor: started again 1 s after it dies."""
        while self.wanted:
            await asyncio.sleep(0.5)
            if self.wanted and self.process is not None and self.process.poll() is not None:
                await asyncio.sleep(1.0)
                if self.wanted:
                    self.start()

    def stop(self) -> None:
        self.wanted = False
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)  # if stopped, it must hear the SIGTERM
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Cluster:
    page_url: str
    state_dir: Path
    settings: Settings
    nodes: int
    node_ports: list[int]  # each node's HTTP port (node k = LIVEKIT_URL's port + 10 k)
    watch_ports: list[int]  # up's watchdog, then the second
    redis_url: str
    second: SecondWatch
    worker: Worker = WORKERS["demo"]

    def node_part(self, k: int) -> str:
        return "livekit" if k == 0 else f"livekit-{k + 1}"


def chaos_env(port: int, folder: Path) -> dict[str, str]:
    """The environment of a chaos run's own `up`: this machine's, without any LIVEKIT_ or
    ROOM_ settings of the developer's, a fresh secret, the token bounds off (every person
    comes from loopback)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
    return inherited | {
        "LIVEKIT_URL": f"ws://127.0.0.1:{port}",
        "LIVEKIT_API_KEY": "chaoskey",
        "LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
        "ROOM_PREFIX": "chaos-",
        "ROOM_RECOVERY_STATE": str(folder),
        "ROOM_RECOVERY_TOKEN_RATE": "0",
        "ROOM_RECOVERY_TOKEN_ROOMS": "0",
        "ROOM_RECOVERY_TOKEN_TOTAL_ROOMS": "0",
        # the guide's worker keeps livekit-agents' default idle job processes, one per CPU
        "LETTA_IDLE_PROCESSES": str(os.cpu_count() or 1),
    }


@contextmanager
def own_cluster(
    nodes: int, second_watch: bool = True, worker: Worker = WORKERS["demo"]
) -> Iterator[Cluster]:
    """`up --detach --nodes N` on free ports in a temporary state folder, running `worker`,
    and a second watchdog; at the end the second watchdog is stopped by its handle, then
    `down`."""
    folder = Path(tempfile.mkdtemp(prefix="chaos-cluster-"))
    port = free_port_triple(nodes=nodes)
    web, watch, agent, redis_port = spare_port(), spare_port(), spare_port(), spare_port()
    env = chaos_env(port, folder)
    env.pop("REDIS_URL", None)
    cli = [sys.executable, "-m", "room_recovery.cli"]
    flags = ["--web-port", str(web), "--watch-port", str(watch), "--agent-health-port", str(agent)]
    flags += ["--nodes", str(nodes), "--redis-port", str(redis_port), *worker.flags]
    # with --nodes, up also runs Prometheus: on a free port too, never its default's
    flags += ["--prometheus-port", str(spare_port())]
    # LiveKit's webhooks and the workers' links reach both watchdogs, as a deployment of
    # two lists both
    second_port = spare_port()
    if second_watch:
        flags += ["--peer-watchdog", f"http://127.0.0.1:{second_port}"]
    started = subprocess.run(
        [*cli, "up", "--detach", *flags], env=env, cwd=folder, capture_output=True, text=True
    )
    if started.returncode != 0:
        subprocess.run([*cli, "down"], env=env, cwd=folder, capture_output=True, timeout=90)
        raise SystemExit(f"could not start the cluster: {started.stderr.strip()}")
    password = (folder / "redis" / "password").read_text().strip()
    redis_url = f"redis://:{password}@127.0.0.1:{redis_port}/0"
    settings = load_settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key="chaoskey",
        livekit_api_secret=env["LIVEKIT_API_SECRET"],
        room_prefix="chaos-",
    )
    # as `up` runs its watchdog: JSON logs, REDIS_URL, the demo agent's name
    watch_env = env | {"ROOM_RECOVERY_LOG_FORMAT": "json", "REDIS_URL": redis_url}
    second = SecondWatch(
        watch_env, folder / "logs" / "watch-2.log", agents=(worker.watch_agent,), port=second_port
    )
    if second_watch:
        second.start()
    cluster = Cluster(
        f"http://127.0.0.1:{web}",
        folder,
        settings,
        nodes,
        [port + 10 * k for k in range(nodes)],
        [watch, second.port] if second_watch else [watch],
        redis_url,
        second,
        worker,
    )
    try:
        yield cluster
    finally:
        second.stop()
        subprocess.run([*cli, "down"], env=env, cwd=folder, capture_output=True, timeout=120)


def token(cluster: Cluster, room: str, identity: str) -> str:
    """A person's token for `room`, whose creation dispatches the demo agent."""
    settings = cluster.settings
    grant = api.VideoGrants(room_join=True, room=room)
    dispatch = api.RoomAgentDispatch(agent_name="demo-agent")
    return (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_grants(grant)
        .with_room_config(api.RoomConfiguration(agents=[dispatch]))
        .to_jwt()
    )


def part_pids(state_dir: Path) -> dict[str, int]:
    try:
        status = json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    pids = {}
    for name, part in status.get("parts", {}).items():
        with suppress(KeyError, TypeError, ValueError):
            pids[name] = int(part["pid"])
    return pids


def part_states(state_dir: Path) -> dict[str, str]:
    try:
        status = json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return {name: str(part.get("state")) for name, part in status.get("parts", {}).items()}


async def roles(http: aiohttp.ClientSession, ports: list[int]) -> list[str | None]:
    """Each watchdog's role from its /healthz ("leader", "standby"...), None if silent."""

    async def one(port: int) -> str | None:
        try:
            async with http.get(
                f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=1.5)
            ) as answer:
                return str((await answer.json(content_type=None)).get("role"))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    return list(await asyncio.gather(*(one(p) for p in ports)))


# --- what happened while it ran -------------------------------------------------------------


@dataclass
class Death:
    at: float  # wall clock
    part: str  # "agent", "livekit", "livekit-2", "watch", "watch-2", "redis", "web"
    pid: int


@dataclass
class Watcher:
    """Samples the cluster every second while the bench runs (see the module's docstring)."""

    cluster: Cluster
    deaths: list[Death] = field(default_factory=list)
    room_nodes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    node_ids: dict[str, str] = field(default_factory=dict)  # LiveKit node id -> part name
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # part -> s
    concurrent: list[int] = field(default_factory=list)
    redis_samples: list[dict[str, float]] = field(default_factory=list)
    two_leaders: float = 0.0  # seconds during which both watchdogs said "leader"
    no_leader: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    _last: dict[int, tuple[str, float]] = field(default_factory=dict)
    _pids: dict[str, int] = field(default_factory=dict)
    _redis_base: tuple[float, float] | None = None
    _commands: float = 0.0

    def pids(self) -> dict[str, int]:
        pids = part_pids(self.cluster.state_dir)
        if self.cluster.second.pid is not None:
            pids["watch-2"] = self.cluster.second.pid
        return pids

    async def run(self, stop: asyncio.Event, active: object) -> None:
        self.started = wall()
        client = aioredis.from_url(self.cluster.redis_url, socket_timeout=1.0)
        tick = 0
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                self._sample_pids()
                self._sample_cpu()
                self.concurrent.append(active())  # type: ignore[operator]
                await self._sample_leaders(http)
                if tick % 2 == 0:
                    await self._sample_rooms(client)
                if tick % 10 == 0:
                    await self._sample_redis(client)
                tick += 1
                await asyncio.gather(asyncio.wait_for(stop.wait(), 1.0), return_exceptions=True)
        self._sample_cpu()
        await self._sample_redis(client)
        self.ended = wall()
        with suppress(Exception):
            await client.aclose()

    def _sample_pids(self) -> None:
        now = self.pids()
        for part, pid in now.items():
            old = self._pids.get(part)
            if old is not None and old != pid:
                self.deaths.append(Death(wall(), part, old))
            self._pids[part] = pid
        for part, pid in list(self._pids.items()):
            if part not in now and not psutil.pid_exists(pid):
                self.deaths.append(Death(wall(), part, pid))
                del self._pids[part]

    def _sample_cpu(self) -> None:
        """CPU seconds per part: each part's process and its descendants (the worker's job
        processes), and the bench's own process with its children (the vanishing people)."""
        seen: set[int] = set()
        owners = {**self.pids(), "bench": os.getpid()}
        for part, pid in owners.items():
            try:
                root = psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in family:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                total = times.user + times.system
                seen.add(process.pid)
                known = self._last.get(process.pid)
                if known is None:
                    # a process that started during the run: all its time is the run's
                    started_here = process.create_time() >= self.started - 1
                    self._last[process.pid] = (part, 0.0 if started_here else total)
                    known = self._last[process.pid]
                self.cpu[part] += max(0.0, total - known[1])
                self._last[process.pid] = (part, total)
        for pid in set(self._last) - seen:
            del self._last[pid]

    async def _sample_leaders(self, http: aiohttp.ClientSession) -> None:
        found = await roles(http, self.cluster.watch_ports)
        leaders = sum(1 for role in found if role == "leader")
        if leaders > 1:
            self.two_leaders += 1.0
        elif leaders == 0:
            self.no_leader += 1.0

    async def _sample_rooms(self, client: aioredis.Redis) -> None:
        try:
            mapping = await client.hgetall("room_node_map")
        except Exception:  # Redis down or restarting: no sample
            return
        for room, node in mapping.items():
            self.room_nodes[room.decode()].add(node.decode())
        self._read_node_ids()

    def _read_node_ids(self) -> None:
        for k in range(self.cluster.nodes):
            part = self.cluster.node_part(k)
            log = self.cluster.state_dir / "logs" / f"{part}.log"
            with suppress(OSError):
                for found in re.finditer(r'"nodeID":\s*"([A-Za-z0-9_]+)"', log.read_text()):
                    self.node_ids[found.group(1)] = part

    async def _sample_redis(self, client: aioredis.Redis) -> None:
        try:
            stats = await client.info("stats")
            memory = await client.info("memory")
            keys = await client.dbsize()
        except Exception:  # Redis down or restarting
            return
        commands = float(stats["total_commands_processed"])
        now = wall()
        if self._redis_base is None or commands < self._redis_base[1]:  # first, or restarted
            self._redis_base = (now, commands)
        else:
            self._commands += commands - self._redis_base[1]
            self._redis_base = (now, commands)
        self.redis_samples.append(
            {
                "at": now,
                "commands": self._commands,
                "used_memory": float(memory["used_memory"]),
                "keys": float(keys),
                "ops": float(stats.get("instantaneous_ops_per_sec", 0)),
            }
        )

    def cost(self) -> dict[str, float]:
        """Each part's CPU as a share of one core over the run."""
        span = max(1e-9, (self.ended or wall()) - self.started)
        return {part: seconds / span for part, seconds in sorted(self.cpu.items())}

    def redis_load(self) -> dict[str, float]:
        if len(self.redis_samples) < 2:
            return {}
        first, last = self.redis_samples[0], self.redis_samples[-1]
        span = max(1e-9, last["at"] - first["at"])
        return {
            "ops_per_s": (last["commands"] - first["commands"]) / span,
            "used_memory_mb": max(s["used_memory"] for s in self.redis_samples) / 2**20,
            "keys_max": max(s["keys"] for s in self.redis_samples),
        }


# --- faults ---------------------------------------------------------------------------------


@dataclass
class Strike:
    name: str
    start: float  # monotonic
    end: float  # monotonic: when the part struck was healthy (or resumed) again
    detail: str = ""


class ClusterFaults:
    """Strikes the processes the bench's own `up` started (status.json's pids) and its own
    second watchdog (its Popen handle); never anything else."""

    def __init__(self, cluster: Cluster, http: aiohttp.ClientSession) -> None:
        self.cluster = cluster
        self.http = http
        self.strikes: list[Strike] = []
        self.kills: list[Death] = []  # each SIGKILL the bench sent, at the moment it sent it
        self.busy: set[str] = set()  # parts stopped right now: not struck again meanwhile
        self.skipped: dict[str, int] = defaultdict(int)

    def pid(self, part: str) -> int | None:
        if part == "watch-2":
            return self.cluster.second.pid
        return part_pids(self.cluster.state_dir).get(part)

    async def leader(self) -> str | None:
        found = await roles(self.http, self.cluster.watch_ports)
        names = ["watch", "watch-2"]
        leading = [names[i] for i, role in enumerate(found) if role == "leader"]
        return random.choice(leading) if leading else None

    async def strike(self, fault: str) -> None:
        started = time.monotonic()
        detail = await self._strike(fault)
        if detail is None:
            self.skipped[fault] += 1
            return
        self.strikes.append(Strike(fault, started, time.monotonic(), detail))

    async def _strike(self, fault: str) -> str | None:
        from tests.support.worker import connected_children

        if fault == "job_killed":
            worker = self.pid(self.cluster.worker.part)
            jobs: list[int] = []
            for port in self.cluster.node_ports if worker else []:
                jobs += connected_children(worker or 0, port)
            if not jobs:
                return None
            victim = random.choice(jobs)
            kill(victim, signal.SIGKILL)
            await asyncio.sleep(1.0)
            return f"job {victim}"
        if fault == "worker_killed":
            return await self._kill_part(self.cluster.worker.part, signal.SIGKILL)
        if fault == "node_killed":
            k = random.randrange(self.cluster.nodes)
            return await self._kill_part(self.cluster.node_part(k), signal.SIGKILL)
        if fault == "redis_restarted":
            how = random.choice([signal.SIGKILL, signal.SIGTERM])
            return await self._kill_part("redis", how)
        if fault == "leader_killed":
            part = await self.leader()
            if part is None or part in self.busy:
                return None
            return await self._kill_part(part, signal.SIGKILL, until_leader=True)
        if fault == "leader_stopped":
            part = await self.leader()
            if part is None:
                return None
            return await self._stop_part(part, LEADER_STOP, until_leader=True)
        if fault == "redis_down":
            return await self._stop_part("redis", REDIS_DOWN)
        if fault == "web_stopped":
            return await self._stop_part("web", WEB_STOP)
        raise ValueError(fault)

    async def _kill_part(self, part: str, signum: int, until_leader: bool = False) -> str | None:
        pid = self.pid(part)
        if pid is None or part in self.busy:
            return None
        self.busy.add(part)
        try:
            kill(pid, signum)
            if signum == signal.SIGKILL:  # the death itself: up's log and the sampling lag it
                self.kills.append(Death(wall(), part, pid))
            await self._settle(part, pid, until_leader)
        finally:
            self.busy.discard(part)
        return f"{part} {pid} {signal.Signals(signum).name}"

    async def _stop_part(self, part: str, seconds: float, until_leader: bool = False) -> str | None:
        pid = self.pid(part)
        if pid is None or part in self.busy:
            return None
        self.busy.add(part)
        try:
            kill(pid, signal.SIGSTOP)
            await asyncio.sleep(seconds)
            kill(pid, signal.SIGCONT)  # if its supervisor has not killed it meanwhile
            await self._settle(part, pid, until_leader)
        finally:
            self.busy.discard(part)
        return f"{part} {pid} SIGSTOP {seconds:g} s"

    async def _settle(self, part: str, old_pid: int, until_leader: bool) -> None:
        """Wait until the system is whole again: the part struck runs again, every part of
        `up` says it is healthy (the agent worker only while registered), the second
        watchdog answers and one watchdog leads; for at most SETTLED seconds."""
        deadline = time.monotonic() + SETTLED
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            pid = self.pid(part)
            states = part_states(self.cluster.state_dir)
            healthy = bool(states) and all(state == "healthy" for state in states.values())
            healthy = healthy and pid is not None and (pid != old_pid or alive(old_pid))
            found = await roles(self.http, self.cluster.watch_ports)
            healthy = healthy and None not in found
            if healthy and (until_leader or part == "redis"):
                healthy = "leader" in found
            if healthy:
                return


def kill(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- removals -------------------------------------------------------------------------------


@dataclass
class Removal:
    """One agent our code removed, and whether it was dead then.

    A removed sid counts as dead (rightly removed) when, between the moment it could first
    have been there and its removal, something killed it: the agent worker logged its room's
    job process dying (the "💀" line), the agent worker itself died (its pid changed in
    status.json), or a LiveKit node it depended on died (node 1, where the worker and its job
    processes connect, or the node Redis mapped its room to; a room whose node was never seen
    counts any node's death). "Could first have been there" is when a person of the bench
    first saw that sid; for a sid no person saw, the start of the room's session. Anything
    else is a live agent removed.
    """

    at: float  # wall clock
    room: str
    identity: str
    sid: str
    by: str  # which log: watch, watch-2, agent
    dead_because: str = ""


def _epoch(record: dict[str, object]) -> float:
    """When a JSON log line was written: our logs' "time" (UTC, "...Z"), or livekit-agents'
    "timestamp" (a user's worker logs as livekit-agents does, "...+00:00")."""
    stamp = str(record.get("time") or record["timestamp"])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def read_removals(state_dir: Path, worker_part: str = "agent") -> list[Removal]:
    removals = []
    for by in ("watch", "watch-2", worker_part):
        path = state_dir / "logs" / f"{by}.log"
        with suppress(OSError), path.open(errors="replace") as lines:
            for line in lines:
                if "Removed dead agent" not in line and "Removed participant" not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                identity = str(record.get("identity", ""))
                if "Removed participant" in line and not identity.startswith("agent"):
                    continue  # a person (stale): not an agent
                removals.append(
                    Removal(
                        _epoch(record),
                        str(record.get("room", "")),
                        identity,
                        str(record.get("sid", "")),
                        by,
                    )
                )
    return removals


def read_jobs_ended(state_dir: Path, worker_part: str) -> list[tuple[float, str, str]]:
    """The jobs a full worker ended (its monitor's "🍂 Ending job" lines): (when, room, why)."""
    ended = []
    path = state_dir / "logs" / f"{worker_part}.log"
    with suppress(OSError), path.open(errors="replace") as lines:
        for line in lines:
            if "Ending job" not in line:
                continue
            with suppress(ValueError, KeyError):
                record = json.loads(line)
                ended.append((_epoch(record), str(record["room"]), str(record["message"])))
    return ended


JOB_ENDS = ("its job process exited", '"process exiting"', "process exited with")


def job_deaths(state_dir: Path, worker_part: str = "agent") -> dict[str, list[float]]:
    """Room -> when one of its job processes ended: the worker's monitor saw it die (the
    "💀" line), or the job said it was exiting (a person's room_cleanup, the room gone)."""
    deaths: dict[str, list[float]] = defaultdict(list)
    path = state_dir / "logs" / f"{worker_part}.log"
    with suppress(OSError), path.open(errors="replace") as lines:
        for line in lines:
            if not any(end in line for end in JOB_ENDS) or '"room"' not in line:
                continue
            with suppress(ValueError, KeyError):
                record = json.loads(line)
                deaths[str(record["room"])].append(_epoch(record))
    return deaths


def judge_removals(
    removals: list[Removal],
    watcher: Watcher,
    seen: dict[str, float],
    room_start: dict[str, float],
) -> list[Removal]:
    """Fill each removal's `dead_because` ("" for a live agent removed)."""
    worker = watcher.cluster.worker.part
    jobs = job_deaths(watcher.cluster.state_dir, worker)
    for removal in removals:
        since = seen.get(removal.sid, room_start.get(removal.room, watcher.started))
        since -= 0.5  # clocks: the log's milliseconds, the bench's sampling
        window = (since, removal.at + 0.5)

        def within(at: float, span: tuple[float, float] = window) -> bool:
            return span[0] <= at <= span[1]

        nodes = {watcher.node_ids.get(n, "") for n in watcher.room_nodes.get(removal.room, ())}
        nodes.discard("")
        deps = {"livekit"} | nodes if nodes else {p for p in _node_parts(watcher)}
        if any(within(at) for at in jobs.get(removal.room, [])):
            removal.dead_because = "its job process had ended"
        elif any(d.part == worker and within(d.at) for d in watcher.deaths):
            removal.dead_because = "the agent worker died"
        elif any(d.part in deps and within(d.at) for d in watcher.deaths):
            removal.dead_because = "its LiveKit node died"
    return removals


def _node_parts(watcher: Watcher) -> set[str]:
    return {watcher.cluster.node_part(k) for k in range(watcher.cluster.nodes)}


def audit_after(state_dir: Path, nodes: int, worker: Worker = WORKERS["demo"]) -> list[Removal]:
    """The same judgement from a finished run's logs alone: deaths from `up`'s supervisor
    log (its first "PART exited" line), a sid's window from its room's first job request."""
    second = SecondWatch({}, state_dir)
    cluster = Cluster("", state_dir, load_settings(), nodes, [], [], "", second, worker)
    watcher = Watcher(cluster)
    with suppress(OSError), (state_dir / "logs" / "supervisor.log").open() as lines:
        for line in lines:
            # "agent exited, leaving processes in its group" comes before "exited with code"
            if " exited" in line and '"part"' in line:
                with suppress(ValueError, KeyError):
                    record = json.loads(line)
                    watcher.deaths.append(Death(_epoch(record), str(record["part"]), 0))
    first_job: dict[str, float] = {}
    log = state_dir / "logs" / f"{worker.part}.log"
    with suppress(OSError), log.open(errors="replace") as lines:
        for line in lines:
            if "received job request" in line:
                with suppress(ValueError, KeyError):
                    record = json.loads(line)
                    first_job.setdefault(str(record["room"]), _epoch(record))
    return judge_removals(read_removals(state_dir, worker.part), watcher, {}, first_job)


if __name__ == "__main__":  # python bench/chaos_cluster.py STATE_DIR NODES [WORKER]: audit again
    import collections

    kind = sys.argv[3] if len(sys.argv) > 3 else "demo"
    found = audit_after(Path(sys.argv[1]), int(sys.argv[2]), WORKERS[kind])
    print(collections.Counter(r.dead_because or "LIVE" for r in found))
    for removal in found:
        if not removal.dead_because:
            print(removal)
