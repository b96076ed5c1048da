"""The guide's own code, pasted as it stands, is healed in place; only the provably dead go.

The user's worker is `tests/workers/letta_voice_agent.py`: automatic dispatch and the
guide's request handler, character for character (its import inside the handler). Here:
that it is the guide's code; that its dead job is replaced in the same room; that a worker
that cleans up from its entrypoint instead is too; that a stalled worker keeps its agent;
that a dispatch no worker took is no attempt, and a person still waiting gets the agent as
soon as a worker comes, failed mark or not; that nothing but the dead agent's own sid is
ever removed. (The page's side is `test_recovery_page.py`; `up`'s is `test_voice_system.py`.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from playwright.async_api import Browser, Page

from room_recovery.core.manager import RoomManager
from room_recovery.core.recovery import replace_agent
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.room_status import ROOM_STATUS_KEY, STATUS_FAILED
from room_recovery.rules.recovery import DeadAgent
from room_recovery.rules.shedding import SHED_CONFIRM, SHED_MIN_AGE
from room_recovery.watchdog import Watchdog
from tests.support.browser import (
    artifact_name,
    page_server,
    pages_of,
    state,
    wait_for,
    wait_status,
    web_settings,
)
from tests.support.livekit import ROOT, ServerInfo, eventually, participant
from tests.support.recovery import linked_watchdog, start_worker
from tests.support.worker import Person, WorkerProcess, job_processes, person

PREFIX = "gw-"
GUIDE = ROOT / "docs" / "guide" / "ROOM_RECOVERY_GUIDE.md"  # the user's guide, verbatim
USERS_GUIDE = ROOT.parent / "shared" / "spec" / "ROOM_RECOVERY_GUIDE.md"  # where it came from
GUIDE_WORKER = ROOT / "tests" / "workers" / "letta_voice_agent.py"


@pytest.fixture
def room() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


def guide_request_handler() -> str:
    """The guide's request-handler block ("Agent Pre-Join Cleanup"), as printed."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    [block] = [b for b in blocks if "async def request_handler" in b]
    return str(block).strip()


def recoveries(watchdog: object, cause: str) -> float:
    value = watchdog.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "room_recovery_recoveries_total", {"cause": cause}
    )
    return value or 0.0


def server_settings(server: ServerInfo, **more: Any) -> Settings:
    return load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        **more,
    )


async def agent_sids(manager: RoomManager, room: str) -> list[str]:
    infos = await manager.list_participants(room)
    return [i.sid for i in infos if i.kind == api.ParticipantInfo.Kind.AGENT]


# --- the guide's code, as it stands --------------------------------------------------------


def test_the_guide_worker_carries_the_guides_request_handler_character_for_character() -> None:
    block = guide_request_handler()
    assert "from livekit_room_manager import RoomManager" in block  # inside the handler
    assert block in GUIDE_WORKER.read_text(), (
        "tests/workers/letta_voice_agent.py must contain the guide's request-handler block "
        "exactly as printed in docs/guide/ROOM_RECOVERY_GUIDE.md"
    )


def test_our_copy_of_the_guide_is_the_users_guide() -> None:
    if not USERS_GUIDE.exists():
        pytest.skip(f"the user's guide is not next to this checkout ({USERS_GUIDE})")
    assert GUIDE.read_text() == USERS_GUIDE.read_text()


