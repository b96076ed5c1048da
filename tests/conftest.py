"""Fixtures: one real livekit-server for the test session, on free loopback ports.

Every test is marked by what it needs (`pytest_collection_modifyitems`): `browser` (a real
Chromium), `integration` (real processes: the LiveKit server, workers, `up`, Redis, the
CLI), or else `unit` (plain data, or fakes of our own: milliseconds). `./test.sh -m unit`
is the edit loop; `./test.sh` runs them all, spread over parallel workers.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from room_recovery.core.manager import RoomManager
from room_recovery.system import livekit_server as livekit_server_module
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from tests.support.browser import chromium
from tests.support.livekit import ParticipantProcess, ServerInfo
from tests.support.system import System, brought_down
from tests.support.worker import WorkerProcess, close_all

API_KEY = "testkey"

# One warm job process per demo agent (its default is 3): each is a Python process that
# imports livekit-agents (1.4 s of CPU), and the suite starts dozens of demo agents on 2
# cores. The guide's test worker keeps one too (`tests/workers/letta_voice_agent.py`).
os.environ.setdefault("ROOM_RECOVERY_AGENT_IDLE_PROCESSES", "1")


BROWSER_FIXTURES = {"browser", "open_page", "refusing_open_page", "guide_page"}
PROCESS_FIXTURES = {
    "livekit_server",
    "system",
    "cluster",
    "redis_url",
    "workers",
    "spawn_participant",
    "manager",
    "agent_worker",
}


# The modules that take longest (seconds of one worker, measured with --durations=0), run
# first: pytest-xdist hands out whole modules in collection order, and a long one started
# last would finish alone while the other workers idle. Only with --no-loadscope-reorder
# (./test.sh): by default pytest-xdist reorders modules by their number of tests, which
# started 23 quick unit modules first and left workers idle for up to 50 s at the end.
LONGEST_FIRST = (  # each module's own time in a full run on 5 workers (issue 25)
    "test_guide_worker.py",  # ~149 s
    "test_agent_commands.py",  # ~134 s
    "test_recovery_page.py",  # ~125 s
    "test_page.py",  # ~89 s
    "test_voice_agents.py",  # ~88 s
    "test_nodes.py",  # ~53 s
    "test_cluster.py",  # ~50 s
    "test_leader.py",  # ~50 s
    "test_voice_system.py",  # ~45 s
    "test_watchdog.py",  # ~43 s
    "test_agent_hook.py",  # ~41 s
    "test_prometheus.py",  # ~41 s, one test
    "test_light_install.py",  # ~37 s
    "test_doctor.py",  # ~32 s
    "test_recovery_protocol.py",  # ~30 s
    "test_cli.py",  # ~25 s
    "test_agent_demo.py",  # ~21 s
    "test_agent_shutdown.py",  # ~20 s
    "test_views.py",  # ~15 s
    "test_spec_snippets.py",  # ~15 s
    "test_units.py",  # ~13 s
    "test_faults.py",  # ~12 s
    "test_manager.py",  # ~10 s; the rest take seconds, and fill in last
)


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker takes its free ports from its own slice of the range: two
    workers that chose the same port at the same moment once failed a LiveKit start."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return
    low, high = livekit_server_module.PORT_RANGE
    span = (high - low) // count
    start = low + int(worker[2:]) * span
    # a triple of each of up to 3 nodes reaches 22 ports past the port chosen
    livekit_server_module.PORT_RANGE = (start, start + span - 30)


def _longest_first(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test `browser`, `integration` or `unit` by the fixtures it uses (a module
    that runs processes without them says so with `pytestmark`); the longest modules first."""
    items.sort(key=_longest_first)  # stable: each module keeps its own order
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marked = {mark.name for mark in item.iter_markers()}
        if names & BROWSER_FIXTURES or "browser" in marked:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)
        elif names & PROCESS_FIXTURES or "integration" in marked:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


# A test server's participants are test processes about to end: no need to wait for them.
TEST_STOP_GRACE = 1.0


@pytest.fixture(scope="session")
async def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerInfo]:
    """A real livekit-server, started once for the session, stopped after it."""
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({API_KEY: secret})
    folder = Path(tmp_path_factory.mktemp("livekit"))
    async with LiveKitServer(config, folder, stop_grace=TEST_STOP_GRACE):
        yield ServerInfo(config.url, API_KEY, secret)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium per test module (Debian's, fake media); each test opens fresh
    contexts in it (`support.browser.pages_of`)."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """`room-recovery up` under test (its own state and ports); `down` afterwards, and
    nothing it started may be left running."""
    with brought_down(System(tmp_path / "state", tmp_path)) as under_test:
        yield under_test


@pytest.fixture
def room_name() -> str:
    """A fresh room name for one test."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def manager(livekit_server: ServerInfo) -> AsyncIterator[RoomManager]:
    async with RoomManager(
        livekit_server.url, livekit_server.api_key, livekit_server.api_secret
    ) as room_manager:
        yield room_manager


@pytest.fixture
def spawn_participant(livekit_server: ServerInfo) -> Iterator[type[ParticipantProcess]]:
    """Start participants in child processes; every one is stopped after the test."""
    started: list[ParticipantProcess] = []

    def spawn(room: str, identity: str, **options: object) -> ParticipantProcess:
        proc = ParticipantProcess(livekit_server, room, identity, **options)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield spawn  # type: ignore[misc]
    for proc in started:
        proc.close()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Agent workers started by one test (append them); every one is stopped after it."""
    started: list[WorkerProcess] = []
    yield started
    close_all(started)
