"""The watchdog against a real server and real agent workers: nobody is left waiting."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from livekit import api

from room_recovery.core.settings import Settings, load_settings
from room_recovery.rules.attention import AttentionPolicy
from room_recovery.rules.watch import WatchPolicy
from room_recovery.watchdog import Watchdog, WatchdogOptions
from tests.support.livekit import ServerInfo, eventually, participant
from tests.support.worker import WorkerProcess, job_processes, person

PREFIX = "wd-"


def settings_for(server: ServerInfo) -> Settings:
    return load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix=PREFIX,
    )


@pytest.fixture
def agent_name() -> str:
    return f"wd-agent-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def wd_room() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


async def watchdog_for(server: ServerInfo, agent_name: str, **watch: float) -> Watchdog:
    options = WatchdogOptions(
        agent_name=agent_name,
        sweep_interval=0.3,
        watch=WatchPolicy(**watch),  # type: ignore[arg-type]
    )
    return Watchdog(settings_for(server), options)


@pytest.fixture
async def quick_watchdog(livekit_server: ServerInfo, agent_name: str) -> AsyncIterator[Watchdog]:
    watchdog = await watchdog_for(
        livekit_server, agent_name, grace=1.0, dispatch_wait=2.5, max_dispatches=8
    )
    async with watchdog:
        yield watchdog


async def test_a_person_waiting_while_the_worker_was_down_gets_an_agent_without_retrying(
    livekit_server: ServerInfo,
    quick_watchdog: Watchdog,
    agent_name: str,
    wd_room: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    # The token's dispatch is dropped for good: no worker is registered yet.
    async with person(livekit_server, wd_room, "user-1", agent_name, publish=True) as someone:
        worker = WorkerProcess.demo(livekit_server, agent_name, tmp_path / "worker.log")
        workers.append(worker)
        await worker.registered()
        agent = await someone.wait_for_agent(timeout=25)
        assert agent.identity == f"agent-{wd_room}"
        assert someone.room.name == wd_room  # the same room: the client never retried
    recoveries = quick_watchdog.metrics.registry.get_sample_value(
        "room_recovery_recoveries_total", {"cause": "agent_missing"}
    )
    assert recoveries is not None and recoveries >= 1


async def test_a_person_who_joined_without_a_dispatch_gets_the_watchdogs_agent(
    livekit_server: ServerInfo,
    quick_watchdog: Watchdog,
    agent_name: str,
    wd_room: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    # A plain token, as the user's own page makes: the room carries only the server's
    # unnamed dispatch, which is no agent's name; the watchdog's own agent must come.
    worker = WorkerProcess.demo(livekit_server, agent_name, tmp_path / "worker.log")
    workers.append(worker)
    await worker.registered()
    async with person(livekit_server, wd_room, "user-5", publish=True) as someone:
        agent = await someone.wait_for_agent(timeout=15)
        assert agent.identity == f"agent-{wd_room}"


async def test_a_room_without_any_worker_is_never_given_up_its_dropped_dispatches_are_retried(
    livekit_server: ServerInfo, agent_name: str, wd_room: str
) -> None:
    # LiveKit drops each dispatch (no worker): none is an attempt, so one allowed attempt
    # is never used up and the room is never marked failed while the person waits.
    watchdog = await watchdog_for(
        livekit_server, agent_name, grace=0.5, dispatch_wait=0.5, max_dispatches=1
    )
    async with watchdog, person(livekit_server, wd_room, "user-2", agent_name):

        async def dropped_twice() -> bool:
            value = watchdog.metrics.registry.get_sample_value(
                "room_recovery_recoveries_total", {"cause": "dispatch_dropped"}
            )
            return (value or 0) >= 2

        await eventually(dropped_twice, timeout=15, what="two dispatches found dropped")
        async with api.LiveKitAPI(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            listed = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[wd_room]))
            metadata = listed.rooms[0].metadata if listed.rooms else ""
            status = json.loads(metadata).get("room_recovery", {}) if metadata else {}
            assert status.get("status") != "failed"
        assert watchdog.book.rooms[wd_room].waiting
        assert not watchdog.book.rooms[wd_room].history.failed


async def test_the_watchdog_never_touches_rooms_outside_its_prefix(
    livekit_server: ServerInfo,
    quick_watchdog: Watchdog,
    agent_name: str,
) -> None:
    outside = f"other-{uuid.uuid4().hex[:8]}"
    async with person(livekit_server, outside, "user-3"):
        async with api.LiveKitAPI(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            for _ in range(3):
                await quick_watchdog.check_room(outside)  # not watched: does nothing
            assert outside not in quick_watchdog.book.rooms
            dispatches = await lkapi.agent_dispatch.list_dispatch(outside)
            # The server's own automatic dispatch (no agent name) may be there; ours never.
            assert [d.agent_name for d in dispatches if d.agent_name] == []


async def test_an_agent_whose_job_process_is_killed_is_replaced_within_seconds(
    livekit_server: ServerInfo,
    quick_watchdog: Watchdog,
    agent_name: str,
    wd_room: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    # the watchdog's own signal, the heartbeat: the worker's monitor (which would replace the
    # agent first) is off here; it is tested in test_recovery_protocol.py
    worker = WorkerProcess.demo(
        livekit_server,
        agent_name,
        tmp_path / "worker.log",
        env={"ROOM_RECOVERY_WORKER_MONITOR": "off"},
    )
    workers.append(worker)
    await worker.registered()
    async with person(livekit_server, wd_room, "user-4", agent_name, publish=True) as someone:
        first = await someone.wait_for_agent(timeout=15)

        async def job_started() -> bool:
            return bool(job_processes(worker, livekit_server.url))

        await eventually(job_started, timeout=10, what="the job process to be found")
        [job] = job_processes(worker, livekit_server.url)
        os.kill(job, signal.SIGKILL)
        # The server would show the dead agent ACTIVE for ~20 s; the heartbeat says sooner
        # (3 s of silence, then a dispatch; bench_recovery.py measures how soon: this bounds)
        await someone.wait_for(
            "a new agent",
            lambda: any(a.sid != first.sid for a in someone.agents()),
            timeout=18,
        )
    died = quick_watchdog.metrics.registry.get_sample_value(
        "room_recovery_recoveries_total", {"cause": "agent_died"}
    )
    assert died is not None and died >= 1


async def test_a_healthy_room_costs_no_looks_until_someone_comes_or_goes(
    livekit_server: ServerInfo, agent_name: str, wd_room: str
) -> None:
    # a person with an agent that sends no heartbeat (the server's view of it is trusted);
    # no webhooks: only the room listing, once a sweep, says that something changed
    options = WatchdogOptions(
        agent_name=agent_name,
        sweep_interval=0.3,
        attention=AttentionPolicy(settle=0.5, revisit_after=3600),
    )
    async with Watchdog(settings_for(livekit_server), options) as watchdog:
        async with (
            person(livekit_server, wd_room, "user-6"),
            participant(livekit_server, wd_room, "agent-6", kind="agent"),
        ):

            async def quiet() -> bool:
                state = watchdog.book.get(wd_room)
                return state is not None and state.looks > 0 and state.reason is None

            await eventually(quiet, timeout=15, what="the healthy room to go quiet")
            state = watchdog.book.get(wd_room)
            assert state is not None
            looks, polls = state.looks, watchdog.loops["poll"].runs

            async def polled_a_while() -> bool:  # 3 s of polls, 10 sweeps
                return watchdog.loops["poll"].runs >= polls + 12

            await eventually(polled_a_while, timeout=15, what="a dozen polls")
            assert state.looks == looks  # a poll every 0.25 s, and not one look at the room

            async with person(livekit_server, wd_room, "user-7"):

                async def looked_again() -> bool:
                    return state.looks > looks

                # the listing's participant count changed (it is refreshed every few seconds)
                await eventually(looked_again, timeout=15, what="a look at the changed room")
