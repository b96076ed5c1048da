"""The decisions that act on a server, against a fake one (`support.fake_transport`): what
the manager's cleanups remove and keep, what one look of the watchdog does to a room, and
how a dead agent is replaced. No process, no network: each test takes milliseconds."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from types import SimpleNamespace

import pytest
from livekit import api
from livekit.protocol.agent import JS_PENDING, JS_RUNNING

from room_recovery.core.errors import (
    LiveKitAPIError,
    NotLeading,
    OutOfScopeError,
    ServerUnreachableError,
)
from room_recovery.core.recovery import ReplacementOutcome, replace_agent
from room_recovery.core.transport import Transport
from room_recovery.protocol import links
from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE
from room_recovery.protocol.links import JobRecord
from room_recovery.protocol.messages import dispatch_metadata
from room_recovery.rules.reach import GHOST_AFTER
from room_recovery.rules.recovery import DeadAgent
from room_recovery.rules.watch import RoomHistory
from room_recovery.watchdog.links import WorkerLink
from room_recovery.watchdog.look import look_at_room
from room_recovery.watchdog.service import Watchdog, WatchdogOptions
from tests.support.fake_transport import (
    AGENT,
    DISCONNECTED,
    JOINING,
    FakeTransport,
    fake_settings,
    manager_on,
    timeout,
)
from tests.support.fake_watchdog import FakeWatchdog

ROOM = "voice-1"
AGENT_ID = "agent-voice-1"
META = dispatch_metadata("user")


@pytest.fixture
def fake() -> FakeTransport:
    """A fake server for a deployment whose rooms are named `voice-...`."""
    return FakeTransport(fake_settings(room_prefix="voice-"))


def touched(fake: FakeTransport) -> set[str]:
    """The rooms named by any call but the listing of every room."""
    return {call.args[0] for call in fake.log if call.name != "list_rooms"}


def lease_ran_out() -> None:
    raise NotLeading("the lease ran out")


def test_the_fake_has_every_method_of_transport_with_its_parameters() -> None:
    for name, method in vars(Transport).items():
        if callable(method) and not name.startswith("_"):
            assert name in vars(FakeTransport), f"FakeTransport.{name} is missing"
            real, ours = (inspect.signature(m) for m in (method, getattr(FakeTransport, name)))
            shape = [(p.name, p.kind, p.default) for p in real.parameters.values()]
            assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == shape, name


async def test_the_real_transport_checks_before_change_and_times_out_as_the_fake_does() -> None:
    sent: list[str] = []

    async def request() -> str:
        sent.append("sent")
        return "done"

    async def stalls() -> str:
        raise TimeoutError

    real = Transport(fake_settings(), before_change=lease_ran_out)
    with pytest.raises(NotLeading):
        await real.call("delete a room", request, changes=True)
    assert sent == [] and real.calls == 0
    assert await real.call("list rooms", request) == "done"  # a query is never asked about
    with pytest.raises(ServerUnreachableError) as raised:
        await real.call("list rooms", stalls)
    assert str(raised.value) == str(timeout(real))


class DeadNodeRooms:
    """LiveKit's room service for one room whose node died: the first delete fails as
    `first` says, the rest of the calls answer."""

    def __init__(self, first: str, listed: bool = True) -> None:
        self.first, self.listed, self.calls = first, listed, list[str]()

    async def delete_room(self, request: api.DeleteRoomRequest) -> api.DeleteRoomResponse:
        self.calls.append("delete")
        if self.calls.count("delete") == 1:
            if self.first == "silent":
                await asyncio.sleep(5)  # past the transport's bound
            raise api.TwirpError(self.first, "request timed out", status=408)
        return api.DeleteRoomResponse()

    async def list_rooms(self, request: api.ListRoomsRequest) -> api.ListRoomsResponse:
        self.calls.append("list")
        rooms = [api.Room(name=name) for name in request.names] if self.listed else []
        return api.ListRoomsResponse(rooms=rooms)

    async def create_room(self, request: api.CreateRoomRequest) -> api.Room:
        self.calls.append("create")
        return api.Room(name=request.name)


@pytest.mark.parametrize("first", ["silent", "deadline_exceeded"])
async def test_a_room_whose_node_does_not_answer_is_placed_on_a_live_node_and_deleted(
    first: str,
) -> None:
    rooms = DeadNodeRooms(first)
    transport = Transport(fake_settings(), request_timeout=0.2)
    assert await transport.delete(SimpleNamespace(room=rooms), ROOM)  # type: ignore[arg-type]
    assert rooms.calls == ["delete", "list", "create", "delete"]


async def test_a_delete_lost_with_livekit_itself_or_refused_otherwise_places_nothing() -> None:
    transport = Transport(fake_settings(), request_timeout=0.2)
    gone = DeadNodeRooms("silent", listed=False)  # LiveKit lists no such room: not ours to move
    with pytest.raises(ServerUnreachableError):
        await transport.delete(SimpleNamespace(room=gone), ROOM)  # type: ignore[arg-type]
    refused = DeadNodeRooms("permission_denied")
    with pytest.raises(LiveKitAPIError):
        await transport.delete(SimpleNamespace(room=refused), ROOM)  # type: ignore[arg-type]
    assert (gone.calls, refused.calls) == (["delete", "list"], ["delete"])


# --- the manager's cleanups ----------------------------------------------------------------


@pytest.mark.parametrize("listed_before", [False, True])
async def test_startup_cleanup_deletes_stale_rooms_of_its_scope_only(
    fake: FakeTransport, listed_before: bool
) -> None:
    fake.add_room("voice-old", age=400)  # empty past the 300 s timeout
    fake.add_room("voice-new", age=100)
    fake.add_room("other-old", age=4000)  # another application's
    fake.add_participant("other-busy", "ghost", state=JOINING, age=4000, tracks=0)
    # listed_before: the caller pages through a listing of its own (the watchdog does)
    listing = list(fake.rooms.values()) if listed_before else None
    report = await manager_on(fake).cleanup_stale_rooms(rooms=listing)
    assert [d.room for d in report.deleted] == ["voice-old"]
    assert set(fake.rooms) == {"voice-new", "other-old", "other-busy"}
    assert touched(fake) == {"voice-old", "voice-new"}  # nothing else even looked at
    assert {room.name for room in await manager_on(fake).list_rooms()} == {"voice-new"}


async def test_cleanup_removes_a_stale_participant_by_its_sid_and_keeps_the_call(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "user", age=3600)  # a long call, ACTIVE: alive
    fake.add_participant(ROOM, AGENT_ID, kind=AGENT, age=3600)
    stuck = fake.add_participant(ROOM, "stuck", state=JOINING, age=400, tracks=0)
    report = await manager_on(fake).cleanup_stale_rooms()
    assert fake.removed == [(ROOM, "stuck", stuck.sid)]
    assert fake.called("remove_exact") == [(ROOM, "stuck", stuck.sid, False)]
    assert {k.identity for k in report.kept} == {"user", AGENT_ID}
    assert ROOM in fake.rooms


async def test_a_room_whose_every_participant_is_stale_is_deleted_in_one_call(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, AGENT_ID, kind=AGENT, age=60)  # alone past its 30 s grace
    report = await manager_on(fake).cleanup_stale_rooms()
    assert fake.changes() == ["delete"]
    assert ROOM not in fake.rooms
    assert report.deleted[0].reason.startswith("every participant is stale")


async def test_a_room_that_fails_is_reported_and_the_others_are_still_cleaned(
    fake: FakeTransport,
) -> None:
    for name in ("voice-a", "voice-b", "voice-c"):
        fake.add_room(name, age=400)
    fake.fail("delete")  # the first deletion times out
    report = await manager_on(fake).cleanup_stale_rooms()
    assert len(report.failed) == 1 and len(report.deleted) == 2
    assert set(fake.rooms) == {report.failed[0].room}
    assert "no answer within" in report.failed[0].error


async def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(
    fake: FakeTransport,
) -> None:
    fake.add_room("voice-old", age=400)
    fake.add_participant(ROOM, "stuck", state=JOINING, age=400, tracks=0)
    fake.add_participant(ROOM, "user")
    before = fake.snapshot()
    report = await manager_on(fake).cleanup_stale_rooms(dry_run=True)
    assert [d.room for d in report.deleted] == ["voice-old"]
    assert [r.identity for r in report.removed] == ["stuck"]
    assert fake.changes() == [] and fake.snapshot() == before


async def test_before_an_agent_joins_the_person_stays_and_dead_or_old_agents_go(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "user", state=JOINING, age=400, tracks=0)  # stale, but kept
    lurker = fake.add_participant(ROOM, "lurker", state=JOINING, age=400, tracks=0)  # stale
    old = fake.add_participant(ROOM, "agent-old", kind=AGENT, age=500)  # before the person
    dead = fake.add_participant(ROOM, "agent-dead", kind=AGENT, age=2, state=DISCONNECTED)
    fake.add_participant(ROOM, "agent-live", kind=AGENT, age=2)  # came for the person
    report = await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert set(fake.participants[ROOM]) == {"user", "agent-live"}
    assert {(identity, sid) for _, identity, sid in fake.removed} == {
        ("agent-old", old.sid),
        ("agent-dead", dead.sid),
        ("lurker", lurker.sid),
    }
    assert report.ok and {k.identity for k in report.kept} == {"user", "agent-live"}


async def test_a_failed_removal_never_deletes_the_room_of_the_kept_person(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "user")
    fake.add_participant(ROOM, "agent-old", kind=AGENT, age=60)
    fake.fail("remove")
    report = await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert [f.identity for f in report.failed] == ["agent-old"]
    assert "delete" not in fake.changes() and "user" in fake.participants[ROOM]


async def test_a_failed_removal_deletes_the_room_when_the_person_is_not_in_it(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "agent-old", kind=AGENT, age=60)
    fake.fail("remove")
    report = await manager_on(fake).ensure_clean_room(ROOM, keep="user")  # not joined yet
    assert ROOM not in fake.rooms
    assert report.ok and [d.reason for d in report.deleted] == ["participant removal failed"]


async def test_a_room_outside_the_scope_is_refused_before_any_call(fake: FakeTransport) -> None:
    fake.add_participant("other-1", "agent", kind=AGENT, age=60)
    manager = manager_on(fake)
    with pytest.raises(OutOfScopeError):
        await manager.ensure_clean_room("other-1", keep="user")
    with pytest.raises(OutOfScopeError):
        await manager.remove_agent("other-1", "agent", fake.participants["other-1"]["agent"].sid)
    with pytest.raises(OutOfScopeError):
        await manager.dispatch_agent("other-1", "my-agent")
    assert fake.log == []


async def test_removing_an_agent_by_sid_never_removes_a_person(fake: FakeTransport) -> None:
    person = fake.add_participant(ROOM, "user")
    assert not await manager_on(fake).remove_agent(ROOM, "user", person.sid)
    assert fake.removed == [] and "user" in fake.participants[ROOM]


async def test_removing_an_agent_spares_a_replacement_that_took_its_identity(
    fake: FakeTransport,
) -> None:
    dead = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)
    # between the judgement and the removal, a new agent joins under the same identity
    fake.before("remove_exact", lambda: fake.add_participant(ROOM, AGENT_ID, kind=AGENT, age=0))
    assert not await manager_on(fake).remove_agent(ROOM, AGENT_ID, dead.sid)
    assert fake.removed == [] and fake.participants[ROOM][AGENT_ID].sid != dead.sid


# --- one look of the watchdog at one room --------------------------------------------------


def waiting_person(fake: FakeTransport, dog: FakeWatchdog, since: float = 10.0) -> None:
    """A person in ROOM, waiting `since` seconds (past the grace) with no agent."""
    fake.add_participant(ROOM, "user", age=since)
    dog.watch(ROOM).history = RoomHistory(waiting_since=time.monotonic() - since)


async def test_a_person_waiting_without_an_agent_gets_exactly_one_dispatch(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    fake.add_dispatch(ROOM, "my-agent", jobs=[JS_RUNNING])  # the room's own, whose agent left
    assert await look_at_room(dog, ROOM)
    assert await look_at_room(dog, ROOM)  # a moment later: that dispatch is on its way
    assert fake.called("dispatch") == [(ROOM, "my-agent", META)]  # its own agent, for them
    assert dog.lead.claimed == [ROOM]


@pytest.mark.parametrize(("joined_ago", "dispatched"), [(5.0, True), (0.5, False)])
async def test_a_room_heard_of_late_counts_the_persons_wait_from_their_join(
    fake: FakeTransport, joined_ago: float, dispatched: bool
) -> None:
    dog = FakeWatchdog(fake)  # no webhook: the first look comes from the listing, late
    fake.add_participant(ROOM, "user", age=joined_ago)
    dog.watch(ROOM)
    assert await look_at_room(dog, ROOM)
    assert bool(fake.called("dispatch")) is dispatched


async def test_a_person_no_node_answers_for_gets_no_agent_and_then_their_room_goes(
    fake: FakeTransport,
) -> None:
    # a dead node's ghost: LiveKit lists them ACTIVE, and no node answers for them
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    fake.add_dispatch(ROOM, "my-agent")
    fake.ghosts[ROOM].add("user")
    assert await look_at_room(dog, ROOM)  # doubt: not yet a ghost, and no agent sent
    assert fake.called("dispatch") == [] and ROOM in fake.rooms
    state = dog.watch(ROOM)
    [sid] = state.unanswered
    state.unanswered[sid] -= GHOST_AFTER  # silent that long
    await look_at_room(dog, ROOM)
    assert ROOM not in fake.rooms and fake.called("dispatch") == []
    assert [cause for _, cause, _ in dog.recoveries] == ["ghost_room"]


async def test_a_ghost_agent_no_node_can_remove_stops_nothing_and_its_room_goes(
    fake: FakeTransport,
) -> None:
    # person and agent both left behind by a dead node: the agent's removal times out
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user", age=60)
    sid = silent_agent(fake, dog)
    fake.ghosts[ROOM].update({"user", AGENT_ID})
    fake.fail("remove_exact", times=2)
    fake.fail("update_metadata", times=2)  # the pages' status goes to the dead node too
    assert await look_at_room(dog, ROOM)  # it went on to ask about the person: doubt
    assert fake.called("reaches") == [(ROOM, "user")] and fake.called("dispatch") == []
    state = dog.watch(ROOM)
    [person_sid] = state.unanswered
    state.unanswered[person_sid] -= GHOST_AFTER
    await look_at_room(dog, ROOM)
    assert ROOM not in fake.rooms and (ROOM, AGENT_ID, sid) not in fake.removed


@pytest.mark.parametrize("person", [False, True], ids=["alone", "beside-a-person"])
async def test_a_dead_agent_no_node_can_remove_has_its_room_deleted_only_when_alone(
    fake: FakeTransport, person: bool
) -> None:
    # the agent's node died with it: LiveKit lists the agent for good, and nobody else
    # (the person left) or a person still there, whom the room stays for
    dog = FakeWatchdog(fake)
    if person:
        fake.add_participant(ROOM, "user", age=60)
    sid = silent_agent(fake, dog)
    fake.fail("remove_exact")
    await look_at_room(dog, ROOM)
    assert (ROOM in fake.rooms) is person and (ROOM, AGENT_ID, sid) not in fake.removed
    causes = [cause for _, cause, _ in dog.recoveries]
    assert causes == (["agent_died"] if person else ["ghost_room"])  # the person: a new one


async def test_a_real_person_beside_a_ghost_gets_their_agent(fake: FakeTransport) -> None:
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    fake.add_participant(ROOM, "ghost", age=60)
    fake.add_dispatch(ROOM, "my-agent")
    fake.ghosts[ROOM].add("ghost")
    assert await look_at_room(dog, ROOM)
    assert len(fake.called("dispatch")) == 1 and ROOM in fake.rooms


async def test_a_room_whose_dispatch_a_worker_is_starting_gets_no_other(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    pending = fake.add_dispatch(ROOM, "my-agent", jobs=[JS_PENDING])
    sent = time.monotonic() - 5  # past dispatch_wait: time to ask what became of it
    state = dog.watch(ROOM)
    state.history = RoomHistory(state.history.waiting_since, (sent,), pending=pending.id)
    assert await look_at_room(dog, ROOM)
    assert fake.called("list_dispatches") == [(ROOM,)]  # it asked
    assert fake.changes() == []


async def test_a_dispatch_no_worker_took_is_deleted_and_made_again(fake: FakeTransport) -> None:
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    dropped = fake.add_dispatch(ROOM, "my-agent")  # no job: no worker took it
    state = dog.watch(ROOM)
    sent = time.monotonic() - 5
    state.history = RoomHistory(state.history.waiting_since, (sent,), pending=dropped.id)
    await look_at_room(dog, ROOM)
    assert fake.called("delete_dispatch") == [(ROOM, dropped.id)]
    assert fake.called("dispatch") == [(ROOM, "my-agent", META)]


async def test_another_watchdogs_claim_on_the_room_prevents_a_second_dispatch(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    waiting_person(fake, dog)
    dog.lead.claim_taken = True
    assert await look_at_room(dog, ROOM)
    assert fake.called("dispatch") == []


def silent_agent(fake: FakeTransport, dog: FakeWatchdog, seconds: float = 10.0) -> str:
    """An agent in ROOM whose heartbeat has not changed for `seconds`; its sid."""
    beat = {HEARTBEAT_ATTRIBUTE: "41:1700000000.000"}
    ghost = fake.add_participant(ROOM, AGENT_ID, kind=AGENT, attributes=beat)
    dog.watch(ROOM)
    since = time.monotonic() - seconds
    dog.heartbeats.silence(ROOM, AGENT_ID, beat[HEARTBEAT_ATTRIBUTE], since, ghost.sid)
    return ghost.sid


async def test_a_dead_agent_is_removed_by_its_sid_as_an_agent_and_replaced(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user")
    sid = silent_agent(fake, dog)
    assert await look_at_room(dog, ROOM)
    assert fake.called("remove_exact") == [(ROOM, AGENT_ID, sid, True)]  # agent_only
    assert fake.removed == [(ROOM, AGENT_ID, sid)] and set(fake.participants[ROOM]) == {"user"}
    assert fake.changes() == ["update_metadata", "remove_exact", "dispatch"]
    status = json.loads(fake.rooms[ROOM].metadata)["room_recovery"]
    assert (status["status"], status["agent"]) == ("recovering", AGENT_ID)


async def test_an_agent_without_heartbeat_whose_worker_died_and_no_node_removed_is_a_ghost(
    fake: FakeTransport,
) -> None:
    # the guide's worker sends no heartbeat: LiveKit's ACTIVE was all the look had, and a
    # dead worker's agent whose node died too (no node would remove it) stayed for good
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user")
    ghost = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)  # no heartbeat attribute
    dog.watch(ROOM)
    link = WorkerLink(link_id="link-1", kind=links.WORKER)
    link.jobs["AJ_1"] = JobRecord("AJ_1", ROOM, AGENT_ID, sid=ghost.sid)
    await dog.links._closed(link)  # its worker's socket closed (no on_lost: it did nothing)
    assert await look_at_room(dog, ROOM)
    assert fake.removed == [(ROOM, AGENT_ID, ghost.sid)] and set(fake.participants[ROOM]) == {
        "user"
    }
    assert "dispatch" in fake.changes()  # the person gets a new agent
    await look_at_room(dog, ROOM)  # no longer listed: its death is forgotten
    assert dog.links.died(ROOM) == []


async def test_an_agent_that_joined_again_is_not_removed_for_its_old_connections_silence(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user")
    old = silent_agent(fake, dog)
    beat = dict(fake.participants[ROOM][AGENT_ID].attributes)
    again = fake.add_participant(ROOM, AGENT_ID, kind=AGENT, attributes=beat, age=0.1)
    assert again.sid != old
    assert await look_at_room(dog, ROOM) is False  # served: its agent is back
    assert fake.removed == [] and fake.called("dispatch") == []


async def test_a_watchdog_that_does_not_lead_changes_nothing(fake: FakeTransport) -> None:
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user")
    silent_agent(fake, dog)
    dog.lead.fenced = True
    before = fake.snapshot()
    with pytest.raises(NotLeading):
        await look_at_room(dog, ROOM)
    assert fake.changes() == [] and fake.snapshot() == before


async def test_a_lease_that_runs_out_mid_look_stops_every_later_change(
    fake: FakeTransport,
) -> None:
    dog = FakeWatchdog(fake)
    fake.add_participant(ROOM, "user")
    sid = silent_agent(fake, dog)
    # the fence passed; then the process stalled past its lease, before the removal
    fake.before("remove_exact", lambda: setattr(dog.lead, "lease_ran_out", True))
    with pytest.raises(NotLeading):
        await look_at_room(dog, ROOM)
    assert fake.participants[ROOM][AGENT_ID].sid == sid and fake.removed == []
    assert fake.called("dispatch") == [] and fake.dispatches[ROOM] == []


def test_the_watchdogs_calls_check_its_lease_right_before_each_change() -> None:
    dog = Watchdog(fake_settings(), WatchdogOptions())
    assert dog.manager._transport.before_change == dog.leadership.check_lease


# --- replacing a dead agent (the worker monitor's and the watchdog's sequence) -------------


async def test_a_replacement_removes_the_dead_sid_and_dispatches_once(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "user")
    dead = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)
    outcome = await replace_agent(
        manager_on(fake), ROOM, DeadAgent(AGENT_ID, sid=dead.sid), "my-agent", META, cause="x"
    )
    assert fake.changes() == ["update_metadata", "remove_exact", "dispatch"]
    assert fake.removed == [(ROOM, AGENT_ID, dead.sid)]
    assert fake.called("dispatch") == [(ROOM, "my-agent", META)]
    assert outcome == ReplacementOutcome(True, fake.dispatches[ROOM][0].id, True, None)


async def test_a_death_reported_by_a_peer_acts_only_if_that_agent_is_listed(
    fake: FakeTransport,
) -> None:
    fake.add_participant(ROOM, "user")  # the dead agent has already left
    dead = DeadAgent(AGENT_ID, sid="PA_gone")
    manager = manager_on(fake)
    outcome = await replace_agent(
        manager, ROOM, dead, "my-agent", META, cause="x", only_if_listed=True
    )
    assert fake.changes() == [] and not outcome.dispatched
    outcome = await replace_agent(manager, ROOM, dead, "my-agent", META, cause="x")
    assert fake.changes() == ["update_metadata", "dispatch"] and outcome.dispatched


async def test_no_second_agent_is_sent_when_another_one_serves(fake: FakeTransport) -> None:
    fake.add_participant(ROOM, "user")
    dead = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)
    fake.add_participant(ROOM, "agent-other", kind=AGENT)
    outcome = await replace_agent(
        manager_on(fake), ROOM, DeadAgent(AGENT_ID, sid=dead.sid), "my-agent", META, cause="x"
    )
    assert fake.changes() == ["remove_exact"] and fake.removed == [(ROOM, AGENT_ID, dead.sid)]
    assert outcome == ReplacementOutcome(True, None, False, "agent-other")


async def test_a_failed_removal_still_sends_the_new_agent(fake: FakeTransport) -> None:
    fake.add_participant(ROOM, "user")
    dead = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)
    fake.fail("remove")
    outcome = await replace_agent(
        manager_on(fake), ROOM, DeadAgent(AGENT_ID, sid=dead.sid), "my-agent", META, cause="x"
    )
    assert not outcome.removed and outcome.dispatched and outcome.dispatch_id is not None
    assert fake.called("dispatch") == [(ROOM, "my-agent", META)]


async def test_a_lead_lost_at_the_removal_stops_the_replacement(fake: FakeTransport) -> None:
    fake.add_participant(ROOM, "user")
    dead = fake.add_participant(ROOM, AGENT_ID, kind=AGENT)
    fake.before("remove_exact", lambda: setattr(fake, "before_change", lease_ran_out))
    with pytest.raises(NotLeading):
        await replace_agent(
            manager_on(fake), ROOM, DeadAgent(AGENT_ID, sid=dead.sid), "my-agent", META, cause="x"
        )
    assert fake.changes() == ["update_metadata", "remove_exact"]  # no dispatch even tried
    assert fake.removed == [] and fake.dispatches[ROOM] == []
