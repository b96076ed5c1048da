"""Run `room-recovery up --detach` for a test, on free ports, in a temporary state folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from room_recovery.core.errors import RoomRecoveryError
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import load_settings
from room_recovery.system.livekit_server import free_port
from room_recovery.system.processes import command_line
from tests.support.livekit import ServerInfo
from tests.support.worker import person

ROOT = Path(__file__).resolve().parents[2]


def _triple_free(port: int) -> bool:
    try:
        with (
            socket.socket() as a,
            socket.socket() as b,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c,
            socket.socket() as d,
        ):
            a.bind(("0.0.0.0", port))  # every address: see livekit_server._bindable
            b.bind(("0.0.0.0", port + 1))
            c.bind(("0.0.0.0", port + 2))
            d.bind(("0.0.0.0", port + 3))  # its own metrics, with `up --prometheus`
    except OSError:
        return False
    return True


# the ports handed out in this process (free_port_triple's and spare_port's), which their
# parts bind only later: none is handed out twice (a Redis on a node's metrics port, and
# another on the web port of a System made before it, each made `up` fail once in a full
# suite run)
_PLANNED: set[int] = set()


def free_port_triple(nodes: int = 1) -> int:
    """A port P such that TCP P and P+1 and UDP P+2 are free (LiveKit's http, rtc tcp, udp),
    and TCP P+3 (its metrics with `up --prometheus`), and so for P+10 k of each further
    node k of `up --nodes`. Take the other parts' ports from `spare_port` afterwards."""
    for _ in range(50):
        port = free_port()
        if port + 10 * (nodes - 1) + 3 > 65535:
            continue
        if all(_triple_free(port + 10 * k) for k in range(nodes)):
            _PLANNED.update(port + 10 * k + step for k in range(nodes) for step in range(4))
            return port
    raise RuntimeError("no three consecutive free ports")


def spare_port() -> int:
    """A free TCP port that no port handed out before in this process is (see `_PLANNED`)."""
    for _ in range(50):
        port = free_port()
        if port not in _PLANNED:
            _PLANNED.add(port)
            return port
    raise RuntimeError("no free port outside the planned LiveKit ports")


SERVER_ONLY = ("--no-agent", "--no-web", "--no-watch")  # `up` with only livekit-server


@dataclass
class System:
    """One voice system under test, driven through the real CLI."""

    state_dir: Path
    workdir: Path  # the CLI runs here, so no developer's .env is read
    livekit_port: int = field(default_factory=free_port_triple)
    agent_health_port: int = field(default_factory=spare_port)
    web_port: int = field(default_factory=spare_port)
    watch_port: int = field(default_factory=spare_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.livekit_port}"

    def env(self) -> dict[str, str]:
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))
        }
        return (
            environment
            | {
                "LIVEKIT_URL": self.url,
                "LIVEKIT_API_KEY": "devkey",
                "LIVEKIT_API_SECRET": "secret",
                "ROOM_RECOVERY_STATE": str(self.state_dir),
                "ROOM_RECOVERY_AGENT_IDLE_PROCESSES": "1",  # see conftest.py
            }
            | self.extra_env
        )

    def cli(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "room_recovery.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.workdir,
            timeout=timeout,
        )

    def up(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "up",
            "--detach",
            "--agent-health-port",
            str(self.agent_health_port),
            "--web-port",
            str(self.web_port),
            "--watch-port",
            str(self.watch_port),
            *flags,
        )

    def status(self) -> dict[str, dict[str, object]]:
        return json.loads((self.state_dir / "status.json").read_text())["parts"]

    def pid_of(self, part: str) -> int:
        return int(self.status()[part]["pid"])  # type: ignore[call-overload]

    def recorded_pids(self) -> list[int]:
        pids = []
        for pidfile in (self.state_dir / "run").glob("*.pid"):
            pids.append(json.loads(pidfile.read_text())["pid"])
        return pids

    def end_rooms(self) -> None:
        """Delete every room of this system's LiveKit, so that its agents' jobs end now and
        `down` need not wait out their drain (a worker drains for as long as a room lasts)."""
        if not (self.state_dir / "run" / "supervisor.pid").exists():
            return

        async def delete_all() -> None:
            settings = load_settings(
                livekit_url=self.url, livekit_api_key="devkey", livekit_api_secret="secret"
            )
            async with RoomManager(settings=settings, request_timeout=3) as manager:
                for room in await manager.list_rooms():
                    await manager.delete_room(room.name)

        with contextlib.suppress(RoomRecoveryError):
            asyncio.run(delete_all())

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.1)


def alive(pid: int) -> bool:
    return command_line(pid) is not None


@contextlib.contextmanager
def brought_down(under_test: System) -> Iterator[System]:
    """`under_test`, then `down`, and nothing it started may be left running."""
    yield under_test
    started = under_test.recorded_pids() if (under_test.state_dir / "run").exists() else []
    under_test.end_rooms()  # the jobs end now: `down` need not wait out their drain
    under_test.cli("down")
    leftovers = [pid for pid in started if alive(pid)]
    assert leftovers == [], f"processes left running after down: {leftovers}"


async def person_gets_an_agent(
    system: System, timeout: float = 20, agent_name: str = "demo-agent"
) -> None:
    """A person gets `agent_name` in a fresh room of `system` within `timeout`; the room
    is deleted after, as the page's leave beacon would."""
    server = ServerInfo(system.url, "devkey", "secret")
    room = f"sys-{uuid.uuid4().hex[:8]}"
    async with person(server, room, "user-sys", agent_name, publish=True) as someone:
        await someone.wait_for_agent(timeout=timeout)
    # as the page's leave beacon would: the job ends now, so a restart or `down` after this
    # need not wait for its agent to notice the person left and drain
    async with RoomManager(server.url, server.api_key, server.api_secret) as manager:
        await manager.delete_room(room)