async def test_the_guide_workers_dead_job_is_replaced_in_its_room_by_the_monitor(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # no watchdog at all: the monitor, attached by the handler's own import, does it alone
    worker = await start_worker("spec", livekit_server, "", tmp_path / "w.log", workers)
    async with person(livekit_server, room, "user-1", publish=True) as user:
        first = await user.wait_for_agent(timeout=20)
        await worker.wait_for_log("watching this worker's jobs")  # attached at the request
        await worker.wait_for_log("launched: request hook", room)  # where its time went
        [job] = job_processes(worker, livekit_server.url)
        os.kill(job, signal.SIGKILL)
        await user.wait_for(
            "a new agent", lambda: any(a.sid != first.sid for a in user.agents()), 10
        )
        assert user.room.isconnected() and user.room.name == room
    await worker.wait_for_log("Removed dead agent", first.sid)


async def test_a_worker_that_cleans_up_from_its_entrypoint_is_replaced_through_the_jobs_link(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    async with linked_watchdog(livekit_server, PREFIX) as (watchdog, url):
        worker = await start_worker(
            "entrypoint", livekit_server, "", tmp_path / "w.log", workers, url
        )
        async with person(livekit_server, room, "user-1", publish=True) as user:
            first = await user.wait_for_agent(timeout=20)
            await worker.wait_for_log("this job links to the watchdog", room)
            await eventually(
                lambda: asyncio.sleep(0, first.identity in watchdog.links.vouched(room)),
                what="the job to link",
            )
            [job] = job_processes(worker, livekit_server.url)
            os.kill(job, signal.SIGKILL)
            await user.wait_for(
                "a new agent", lambda: any(a.sid != first.sid for a in user.agents()), 10
            )
            assert user.room.isconnected() and user.room.name == room
            # its own cleanup never removed the agent itself: the new one stays
            await user.wait_for("the dead agent to leave", lambda: len(user.agents()) == 1, 5)
        assert watchdog.links.lost_workers == 1


@asynccontextmanager
async def served_by_the_guide_worker(
    server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> AsyncIterator[tuple[Watchdog, WorkerProcess, Person, RoomManager, Any]]:
    """A linked watchdog, the guide's worker, and a person its agent serves, whom the
    worker vouches for: (watchdog, worker, person, manager, the agent)."""
    async with linked_watchdog(server, PREFIX) as (watchdog, url):
        worker = await start_worker("spec", server, "", tmp_path / "w.log", workers, url)
        async with (
            person(server, room, "user-1", publish=True) as user,
            RoomManager(settings=watchdog.settings) as manager,
        ):
            first = await user.wait_for_agent(timeout=20)
            await eventually(
                lambda: asyncio.sleep(0, first.identity in watchdog.links.vouched(room)),
                what="the worker to vouch for its agent",
            )
            yield watchdog, worker, user, manager, first


# --- a stall is not a death ------------------------------------------------------------------


async def test_a_worker_stopped_for_nine_seconds_keeps_its_agent_and_gets_no_dispatch(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    async with served_by_the_guide_worker(livekit_server, room, workers, tmp_path) as served:
        watchdog, worker, user, manager, first = served
        os.kill(worker.process.pid, signal.SIGSTOP)  # its main process; jobs run on
        try:
            await eventually(
                lambda: asyncio.sleep(0, watchdog.links.silent_count() == 1),
                timeout=10,
                what="the watchdog to find the link silent",
            )
            await asyncio.sleep(9 - 5)  # the rest of the 9 s stall
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
        await eventually(
            lambda: asyncio.sleep(0, watchdog.links.silent_count() == 0),
            what="the worker to answer again",
        )
        assert not await watchdog.check_room(room)  # nobody waits
        assert await agent_sids(manager, room) == [first.sid]  # the same agent
        assert [(e, sid) for e, _i, sid in user.events] == [("joined", first.sid)]
        dispatches = await manager.list_dispatches(room)
        assert len(dispatches) == 1  # LiveKit's own, at the room's creation; none of ours
        assert watchdog.links.lost_workers == 0 and recoveries(watchdog, "ghost_removed") == 0


async def test_a_second_job_for_a_room_the_guide_workers_agent_serves_is_declined(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # what a node restart does (the person's connection renewed, and LiveKit dispatches the
    # room again while its agent reconnects), or two recoveries at once: a second job for a
    # room whose agent is alive. The worker that runs that agent declines it, from inside
    # the guide's own `ensure_clean_room` (the block's `accept()` then does nothing): one
    # agent, the same, never removed.
    async with served_by_the_guide_worker(livekit_server, room, workers, tmp_path) as served:
        watchdog, worker, _user, manager, first = served
        async with person(livekit_server, room, "user-1", publish=True) as again:
            await again.wait_for("the agent", lambda: len(again.agents()) == 1, 10)
            await manager.dispatch_agent(room, "")  # automatic dispatch: "" (measured)
            await worker.wait_for_log("declined job", room)
            assert await agent_sids(manager, room) == [first.sid]
            assert [a.sid for a in again.agents()] == [first.sid]
            assert ("left", first.identity, first.sid) not in again.events
        assert "job_request_fnc failed" not in worker.log_text()
        assert watchdog.links.lost_workers == 0


async def test_a_worker_full_of_agents_alone_in_left_rooms_ends_them_for_the_next_person(
    livekit_server: ServerInfo, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # what a node's death leaves behind: agents alone in rooms their people have left, whose
    # jobs fill the worker, so that LiveKit drops the next person's dispatch ("no servers
    # available"). Here the worker's limit is 2 jobs: a left room's job and a served one
    # fill it. Its monitor ends the left room's job, never the served one, and the next
    # person gets an agent by LiveKit's own dispatch (no watchdog runs here).
    left, served, later = (f"{PREFIX}{uuid.uuid4().hex[:10]}" for _ in range(3))
    full_at_two = {"LETTA_JOBS_AT_LIMIT": "2"}
    log = tmp_path / "w.log"
    worker = await start_worker("spec", livekit_server, "", log, workers, env=full_at_two)
    async with person(livekit_server, left, "user-1") as gone:
        await gone.wait_for_agent(timeout=20)
    async with (
        person(livekit_server, served, "user-2") as user,
        RoomManager(settings=server_settings(livekit_server, room_prefix=PREFIX)) as manager,
    ):
        kept = await user.wait_for_agent(timeout=20)
        await worker.wait_for_log("Ending job", left, timeout=SHED_MIN_AGE + SHED_CONFIRM + 15)
        await worker.wait_for_log("ended; this worker's load is now 0.35, told LiveKit", left)
        assert not await agent_sids(manager, left)  # its agent left the room
        async with person(livekit_server, later, "user-3") as next_one:
            await next_one.wait_for_agent(timeout=10)
        assert [a.sid for a in user.agents()] == [kept.sid]  # the served job was never ended
    ended = [ln for ln in worker.log_text().splitlines() if "Ending job" in ln]
    assert len(ended) == 1 and left in ended[0]
    assert "💀" not in worker.log_text()  # an agent that left an empty room is no death


# --- never given up while an agent could come ---------------------------------------------


async def test_a_dispatch_no_worker_took_is_no_attempt_and_the_agent_comes_with_the_worker(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    async with linked_watchdog(
        livekit_server, PREFIX, grace=0.5, dispatch_wait=3.5, max_dispatches=1
    ) as (watchdog, url):
        async with person(livekit_server, room, "user-1", publish=True) as user:  # plain token

            async def dropped() -> bool:
                return recoveries(watchdog, "dispatch_dropped") >= 1

            await eventually(dropped, timeout=15, what="a dropped dispatch")
            assert not watchdog.book.rooms[room].history.failed  # one attempt allowed, none used
            # an unlinked worker (the guide's links at its first job): the retry finds it
            await start_worker("spec", livekit_server, "", tmp_path / "w.log", workers, url)
            await user.wait_for_agent(timeout=15)
            assert user.room.isconnected() and user.room.name == room
        async with RoomManager(settings=watchdog.settings) as manager:
            names = [d.agent_name for d in await manager.list_dispatches(room)]
        assert len(names) <= 3  # the dropped dispatches were deleted as they were found


async def test_a_room_marked_failed_gets_its_agent_when_a_worker_registers(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # its jobs stay "running" in LiveKit's dispatch state: held start_wait, then counted
    async with linked_watchdog(
        livekit_server, PREFIX, grace=0.5, dispatch_wait=1.5, max_dispatches=1, start_wait=2
    ) as (watchdog, url):
        broken = await start_worker("broken", livekit_server, "", tmp_path / "b.log", workers)
        async with person(livekit_server, room, "user-1", publish=True) as user:

            async def failed() -> bool:
                return recoveries(watchdog, "room_failed") >= 1

            await eventually(failed, timeout=20, what="the room to be marked failed")
            broken.kill()
            # a worker that links when it registers: the watchdog sends it at once
            await start_worker("top", livekit_server, "", tmp_path / "w.log", workers, url)
            await user.wait_for_agent(timeout=10)
            assert user.room.isconnected() and user.room.name == room
            assert json.loads(user.room.metadata)[ROOM_STATUS_KEY]["status"] == STATUS_FAILED


# --- only the provably dead are removed ----------------------------------------------------


async def test_a_late_removal_of_a_dead_agent_never_hits_its_replacement_or_a_person(
    livekit_server: ServerInfo, room: str
) -> None:
    async with (
        RoomManager(settings=server_settings(livekit_server)) as manager,
        participant(livekit_server, room, "user-1") as user,
    ):
        async with participant(livekit_server, room, "agent-x", kind="agent") as dead:
            dead_sid = dead.local_participant.sid
        died_at = time.time()
        async with participant(livekit_server, room, "agent-x", kind="agent") as replacement:
            new_sid = replacement.local_participant.sid
            assert not await manager.remove_agent(room, "agent-x", dead_sid)  # not that sid
            assert not await manager.remove_agent(room, "user-1", user.local_participant.sid)
            outcome = await replace_agent(
                manager, room, DeadAgent("agent-x", died_at=died_at), "", "", cause="test"
            )
            assert not outcome.removed and not outcome.dispatched  # the replacement serves
            assert outcome.serving == "agent-x"
            assert new_sid in await agent_sids(manager, room)


async def test_a_listener_who_publishes_nothing_is_never_cleaned_up(
    livekit_server: ServerInfo, room: str
) -> None:
    def stale_at_once(**more: object) -> Settings:  # in this module's rooms only
        return server_settings(livekit_server, room_prefix=PREFIX, room_stale_timeout=0.001, **more)

    async with participant(livekit_server, room, "listener"):  # joins, publishes nothing
        async with RoomManager(settings=stale_at_once()) as manager:
            # LiveKit lists a person a moment after their join returns, and ACTIVE a moment
            # later still: empty, or joining, for 1 ms is stale in this test
            async def active() -> bool:
                listed = await manager.list_participants(room)
                return [p.state for p in listed] == [api.ParticipantInfo.State.ACTIVE]

            await eventually(active, timeout=5, what="LiveKit to list the listener ACTIVE")
            report = await manager.cleanup_stale_rooms()
            assert "listener" in {k.identity for k in report.kept}
            assert room not in {d.room for d in report.deleted}
            assert [p.identity for p in await manager.list_participants(room)] == ["listener"]
        async with RoomManager(settings=stale_at_once(room_stale_silent=True)) as manager:
            report = await manager.cleanup_stale_rooms()
            # its only participant is stale now: the room goes, with the reason
            [deleted] = [d for d in report.deleted if d.room == room]
            assert "publishes nothing" in deleted.reason


# --- Disconnect cleans up for any agent ------------------------------------------------------


async def gone(manager: RoomManager, room: str) -> bool:
    return await manager.get_room_info(room) is None


async def connect_page(page: Page) -> str:
    await page.get_by_role("button", name="Connect", exact=True).click()
    await wait_status(page, "connected", 20)
    return str((await state(page))["room"])


async def disconnect_page(page: Page) -> dict[str, object]:
    """Press Disconnect; the page's server's answer to its request to delete the room."""
    await page.get_by_role("button", name="Disconnect", exact=True).click()
    await wait_for(page, "rr.leaveAnswers.length === 1", 10, "the server's answer")
    return dict((await state(page))["leaveAnswers"][0])


@pytest.fixture
async def guide_page(
    livekit_server: ServerInfo,
    workers: list[WorkerProcess],
    tmp_path: Path,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Page, str, RoomManager]]:
    """The page, connected to the guide's agent (automatic dispatch): (page, room, manager)."""
    await start_worker("spec", livekit_server, "", tmp_path / "w.log", workers)
    settings = web_settings(livekit_server, room_prefix=PREFIX)
    async with (
        page_server(settings, ["auto:letta"]) as site,
        pages_of(browser, artifact_name(request.node.name), no_errors=True) as open_page,
        RoomManager(settings=settings) as manager,
    ):
        page = await open_page(f"{site}/?agent=letta")
        room = await connect_page(page)
        yield page, room, manager


async def test_disconnect_deletes_the_room_even_when_the_agent_ignores_the_goodbye(
    guide_page: tuple[Page, str, RoomManager],
) -> None:
    # the guide's agent only logs the goodbye and stays: the page's server deletes the room
    page, room, manager = guide_page
    assert await agent_sids(manager, room)
    clicked = time.monotonic()
    assert await disconnect_page(page) == {"deleted": True}
    await eventually(lambda: gone(manager, room), timeout=5, what=f"room {room} deleted")
    print(f"room deleted {time.monotonic() - clicked:.2f} s after Disconnect")
    await wait_status(page, "disconnected", 5)


async def test_disconnect_never_deletes_a_room_another_person_is_in(
    livekit_server: ServerInfo, guide_page: tuple[Page, str, RoomManager]
) -> None:
    page, room, manager = guide_page
    async with participant(livekit_server, room, "someone-else"):
        assert await disconnect_page(page) == {"deleted": False}
        assert await manager.get_room_info(room) is not None
        assert "someone-else" in {p.identity for p in await manager.list_participants(room)}
    await manager.delete_room(room)
