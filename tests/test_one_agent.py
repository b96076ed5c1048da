"""One agent per room, whoever dispatched: the worker that serves a room declines a second
job for it, and the watchdog sends none while a worker replaces its dead agent in place.

Seen under chaos with the guide's worker (`bench/chaos.py`): LiveKit dispatched a room
again after its node restarted while the first agent reconnected, and the watchdog
dispatched beside the worker's own in-place replacement: two agents in one room. The rule
is `rules.recovery.serves`; the worker's side is `WorkerMonitor.admit`; the watchdog's is
`WorkerLinks.replacing`. The guide's worker on a real server is in `test_guide_worker.py`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from livekit import api

from room_recovery.agent.monitor import WorkerMonitor
from room_recovery.core.manager import RoomManager
from room_recovery.protocol import links
from room_recovery.protocol.links import JobRecord
from room_recovery.rules.model import Kind, ParticipantView, State
from room_recovery.rules.recovery import (
    CLAIM_ASSIGN_WAIT,
    CLAIM_START_WAIT,
    Claim,
    serves,
)
from room_recovery.watchdog.links import WorkerLink, WorkerLinks
from room_recovery.watchdog.look import look_at_room
from tests.support.fake_transport import AGENT, FakeTransport, fake_settings
from tests.support.fake_watchdog import FakeWatchdog
from tests.support.livekit import ServerInfo
from tests.support.recovery import linked_watchdog, start_worker
from tests.support.worker import WorkerProcess, person

ROOM = "voice-1"
NOW = 1000.0


def agent(identity: str, state: State = State.ACTIVE) -> ParticipantView:
    return ParticipantView(identity, Kind.AGENT, state, NOW - 30, 1)


# --- the rule -------------------------------------------------------------------------------


def test_a_room_no_job_of_the_worker_claims_is_served_by_nobody() -> None:
    assert serves(None, NOW) is False


def test_a_job_just_accepted_serves_its_room_until_its_assignment_could_have_come() -> None:
    assert serves(Claim("AJ_1", NOW - 1), NOW) is True
    assert serves(Claim("AJ_1", NOW - CLAIM_ASSIGN_WAIT), NOW) is False  # never launched


def test_a_launched_job_serves_its_room_while_its_agent_may_still_be_joining() -> None:
    assert serves(Claim("AJ_1", NOW - 5, True, "agent-AJ_1"), NOW) is True


def test_an_older_job_serves_its_room_only_while_its_agent_is_listed_there() -> None:
    old = Claim("AJ_1", NOW - CLAIM_START_WAIT - 1, True, "agent-AJ_1")
    assert serves(old, NOW) is None  # only the room can tell
    assert serves(old, NOW, [agent("agent-AJ_1")]) is True  # reconnected: it serves
    assert serves(old, NOW, [agent("agent-AJ_1", State.DISCONNECTED)]) is False
    assert serves(old, NOW, [agent("agent-AJ_2")]) is False  # another agent, not this job's
    person = ParticipantView("agent-AJ_1", Kind.STANDARD, State.ACTIVE, NOW, 1)
    assert serves(old, NOW, [person]) is False  # a person named like it is no agent


# --- the worker: admit ----------------------------------------------------------------------


def worker_monitor() -> WorkerMonitor:
    server = SimpleNamespace(active_jobs=[], on=lambda *_: None)
    return WorkerMonitor(server, watchdog="")


def process(job_id: str, room: str = ROOM, exitcode: int = 0) -> SimpleNamespace:
    info = SimpleNamespace(
        job=SimpleNamespace(id=job_id, room=SimpleNamespace(name=room), agent_name="", metadata=""),
        accept_arguments=SimpleNamespace(identity=f"agent-{job_id}"),
    )
    return SimpleNamespace(running_job=info, exitcode=exitcode)


async def test_a_second_job_for_a_room_the_worker_serves_is_declined_and_the_first_keeps_it() -> (
    None
):
    watching = worker_monitor()
    assert await watching.admit(ROOM, "AJ_1") is None  # the first job claims the room
    watching._launched(process("AJ_1"))
    serving = await watching.admit(ROOM, "AJ_2")  # a second dispatch, a moment later
    assert serving is not None and serving.job_id == "AJ_1"
    assert await watching.admit("voice-2", "AJ_3") is None  # another room: its own job


async def test_a_request_that_comes_while_the_first_awaits_its_assignment_is_declined() -> None:
    watching = worker_monitor()
    assert await watching.admit(ROOM, "AJ_1") is None
    serving = await watching.admit(ROOM, "AJ_2")  # AJ_1 accepted, not yet launched
    assert serving is not None and serving.job_id == "AJ_1"


async def test_a_claim_whose_job_never_launched_lapses_and_is_forgotten() -> None:
    watching = worker_monitor()
    watching.claims["voice-2"] = Claim("AJ_0", time.monotonic() - CLAIM_ASSIGN_WAIT - 1)
    assert await watching.admit(ROOM, "AJ_1") is None
    assert set(watching.claims) == {ROOM}  # a long-lived worker keeps no lapsed claim


async def test_the_job_of_a_dead_agent_leaves_its_room_to_the_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watching = worker_monitor()

    async def replaced(*_: object) -> None:  # the in-place replacement, not run here
        return None

    monkeypatch.setattr(watching, "_replace", replaced)
    assert await watching.admit(ROOM, "AJ_1") is None
    watching._launched(process("AJ_1"))
    watching._closed(process("AJ_1", exitcode=-9))  # SIGKILLed
    assert await watching.admit(ROOM, "AJ_2") is None  # the replacement is welcome


async def test_an_old_job_whose_agent_left_the_room_no_longer_holds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watching = worker_monitor()
    watching.claims[ROOM] = Claim("AJ_1", time.monotonic() - 60, True, "agent-AJ_1")
    asked: list[str] = []

    async def listed(room: str, claim: Claim) -> bool:
        asked.append(room)
        assert watching.claims[ROOM].job_id == "AJ_2"  # a request meanwhile waits on it
        return False  # its agent is gone from the room

    monkeypatch.setattr(watching, "_still_serves", listed)
    assert await watching.admit(ROOM, "AJ_2") is None
    assert asked == [ROOM] and watching.claims[ROOM].job_id == "AJ_2"


async def test_an_old_job_whose_agent_reconnected_keeps_its_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watching = worker_monitor()
    old = Claim("AJ_1", time.monotonic() - 60, True, "agent-AJ_1")
    watching.claims[ROOM] = old

    async def listed(room: str, claim: Claim) -> bool:
        return True  # its agent is in the room again

    monkeypatch.setattr(watching, "_still_serves", listed)
    assert await watching.admit(ROOM, "AJ_2") == old
    assert watching.claims[ROOM] == old


# --- the watchdog: no dispatch while a worker replaces ------------------------------------


async def linked(kind: str = links.WORKER) -> tuple[WorkerLinks, WorkerLink]:
    found = WorkerLinks("key", "secret")
    link = WorkerLink(link_id="link-1")
    hello = {"type": links.HELLO, "link": "link-1", "worker": "w-1", "agent_name": ""}
    await found._apply(link, hello | ({"kind": links.JOB} if kind == links.JOB else {}))
    return found, link


def ended(died: bool, job_id: str = "AJ_1") -> dict[str, object]:
    job = JobRecord(job_id, ROOM, f"agent-{job_id}").to_dict()
    return {"type": links.JOB_ENDED, "job": job, "died": died}


async def test_a_worker_that_reports_its_agent_died_holds_the_room_until_the_new_job_starts() -> (
    None
):
    found, link = await linked()
    await found._apply(link, ended(died=True))
    assert found.replacing(ROOM)
    started = JobRecord("AJ_2", ROOM, "agent-AJ_2").to_dict()
    await found._apply(link, {"type": links.JOB_STARTED, "job": started})
    assert not found.replacing(ROOM)  # from now on the new job is vouched for, not yet joined


async def test_a_job_that_ended_well_or_a_job_link_holds_nothing() -> None:
    found, link = await linked()
    await found._apply(link, ended(died=False))
    assert not found.replacing(ROOM)
    alone, job_link = await linked(links.JOB)  # a job's own link: nobody replaces in place
    await alone._apply(job_link, ended(died=True))
    assert not alone.replacing(ROOM)


async def test_the_hold_ends_when_the_worker_took_too_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links, "REPLACING_HOLD", 0.0)
    found, link = await linked()
    await found._apply(link, ended(died=True))
    assert not found.replacing(ROOM)


async def test_a_person_waiting_while_their_worker_replaces_its_agent_gets_no_dispatch() -> None:
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=10.0)  # waited past the grace since joining
    dog.watch(ROOM)
    link = WorkerLink(link_id="link-1")
    hello = {"type": links.HELLO, "link": "link-1", "worker": "w-1", "agent_name": ""}
    await dog.links._apply(link, hello)
    await dog.links._apply(link, ended(died=True))  # sent before it removes the dead agent
    assert await look_at_room(dog, ROOM)  # waiting...
    assert fake.called("dispatch") == []  # ...for the worker's own replacement


async def test_an_agent_whose_job_died_is_removed_though_livekit_lists_it_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the guide's agent sends no heartbeat: LiveKit's ACTIVE was all the watchdog had, and
    # when the worker's own replacement failed (LiveKit unreachable) the dead agent stayed
    monkeypatch.setattr(links, "REPLACING_HOLD", 0.0)  # the worker gave up replacing it
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=10.0)
    ghost = fake.add_participant(ROOM, "agent-AJ_1", kind=AGENT, age=9.0)
    dog.watch(ROOM)
    link = WorkerLink(link_id="link-1")
    hello = {"type": links.HELLO, "link": "link-1", "worker": "w-1", "agent_name": ""}
    await dog.links._apply(link, hello)
    await dog.links._apply(link, ended(died=True))  # its sid never reported: own identity
    assert await look_at_room(dog, ROOM)
    assert fake.removed == [(ROOM, "agent-AJ_1", ghost.sid)]  # that sid, of kind AGENT
    assert "dispatch" in fake.changes()  # and the person gets an agent
    await look_at_room(dog, ROOM)  # no longer listed: its death is forgotten
    assert dog.links.died(ROOM) == []


# --- LiveKit's own dispatch, still on its way -------------------------------------------------


def seconds_ago(seconds: float) -> int:
    """A LiveKit timestamp (nanoseconds) `seconds` ago."""
    return int((time.time() - seconds) * 1e9)


async def test_a_person_past_the_grace_gets_no_dispatch_while_livekits_own_is_answered() -> None:
    # Seen in the cluster test: the watchdog dispatched beside LiveKit's own dispatch while
    # a worker's request hook still ran, and the second job went to the other worker
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=3.2)  # past the 3 s grace
    own = fake.add_dispatch(ROOM, "")  # made with the room, no worker has answered yet
    own.state.created_at = seconds_ago(3.2)
    dog.watch(ROOM)
    assert await look_at_room(dog, ROOM)  # waiting...
    assert fake.called("dispatch") == []  # ...for the hook that is still running
    job = own.state.jobs.add(id="AJ_1")  # a worker took it: its agent is launching
    job.state.status, job.state.started_at = api.JobStatus.JS_RUNNING, seconds_ago(3.0)
    assert await look_at_room(dog, ROOM)
    assert fake.called("dispatch") == []


async def test_a_person_gets_a_dispatch_once_livekits_own_came_to_nothing() -> None:
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=12.0)
    dropped = fake.add_dispatch(ROOM, "")  # no worker took it, and none will
    dropped.state.created_at = seconds_ago(12.0)
    stale = fake.add_dispatch(ROOM, "", jobs=[api.JobStatus.JS_RUNNING])  # its job died
    stale.state.created_at = stale.state.jobs[0].state.started_at = seconds_ago(11.0)
    dog.watch(ROOM)
    assert await look_at_room(dog, ROOM)
    assert len(fake.called("dispatch")) == 1


async def test_livekits_own_dispatch_answered_slowly_brings_the_one_agent_on_a_real_server(
    livekit_server: ServerInfo, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # two workers whose hook takes 2 s; the watchdog's grace, 0.5 s, runs out while the
    # first hook still runs: a dispatch then would be answered by the other worker too
    async with linked_watchdog(livekit_server, "oa-", grace=0.5) as (watchdog, _):
        for name in ("a", "b"):
            await start_worker("slow", livekit_server, "", tmp_path / f"{name}.log", workers)
        room = f"oa-{uuid.uuid4().hex[:10]}"
        async with person(livekit_server, room, "user-1", publish=True) as user:
            await user.wait_for_agent(timeout=15)
            async with RoomManager(settings=watchdog.settings) as manager:
                dispatches = await manager.list_dispatches(room)
            # a dispatch of the watchdog's would have been made before this agent came
            assert [d.agent_name for d in dispatches] == [""]  # LiveKit's own alone
            assert len(user.agents()) == 1


async def test_a_person_gets_a_dispatch_when_livekit_cannot_list_the_rooms_dispatches() -> None:
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=3.2)
    fake.add_dispatch(ROOM, "").state.created_at = seconds_ago(3.2)
    fake.fail("list_dispatches")  # the room's node does not answer: nobody can say
    dog.watch(ROOM)
    assert await look_at_room(dog, ROOM)
    assert len(fake.called("dispatch")) == 1  # never left waiting for our doubt


async def test_a_job_whose_worker_died_before_its_agent_joined_holds_nothing_back() -> None:
    fake = FakeTransport(fake_settings(room_prefix="voice-"))
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=3.2)
    own = fake.add_dispatch(ROOM, "", jobs=[api.JobStatus.JS_RUNNING])
    own.state.created_at = seconds_ago(3.2)
    job = own.state.jobs[0].state
    job.started_at, job.worker_id = seconds_ago(1.0), "AW_1"
    link = WorkerLink(link_id="link-1")
    hello = {"type": links.HELLO, "link": "link-1", "worker": "AW_1", "agent_name": ""}
    await dog.links._apply(link, hello)
    await dog.links._closed(link)  # its process is gone: LiveKit still says "running"
    dog.watch(ROOM)
    assert await look_at_room(dog, ROOM)
    assert len(fake.called("dispatch")) == 1
    await dog.links._apply(WorkerLink(link_id="link-2"), hello | {"link": "link-2"})
    assert dog.links.gone() == set()  # linked again: it was only the link
