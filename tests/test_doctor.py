"""`room-recovery doctor` names the cause of a missing agent, in each scenario."""

from __future__ import annotations

import dataclasses
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from livekit import api

from room_recovery.agent.load import LIVEKIT_TARGET_LOAD, job_load
from room_recovery.core.settings import load_settings
from room_recovery.doctor import Check, DoctorOptions, diagnose, render
from room_recovery.doctor.worker_load import load_verdict
from room_recovery.system.livekit_server import free_port
from tests.support.livekit import ServerInfo, eventually, participant
from tests.support.worker import WorkerProcess, job_processes, person

NOWHERE = "http://127.0.0.1:{}/health"


def settings_for(server: ServerInfo, **overrides: str) -> object:
    values = {
        "livekit_url": server.url,
        "livekit_api_key": server.api_key,
        "livekit_api_secret": server.api_secret,
        "room_prefix": "doc-",
    } | overrides
    return load_settings(**values)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def options(health_url: str | None = None, threshold: int = 100) -> DoctorOptions:
    return DoctorOptions(
        agent_health_url=health_url or NOWHERE.format(free_port()),
        page_config_url=None,
        room_alert_threshold=threshold,
    )


@pytest.fixture
def worker(livekit_server: ServerInfo, tmp_path: Path) -> Iterator[WorkerProcess]:
    # without its monitor, which would replace a dead agent before doctor could see the ghost
    process = WorkerProcess.demo(
        livekit_server,
        "doc-agent",
        tmp_path / "worker.log",
        env={"ROOM_RECOVERY_WORKER_MONITOR": "off"},
    )
    yield process
    process.close()


async def test_an_unreachable_server_is_the_first_cause_and_skips_what_depends_on_it() -> None:
    settings = load_settings(livekit_url=f"ws://127.0.0.1:{free_port()}")
    checks = by_name(await diagnose(settings, options()))  # type: ignore[arg-type]
    assert checks["LiveKit server answers"].status == "fail"
    assert "room-recovery up" in checks["LiveKit server answers"].fix
    assert checks["API key and secret accepted"].status == "skipped"


async def test_a_rejected_secret_is_named(livekit_server: ServerInfo) -> None:
    settings = settings_for(livekit_server, livekit_api_secret="w" * 40)
    checks = by_name(await diagnose(settings, options()))  # type: ignore[arg-type]
    assert checks["API key and secret accepted"].status == "fail"
    assert "LIVEKIT_API_SECRET" in checks["API key and secret accepted"].fix


async def test_no_worker_running_is_named(livekit_server: ServerInfo) -> None:
    checks = by_name(await diagnose(settings_for(livekit_server), options()))  # type: ignore[arg-type]
    assert checks["agent worker registered"].status == "fail"
    assert "no agent worker answers" in checks["agent worker registered"].detail


async def test_a_registered_worker_and_quiet_rooms_are_all_well(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    health = await worker.registered()
    checks = await diagnose(settings_for(livekit_server), options(health))  # type: ignore[arg-type]
    assert [c.name for c in checks if c.status == "fail"] == [], render(checks)


async def test_a_person_waiting_without_an_agent_is_named(
    livekit_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("room_recovery.doctor.checks.WAITING_GRACE", 0.0)
    room = f"doc-{uuid.uuid4().hex[:8]}"
    async with participant(livekit_server, room, "lonely-user"):
        checks = by_name(await diagnose(settings_for(livekit_server), options()))  # type: ignore[arg-type]
    assert checks["nobody waiting without an agent"].status == "fail"
    assert room in checks["nobody waiting without an agent"].detail


async def test_an_agent_whose_process_died_is_named_a_ghost(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    health = await worker.registered()
    room = f"doc-{uuid.uuid4().hex[:8]}"
    async with person(livekit_server, room, "user", "doc-agent", publish=True) as someone:
        await someone.wait_for_agent()

        async def job_started() -> bool:
            return bool(job_processes(worker, livekit_server.url))

        await eventually(job_started, timeout=10, what="the job process")
        [job] = job_processes(worker, livekit_server.url)
        os.kill(job, signal.SIGKILL)
        checks = by_name(await diagnose(settings_for(livekit_server), options(health)))  # type: ignore[arg-type]
    ghosts = checks["no ghost participants"]
    assert ghosts.status == "fail" and f"agent-{room}" in ghosts.detail
    assert "heartbeat silent" in ghosts.detail


async def test_too_many_rooms_are_named(livekit_server: ServerInfo) -> None:
    names = [f"doc-many-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    async with api.LiveKitAPI(
        livekit_server.url, livekit_server.api_key, livekit_server.api_secret
    ) as lkapi:
        for name in names:
            await lkapi.room.create_room(api.CreateRoomRequest(name=name))
        try:
            checks = by_name(
                await diagnose(settings_for(livekit_server), options(threshold=2))  # type: ignore[arg-type]
            )
        finally:
            for name in names:
                await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
    assert checks["room count"].status == "fail"
    assert "clean-stale" in checks["room count"].fix


def probe(health_url: str | None, *agents: str, timeout: float = 10.0) -> DoctorOptions:
    return dataclasses.replace(
        options(health_url), probe=True, probe_agents=agents, probe_timeout=timeout
    )


async def _rooms(server: ServerInfo) -> list[str]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
        return [room.name for room in (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms]


async def test_the_probe_proves_a_served_agent_comes_and_leaves_no_room_behind(
    livekit_server: ServerInfo, worker: WorkerProcess
) -> None:
    health = await worker.registered()
    checks = by_name(await diagnose(settings_for(livekit_server), probe(health)))  # type: ignore[arg-type]
    came = checks["agent 'doc-agent' comes when dispatched"]
    assert came.status == "ok", came.detail
    assert "doctor-probe-" in came.detail
    assert not [name for name in await _rooms(livekit_server) if "doctor-probe-" in name]


async def test_the_probe_names_an_agent_that_no_worker_serves(livekit_server: ServerInfo) -> None:
    checks = by_name(
        await diagnose(
            settings_for(livekit_server),  # type: ignore[arg-type]
            probe(None, "nobody-serves-this", timeout=1.5),
        )
    )
    missing = checks["agent 'nobody-serves-this' comes when dispatched"]
    assert missing.status == "fail"
    assert "no worker is registered as 'nobody-serves-this'" in missing.detail
    assert "nobody-serves-this" in missing.fix
    assert not [name for name in await _rooms(livekit_server) if "doctor-probe-" in name]


def test_a_worker_reporting_the_busy_machines_cpu_is_told_it_gets_no_jobs() -> None:
    busy = load_verdict(0.85, "")
    assert busy.status == "fail"
    assert "0.85" in busy.detail and "automatic dispatch" in busy.detail
    assert "load_threshold=math.inf" in busy.fix and "job_load" in busy.fix
    assert load_verdict(0.2, "letta-agent").ok


def test_the_job_load_it_advises_gets_every_job_up_to_max_jobs_and_none_past_it() -> None:
    # livekit-server sends a job only to a worker whose load is below its target (0.7)
    def load(jobs: int) -> float:
        return job_load(8, SimpleNamespace(active_jobs=[object()] * jobs))

    assert load(0) == 0.0
    assert all(load_verdict(load(jobs), "").ok for jobs in range(8))  # the 8th is sent
    assert load(8) == LIVEKIT_TARGET_LOAD == load(12)  # no 9th
    assert not load_verdict(load(8), "").ok
