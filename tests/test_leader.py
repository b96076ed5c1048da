"""Many watchdogs, one leader, elected through a real Redis; each recovery happens once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from livekit import api

from room_recovery.core.errors import ConfigurationError
from room_recovery.core.settings import load_settings
from room_recovery.rules.watch import WatchPolicy
from room_recovery.system.livekit_server import free_port
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog.leader import LEASE, Leadership, NotLeading, RedisUnreachableError
from tests.support.livekit import ServerInfo, eventually
from tests.support.redis_server import redis_server
from tests.support.worker import WorkerProcess, person

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "ld-"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Leadership, Leadership]]:
    scope = uuid.uuid4().hex[:8]  # a deployment of its own on the shared Redis
    first = Leadership(redis_url, scope, lease=0.6, renew=0.2)
    second = Leadership(redis_url, scope, lease=0.6, renew=0.2)
    yield first, second
    await first.close()
    await second.close()


async def test_one_watchdog_leads_and_a_standby_takes_over_when_its_lease_runs_out(
    pair: tuple[Leadership, Leadership],
) -> None:
    first, second = pair
    await first.step()
    await second.step()
    assert first.leading and not second.leading
    await first.fence()  # the leader may act

    # the leader stalls (it stops renewing): once its lease runs out, the standby leads
    async def second_leads() -> bool:
        await second.step()
        return second.leading

    await eventually(second_leads, timeout=5, interval=0.05, what="the standby to take over")
    assert first.epoch is not None and second.epoch == first.epoch + 1
    with pytest.raises(NotLeading):
        await first.fence()  # its own clock says its lease ran out: it never acts again
    await first.step()  # its renewal is refused: it knows it was superseded
    assert not first.leading and first.epoch is None


async def test_a_room_is_claimed_for_a_dispatch_once_across_a_change_of_leader(
    pair: tuple[Leadership, Leadership],
) -> None:
    first, second = pair
    await first.step()
    assert await first.claim("ld-room-1", 30)
    assert not await first.claim("ld-room-1", 30)
    with pytest.raises(NotLeading):
        await second.claim("ld-room-2", 30)  # a standby may not even try
    await first.close()  # a clean stop hands over at once

    async def second_leads() -> bool:
        await second.step()
        return second.leading

    await eventually(second_leads, timeout=5, interval=0.05, what="the standby to take over")
    assert not await second.claim("ld-room-1", 30)  # the old leader's claim still holds
    assert await second.claim("ld-room-2", 30)


async def test_a_redis_restarted_empty_fences_out_the_old_leader_even_when_the_epochs_match(
    pair: tuple[Leadership, Leadership],
) -> None:
    # Redis restarted without a snapshot forgets the lock and the epoch counter: the standby
    # leads at once and draws epoch 1 again, while the old leader's own clock says its lease
    # holds for up to a lease more. The epoch alone cannot tell them apart; the lock can.
    first, second = pair
    await first.step()
    assert first.epoch == 1
    assert first._redis is not None and first._lock is not None
    # what `redis-server` restarted with no snapshot keeps of this deployment: nothing
    await first._redis.delete(first._epoch_key, first._lock.name)
    await second.step()
    assert second.leading and second.epoch == first.epoch  # the same number, a new lead
    assert first.leading  # by its clock: its lease ran out in nobody's eyes but Redis's
    with pytest.raises(NotLeading):
        await first.fence()
    assert not first.leading
    await second.fence()  # the new leader acts


def settings_for(server: ServerInfo, redis: str) -> object:
    return load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix=PREFIX,
        redis_url=redis,
    )


async def named_dispatches(server: ServerInfo, room: str) -> list[str]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
        dispatches = await lkapi.agent_dispatch.list_dispatch(room)
    return [d.agent_name for d in dispatches if d.agent_name]


async def test_two_watchdogs_send_one_agent_to_a_waiting_person(
    livekit_server: ServerInfo,
    redis_url: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    agent_name = f"ld-agent-{uuid.uuid4().hex[:6]}"
    room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess.demo(livekit_server, agent_name, tmp_path / "worker.log")
    workers.append(worker)
    await worker.registered()
    options = WatchdogOptions(
        agent_name=agent_name, sweep_interval=0.3, watch=WatchPolicy(grace=0.5)
    )
    settings = settings_for(livekit_server, redis_url)
    async with AsyncExitStack() as stack:
        watchdogs = [
            await stack.enter_async_context(Watchdog(settings, options))  # type: ignore[arg-type]
            for _ in range(2)
        ]

        async def one_leads() -> bool:
            return sum(w.leadership.leading for w in watchdogs) == 1

        await eventually(one_leads, timeout=10, what="one leader among two watchdogs")
        # a plain join: only the watchdogs can send the agent, and both see the person wait
        async with person(livekit_server, room, "user-1") as someone:
            await someone.wait_for_agent(timeout=20)
            assert await named_dispatches(livekit_server, room) == [agent_name]


def watch_process(
    server: ServerInfo, redis: str, agent_name: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
    env |= server.env() | {"ROOM_PREFIX": PREFIX, "REDIS_URL": redis, "PYTHONPATH": str(ROOT)}
    argv = ["watch", "--port", str(free_port()), "--agent", agent_name, "--grace", "0.5"]
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "room_recovery.cli", *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


async def test_the_standby_finishes_a_recovery_when_the_leader_is_killed(
    livekit_server: ServerInfo,
    redis_url: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    agent_name = f"ld-agent-{uuid.uuid4().hex[:6]}"
    room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    logs = [tmp_path / "watch-0.log", tmp_path / "watch-1.log"]
    processes = [watch_process(livekit_server, redis_url, agent_name, log) for log in logs]
    try:

        def leader() -> int | None:
            leads = [i for i, log in enumerate(logs) if "leads (epoch" in log.read_text()]
            return leads[0] if len(leads) == 1 else None

        async def elected() -> bool:
            return leader() is not None

        await eventually(elected, timeout=20, what="a leader among two watchdog processes")
        first = leader()
        assert first is not None
        async with person(livekit_server, room, "user-2") as someone:
            # no worker yet: the leader's dispatch is dropped; it is killed mid-recovery
            async def dispatched() -> bool:
                return "dispatching" in logs[first].read_text()

            await eventually(dispatched, timeout=15, what="the leader's first dispatch")
            processes[first].send_signal(signal.SIGKILL)
            processes[first].wait(5)
            worker = WorkerProcess.demo(livekit_server, agent_name, tmp_path / "worker.log")
            workers.append(worker)
            await worker.registered()
            standby = logs[1 - first]

            async def took_over() -> bool:
                return "leads (epoch" in standby.read_text()

            await eventually(took_over, timeout=15, what="the standby to take over")
            await someone.wait_for_agent(timeout=25)  # the standby's dispatch brought it
            assert "dispatching" in standby.read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


async def test_a_leader_stalled_between_its_claim_and_its_call_never_dispatches_after_it(
    livekit_server: ServerInfo,
    redis_url: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    # The leader (here, in this process) passes its fence and claims the room, then stalls
    # before its dispatch call, for longer than its lease and its claim: its whole event
    # loop blocked, as a SIGSTOP would. The standby (a process) takes over and sends the
    # agent. When the old leader resumes, its call meets its own clock: its lease ran out,
    # so it never makes it. One dispatch, and the successor's agent stays.
    agent_name = f"ld-agent-{uuid.uuid4().hex[:6]}"
    room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess.demo(livekit_server, agent_name, tmp_path / "worker.log")
    workers.append(worker)
    await worker.registered()
    options = WatchdogOptions(
        agent_name=agent_name, sweep_interval=0.3, watch=WatchPolicy(grace=0.5)
    )
    stalled = False
    async with Watchdog(settings_for(livekit_server, redis_url), options) as leader:  # type: ignore[arg-type]
        await eventually(
            lambda: asyncio.sleep(0, leader.leadership.leading), timeout=10, what="a leader"
        )
        claim = leader.leadership.claim

        async def claim_then_stall(room_name: str, seconds: float) -> bool:
            nonlocal stalled
            claimed = await claim(room_name, seconds)
            if claimed and not stalled:
                stalled = True
                time.sleep(LEASE + 4.0)  # noqa: ASYNC251 (the point: nothing runs)
            return claimed

        leader.leadership.claim = claim_then_stall  # type: ignore[method-assign]
        log = tmp_path / "standby.log"
        standby = watch_process(livekit_server, redis_url, agent_name, log)
        try:
            await eventually(
                lambda: asyncio.sleep(0, "watchdog started" in log.read_text()),
                timeout=20,
                what="the standby to start",
            )
            async with person(livekit_server, room, "user-3") as someone:  # a plain join
                agent = await someone.wait_for_agent(timeout=30)
                assert stalled and "leads (epoch" in log.read_text()
                await asyncio.sleep(2)  # the old leader runs again for a while
                assert not leader.leadership.leading
                assert await named_dispatches(livekit_server, room) == [agent_name]
                assert [a.sid for a in someone.agents()] == [agent.sid]
        finally:
            standby.send_signal(signal.SIGTERM)
            try:
                standby.wait(10)
            except subprocess.TimeoutExpired:
                standby.kill()
                standby.wait(5)


async def test_redis_out_of_reach_is_one_clear_error_without_the_password() -> None:
    port = free_port()  # nothing listens there
    leadership = Leadership(f"redis://:hunter2@127.0.0.1:{port}/0", "ld")
    try:
        with pytest.raises(RedisUnreachableError) as raised:
            await leadership.step()
    finally:
        await leadership.close()
    message = str(raised.value)
    assert f"Redis unreachable at redis://127.0.0.1:{port}" in message
    assert "Check REDIS_URL" in message and "hunter2" not in message
    assert not leadership.leading


def test_a_redis_url_of_another_kind_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="REDIS_URL='http://x' is invalid"):
        load_settings(redis_url="http://x")


def test_a_new_lead_hears_every_heartbeat_afresh() -> None:
    # a heartbeat frozen while Redis (LiveKit's bus too) was away is no evidence of a death
    # for the watchdog that leads again after it: its silence counts from the new lead
    settings = load_settings(livekit_api_key="k", livekit_api_secret="s" * 40)
    dog = Watchdog(settings, WatchdogOptions())
    dog.leadership.epoch = 1
    dog.note_lead()
    dog.heartbeats.silence("r", "agent-1", "beat-7", 100.0)
    assert dog.heartbeats.silence("r", "agent-1", "beat-7", 110.0) == 10.0  # frozen 10 s
    dog.note_lead()  # the same lead: nothing is forgotten
    assert dog.heartbeats.silence("r", "agent-1", "beat-7", 110.0) == 10.0
    dog.leadership.epoch = 2  # it lost the lead in the outage and leads again
    dog.note_lead()
    assert dog.heartbeats.silence("r", "agent-1", "beat-7", 110.0) == 0.0
    dog.heartbeats.silence("r", "agent-1", "beat-7", 120.0)
    dog.leadership.takeovers += 1  # leads again after Redis restarted empty: epoch 2 again
    dog.note_lead()
    assert dog.heartbeats.silence("r", "agent-1", "beat-7", 125.0) == 0.0
