"""One recovery protocol for any agent, as the user wired it, on the real stack.

Here, at the level of a person's own client (rtc), what they see: the dead agent leaves
and one replacement joins, while they stay in their room. The page in Chromium, for every kind of
agent and every fault, is `test_recovery_page.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import pytest
from livekit import api

from room_recovery.agent.announce import ANNOUNCED_ATTRIBUTE, needs_announcing
from room_recovery.protocol.room_status import ROOM_STATUS_KEY, STATUS_RECOVERING
from tests.support.livekit import ServerInfo, eventually
from tests.support.recovery import linked_watchdog, serving, start_worker
from tests.support.worker import Person, WorkerProcess, job_processes, person

PREFIX = "rp-"


@pytest.fixture
def room() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


async def spec_worker(
    server: ServerInfo, log: Path, workers: list[WorkerProcess], watchdog_url: str = ""
) -> WorkerProcess:
    return await start_worker("spec", server, "", log, workers, watchdog_url)


async def replaced(user: Person, old_sid: str, timeout: float = 10.0) -> str:
    """Wait for an agent other than `old_sid`; returns its sid."""
    await user.wait_for(
        "a new agent", lambda: any(a.sid != old_sid for a in user.agents()), timeout
    )
    return next(a.sid for a in user.agents() if a.sid != old_sid)


def joins_after(user: Person, mark: int) -> list[str]:
    return [sid for event, _identity, sid in user.events[mark:] if event == "joined"]


# --- a new agent is shown at once ---------------------------------------------------------


def test_only_an_active_agent_that_publishes_nothing_needs_announcing() -> None:
    state = api.ParticipantInfo.State
    assert needs_announcing(api.ParticipantInfo(state=state.ACTIVE, is_publisher=False))
    assert not needs_announcing(api.ParticipantInfo(state=state.ACTIVE, is_publisher=True))
    assert not needs_announcing(api.ParticipantInfo(state=state.JOINED, is_publisher=False))


# --- job process killed ------------------------------------------------------------------


async def test_a_spec_shaped_workers_dead_job_is_replaced_in_place_with_no_entrypoint_code(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    worker = await spec_worker(livekit_server, tmp_path / "spec.log", workers)
    async with person(livekit_server, room, "user-1", publish=True) as user:  # a plain join
        first = await user.wait_for_agent(timeout=20)
        [job] = job_processes(worker, livekit_server.url)
        mark = len(user.events)
        os.kill(job, signal.SIGKILL)
        new_sid = await replaced(user, first.sid)
        # The new agent publishes nothing, so LiveKit would show it on its next 3 s tick
        # only; the worker monitor announces it at once, through its attributes.
        [new] = [a for a in user.agents() if a.sid == new_sid]
        await user.wait_for("the announcement", lambda: ANNOUNCED_ATTRIBUTE in new.attributes, 5)
        # The dead one's leave waits for that tick (it is removed before the dispatch, but
        # its leave is batched): it comes, and the person never moved; one new agent.
        await user.wait_for("the dead agent to leave", lambda: len(user.agents()) == 1, 5)
        assert ("left", first.identity, first.sid) in user.events[mark:]
        assert joins_after(user, mark) == [new_sid]
        assert user.room.isconnected() and user.room.name == room
        status = json.loads(user.room.metadata)[ROOM_STATUS_KEY]
        assert status["status"] == STATUS_RECOVERING and status["reason"] == "agent_died"
        assert status["agent"] == first.identity  # the mark names the agent it replaces
    await worker.wait_for_log("died (its job process exited with code -9); replacing it")


# --- whole worker killed -----------------------------------------------------------------


async def test_a_killed_workers_agent_is_replaced_by_another_worker_through_its_link(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    async with linked_watchdog(livekit_server, PREFIX) as (watchdog, url):
        pool: list[WorkerProcess] = []
        for name in ("a", "b"):
            pool.append(await spec_worker(livekit_server, tmp_path / f"{name}.log", workers, url))
        async with person(livekit_server, room, "user-1", publish=True) as user:
            first = await user.wait_for_agent(timeout=20)
            await eventually(
                lambda: asyncio.sleep(0, bool(watchdog.links.vouched(room))),
                what="the serving worker to report its job",
            )
            victim = serving(pool, livekit_server)
            mark = len(user.events)
            victim.kill()  # the worker and its job processes, as a crash
            new_sid = await replaced(user, first.sid)
            assert watchdog.links.lost_workers == 1
            # the dead agent's leave comes on LiveKit's 3 s tick (the new one is announced)
            await user.wait_for("the dead agent to leave", lambda: len(user.agents()) == 1, 5)
            assert joins_after(user, mark) == [new_sid]  # one replacement, not two
            assert [a.sid for a in user.agents()] == [new_sid]
            survivor = next(w for w in pool if w is not victim)
            assert job_processes(survivor, livekit_server.url)
