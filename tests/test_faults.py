"""Nothing fails silently: each fault is injected on the real stack, and the system must say
so (logs, /healthz, status) and come back by itself.

Covered here: a LiveKit call that stalls for one room; LiveKit unreachable, then back; a
child printing a 1 MB line; a part SIGSTOPped. Elsewhere: livekit-server SIGKILLed while
people wait and agents serve (`test_voice_system`), a worker or job killed
(`test_recovery_page`), and lost webhooks: the watchdog tests run with none at all, so
the sweep alone finds every room (`test_watchdog`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings, load_settings
from room_recovery.doctor.own_services import services_healthy
from room_recovery.rules.restart import RestartPolicy
from room_recovery.rules.watch import WatchPolicy
from room_recovery.system.livekit_server import free_port
from room_recovery.system.supervisor import PartSpec, Supervisor
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running
from tests.support.livekit import ServerInfo, eventually
from tests.support.proxy import FaultyProxy
from tests.support.worker import person

pytestmark = pytest.mark.integration  # processes: a supervisor and its children

PREFIX = "fault-"


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
async def proxy(livekit_server: ServerInfo) -> AsyncIterator[FaultyProxy]:
    async with FaultyProxy(_port_of(livekit_server.url)) as faulty:
        yield faulty


def settings_through(proxy: FaultyProxy, server: ServerInfo, **extra: object) -> Settings:
    return load_settings(
        livekit_url=f"ws://127.0.0.1:{proxy.port}",
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix=PREFIX,
        **extra,
    )


def _room() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


async def _create(manager: RoomManager, *names: str) -> None:
    await asyncio.gather(*(manager.create_room(name, None) for name in names))


async def test_a_room_whose_calls_stall_is_one_failure_and_every_other_room_is_cleaned(
    livekit_server: ServerInfo, manager: RoomManager, proxy: FaultyProxy
) -> None:
    stuck, *others = [_room() for _ in range(3)]
    await _create(manager, stuck, *others)
    proxy.stall_when(b"ListParticipants", stuck.encode())
    settings = settings_through(proxy, livekit_server, room_stale_timeout=0.01)
    await asyncio.sleep(0.05)  # the rooms are now older than the stale timeout
    async with RoomManager(settings=settings, request_timeout=1) as through_proxy:
        report = await through_proxy.cleanup_stale_rooms()
    assert {d.room for d in report.deleted} >= set(others)
    assert [f.room for f in report.failed] == [stuck]
    assert "no answer within 1 s" in report.failed[0].error
    assert proxy.stalled == 1
    assert await manager.get_room_info(stuck) is not None  # left alone, reported
    await manager.delete_room(stuck)


async def test_a_stalled_room_does_not_hold_up_a_waiting_person_elsewhere(
    livekit_server: ServerInfo, manager: RoomManager, proxy: FaultyProxy
) -> None:
    stuck, waiting = _room(), _room()
    await _create(manager, stuck)
    proxy.stall_when(b"ListParticipants", stuck.encode())
    agent_name = f"fault-agent-{uuid.uuid4().hex[:6]}"
    options = WatchdogOptions(
        agent_name=agent_name,
        sweep_interval=0.3,
        cleanup_interval=0.5,
        watch=WatchPolicy(grace=0.5, dispatch_wait=30),
    )
    watchdog = Watchdog(settings_through(proxy, livekit_server), options)
    async with watchdog, person(livekit_server, waiting, "user-1"):

        async def dispatched() -> bool:
            return bool(await manager.dispatched_agents(waiting))

        await eventually(dispatched, timeout=15, what="a dispatch for the waiting person")
        cleanup = watchdog.loops["cleanup"]
        await eventually(
            _async(lambda: cleanup.last_ok is not None), timeout=15, what="a finished cleanup"
        )
        assert proxy.stalled >= 1
        assert watchdog.health().status == "ok"
        people = watchdog.metrics.registry.get_sample_value(
            "room_recovery_participants", {"kind": "person"}
        )
        assert people is not None and people >= 1
    await manager.delete_room(stuck)
    await manager.delete_room(waiting)


async def test_the_watchdog_answers_503_while_livekit_is_unreachable_and_recovers_by_itself(
    livekit_server: ServerInfo, proxy: FaultyProxy
) -> None:
    proxy.refusing = True
    options = WatchdogOptions(sweep_interval=0.2)
    watchdog = Watchdog(settings_through(proxy, livekit_server), options)
    async with (
        running(create_app(watchdog), port=0) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
    ):

        async def health() -> tuple[int, dict[str, object]]:
            async with http.get(f"{url}/healthz") as response:
                return response.status, await response.json()

        await eventually(
            _async(lambda: watchdog.loops["sweep"].failures > 0), what="a failed sweep"
        )
        status, body = await health()
        assert status == 503 and body["status"] == "failing"
        assert any("unreachable" in str(p) for p in body["problems"])  # type: ignore[attr-defined]
        # doctor repeats the reason, with what to do
        check = await services_healthy(http, {"watchdog": f"{url}/healthz"}, expected=True)
        assert check.status == "fail" and "unreachable" in check.detail
        proxy.refusing = False

        async def healthy() -> bool:
            return (await health())[0] == 200

        await eventually(healthy, timeout=10, what="/healthz to answer 200 again")
        # and, healthy, doctor says where the operations view is
        check = await services_healthy(http, {"watchdog": f"{url}/healthz"}, expected=True)
        assert check.status == "ok" and f"operations view: {url}/" in check.detail


async def test_a_child_printing_a_megabyte_line_is_not_blocked(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "sys.stdout.write('x' * (1024 * 1024) + '\\n'); sys.stdout.flush()\n"
        "print('after the long line', flush=True)\n"
        "time.sleep(60)\n"
    )
    # healthy only once its output shows the line after the long one
    talker = PartSpec(
        "talker", (sys.executable, "-c", script), settle=30, ready_line="after the long line"
    )
    async with Supervisor(tmp_path, [talker]) as supervisor:
        assert supervisor.parts["talker"].ready.is_set()  # it got past its long line
        log = (tmp_path / "logs" / "talker.log").read_text()
    assert "after the long line" in log
    assert log.count("x") == 1024 * 1024  # nothing lost


async def test_a_part_that_is_sigstopped_is_found_silent_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    web = PartSpec(
        "web",
        (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"),
        health_url=f"http://127.0.0.1:{port}/",
        port=port,
        health_every=0.3,
        unhealthy_after=1.5,
    )
    restart = RestartPolicy(first_delay=0.1)
    async with Supervisor(tmp_path, [web], restart=restart) as supervisor:
        part = supervisor.parts["web"]
        stopped_pid = part.pid
        assert stopped_pid is not None
        os.kill(stopped_pid, signal.SIGSTOP)
        try:
            await eventually(
                _async(lambda: part.state == "unhealthy"), what="the part to be seen silent"
            )
            assert "did not answer in time" in str(part.problem)
            await eventually(
                _async(lambda: part.pid != stopped_pid and part.state == "healthy"),
                timeout=20,
                what="the part to be restarted and healthy",
            )
        finally:
            # it was killed by the supervisor; make sure, and never leave a stopped process
            if _alive(stopped_pid):
                os.kill(stopped_pid, signal.SIGKILL)
    assert part.restarts == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _async(check: Callable[[], object]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return bool(check())

    return wrapped
