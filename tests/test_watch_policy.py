"""The watchdog's decisions, with no server: when to dispatch, when to give up, who is a ghost."""

from __future__ import annotations

import pytest

from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE, heartbeat_of
from room_recovery.rules.liveness import HEARTBEAT_TIMEOUT, MAX_ALLOWANCE, HeartbeatTracker
from room_recovery.rules.model import Kind, ParticipantView, State
from room_recovery.rules.reach import GHOST_AFTER, Reach, judge_reach, only_dead_agents
from room_recovery.rules.watch import (
    REQUEST_DEADLINE,
    DispatchView,
    RoomHistory,
    WatchPolicy,
    assess_room,
    dispatch_on_its_way,
    room_agent,
    waited_before,
)

NOW = 5_000.0
WATCH = WatchPolicy(grace=3, dispatch_wait=4, max_dispatches=3, heartbeat_timeout=1.5)


def person(identity: str = "user", state: State = State.ACTIVE) -> ParticipantView:
    return ParticipantView(identity, Kind.STANDARD, state, NOW - 10, 1)


def agent(identity: str = "agent-room") -> ParticipantView:
    return ParticipantView(identity, Kind.AGENT, State.ACTIVE, NOW - 10, 1)


def test_a_person_with_a_live_agent_is_not_waiting() -> None:
    result = assess_room([person(), agent()], {"agent-room": 0.4}, RoomHistory(), NOW, WATCH)
    assert not result.waiting and not result.dispatch and result.ghosts == ()


def test_a_person_alone_gets_grace_before_any_dispatch() -> None:
    first = assess_room([person()], {}, RoomHistory(), NOW, WATCH)
    assert first.waiting and not first.dispatch
    assert first.history.waiting_since == NOW
    later = assess_room([person()], {}, first.history, NOW + 3.1, WATCH)
    assert later.dispatch and later.cause == "agent_missing"


def test_the_grace_counts_from_the_persons_join_not_from_the_watchdogs_first_look() -> None:
    late = assess_room([person()], {}, RoomHistory(), NOW, WATCH, waited=4.0)
    assert late.dispatch and late.cause == "agent_missing"
    early = assess_room([person()], {}, RoomHistory(), NOW, WATCH, waited=1.0)
    assert not early.dispatch and early.history.waiting_since == NOW - 1.0
    assert not assess_room([person()], {}, early.history, NOW + 1.9, WATCH).dispatch
    assert assess_room([person()], {}, early.history, NOW + 2.1, WATCH).dispatch


def test_the_wait_before_the_first_look_is_the_latest_persons_never_an_agents() -> None:
    def joined(identity: str, at: float, kind: Kind = Kind.STANDARD) -> ParticipantView:
        return ParticipantView(identity, kind, State.ACTIVE, at, 1)

    room = [
        joined("first", NOW - 30),
        joined("second", NOW - 4),
        joined("agent", NOW - 1, Kind.AGENT),
    ]
    assert waited_before(room, NOW) == pytest.approx(4.0)
    assert waited_before([joined("agent", NOW - 9, Kind.AGENT)], NOW) == 0.0
    assert waited_before([joined("unknown", 0.0)], NOW) == 0.0  # LiveKit did not say
    assert waited_before([joined("ahead", NOW + 2)], NOW) == 0.0  # a node's clock runs ahead


def test_a_dispatch_gets_time_to_arrive_before_the_next() -> None:
    history = RoomHistory(waiting_since=NOW - 5, dispatches=(NOW - 1,))
    assert not assess_room([person()], {}, history, NOW, WATCH).dispatch
    assert assess_room([person()], {}, history, NOW + 3.1, WATCH).dispatch


def test_after_the_last_dispatch_fails_the_room_is_marked_failed_once() -> None:
    history = RoomHistory(waiting_since=NOW - 20, dispatches=(NOW - 13, NOW - 9, NOW - 5))
    result = assess_room([person()], {}, history, NOW, WATCH)
    assert result.mark_failed and not result.dispatch and result.history.failed
    again = assess_room([person()], {}, result.history, NOW + 10, WATCH)
    assert not again.mark_failed and not again.dispatch


def test_an_agent_with_a_silent_heartbeat_is_a_ghost_and_replaced_at_once() -> None:
    result = assess_room([person(), agent()], {"agent-room": 1.6}, RoomHistory(), NOW, WATCH)
    assert [g.identity for g in result.ghosts] == ["agent-room"]
    assert result.dispatch and result.cause == "agent_died"


def test_an_agent_without_a_heartbeat_is_trusted() -> None:
    result = assess_room([person(), agent()], {"agent-room": None}, RoomHistory(), NOW, WATCH)
    assert result.ghosts == () and not result.waiting


def test_a_room_without_a_person_needs_no_agent() -> None:
    result = assess_room([agent()], {"agent-room": 0.1}, RoomHistory(), NOW, WATCH)
    assert not result.waiting and not result.dispatch


def test_a_person_still_joining_is_not_yet_waiting() -> None:
    result = assess_room([person(state=State.JOINING)], {}, RoomHistory(), NOW, WATCH)
    assert not result.waiting


def test_a_waiting_room_that_gets_its_agent_forgets_its_dispatches() -> None:
    history = RoomHistory(waiting_since=NOW - 5, dispatches=(NOW - 2,))
    result = assess_room([person(), agent()], {}, history, NOW, WATCH)
    assert result.history == RoomHistory()


def test_an_agent_that_once_stalled_gets_its_own_longer_allowance() -> None:
    silent = {"agent-room": 2.0}
    assert assess_room([person(), agent()], silent, RoomHistory(), NOW, WATCH).ghosts
    allowance = {"agent-room": 2.4}
    result = assess_room([person(), agent()], silent, RoomHistory(), NOW, WATCH, allowance)
    assert result.ghosts == () and not result.waiting


def test_an_allowance_below_the_timeout_does_not_shorten_it() -> None:
    result = assess_room(
        [person(), agent()], {"agent-room": 1.2}, RoomHistory(), NOW, WATCH, {"agent-room": 0.5}
    )
    assert result.ghosts == ()


# --- the heartbeat tracker: change detection on the watchdog's clock ----------------------


def beats(tracker: HeartbeatTracker, times_and_values: list[tuple[float, str]]) -> float | None:
    silence = None
    for at, value in times_and_values:
        silence = tracker.silence("room", "agent", heartbeat_of({HEARTBEAT_ATTRIBUTE: value}), at)
    return silence


def test_silence_counts_from_the_last_change_seen_not_the_agents_clock() -> None:
    tracker = HeartbeatTracker()
    assert beats(tracker, [(0.0, "1:999"), (0.5, "2:1"), (1.5, "2:1")]) == 1.0
    assert tracker.silence("room", "other", heartbeat_of({}), 1.5) is None  # no heartbeat at all


def test_a_new_connection_under_the_same_identity_is_not_silent_for_the_old_ones_silence() -> None:
    tracker = HeartbeatTracker()
    value = heartbeat_of({HEARTBEAT_ATTRIBUTE: "7:1"})
    assert tracker.silence("room", "agent", value, 0.0, "PA_old") == 0.0
    assert tracker.silence("room", "agent", value, 10.0, "PA_old") == 10.0  # its node died
    # the agent joined again: its old heartbeat is still in its attributes
    assert tracker.silence("room", "agent", value, 10.1, "PA_new") == 0.0
    assert tracker.silence("room", "agent", value, 12.1, "PA_new") == 2.0


def test_a_steady_agent_keeps_the_base_timeout() -> None:
    tracker = HeartbeatTracker()
    beats(tracker, [(t * 0.5, str(t)) for t in range(10)])
    assert tracker.allowance("room", "agent") == HEARTBEAT_TIMEOUT


def test_a_stall_that_was_survived_doubles_into_the_allowance_up_to_a_cap() -> None:
    tracker = HeartbeatTracker()
    beats(tracker, [(0.0, "1"), (0.5, "2"), (2.7, "3")])  # a 2.2 s stall, then alive
    assert tracker.allowance("room", "agent") == pytest.approx(4.4)
    beats(tracker, [(6.0, "4")])  # a 3.3 s gap: 6.6 s, allowed at most MAX_ALLOWANCE
    assert tracker.allowance("room", "agent") == MAX_ALLOWANCE
    tracker.forget("room", "agent")
    assert tracker.allowance("room", "agent") == HEARTBEAT_TIMEOUT


# --- which agent a room gets again ------------------------------------------------------


def test_the_room_gets_again_the_agent_it_was_dispatched_by_name() -> None:
    assert room_agent(["letta-agent"], fallback="demo-agent") == "letta-agent"


def test_the_servers_own_unnamed_dispatch_is_not_the_rooms_agent() -> None:
    # LiveKit lists it first about half the time; it must never be sent again as ""
    assert room_agent(["", "letta-agent"], fallback="demo-agent") == "letta-agent"
    assert room_agent([""], fallback="demo-agent") == "demo-agent"
    assert room_agent([], fallback="demo-agent") == "demo-agent"


def test_an_automatic_dispatch_deployment_sends_the_unnamed_agent_again() -> None:
    # a room made by a plain join has only the server's unnamed dispatch: "" re-sends the
    # automatic-dispatch worker into it (measured); a named dispatch still wins
    assert room_agent([""], fallback="demo-agent", automatic=True) == ""
    assert room_agent([], fallback="demo-agent", automatic=True) == ""
    assert room_agent(["", "letta-agent"], fallback="demo-agent", automatic=True) == "letta-agent"


# --- one recovery at a time ------------------------------------------------------------


def test_no_second_dispatch_while_a_worker_says_an_agent_is_on_its_way() -> None:
    history = RoomHistory(waiting_since=NOW - 5)
    held = assess_room([person()], {}, history, NOW, WATCH, hold=True)
    assert held.waiting and not held.dispatch
    # but not for ever: a start that takes longer than start_wait has failed
    late = RoomHistory(waiting_since=NOW - WATCH.start_wait - 1)
    assert assess_room([person()], {}, late, NOW, WATCH, hold=True).dispatch


def test_a_two_second_stall_is_not_a_death_with_the_default_timeout() -> None:
    result = assess_room(
        [person(), agent()], {"agent-room": 2.0}, RoomHistory(), NOW, WatchPolicy()
    )
    assert result.ghosts == () and not result.dispatch


# --- people no node answers for (rules.reach) ------------------------------------------


def test_people_no_node_answers_for_are_doubted_then_ghosts() -> None:
    verdict, since = judge_reach({"PA_1": False}, {}, 100.0)
    assert (verdict, since) == (Reach.DOUBT, {"PA_1": 100.0})
    assert judge_reach({"PA_1": False}, since, 100.0 + GHOST_AFTER - 1)[0] is Reach.DOUBT
    assert judge_reach({"PA_1": False}, since, 100.0 + GHOST_AFTER)[0] is Reach.GHOSTS


def test_one_person_who_answers_or_a_server_that_cannot_say_keeps_the_room_served() -> None:
    since = {"PA_1": 0.0}
    assert judge_reach({"PA_1": False, "PA_2": True}, since, 100.0) == (Reach.REACHED, since)
    assert judge_reach({"PA_1": False, "PA_2": None}, since, 100.0)[0] is Reach.REACHED
    assert judge_reach({}, since, 100.0) == (Reach.REACHED, {})


def test_a_person_who_answers_again_starts_from_nothing() -> None:
    verdict, since = judge_reach({"PA_1": True}, {"PA_1": 0.0}, 100.0)
    assert (verdict, since) == (Reach.REACHED, {})
    assert judge_reach({"PA_1": False}, since, 101.0) == (Reach.DOUBT, {"PA_1": 101.0})


def test_a_room_of_dead_agents_no_node_answers_for_and_nobody_else_goes() -> None:
    assert only_dead_agents([("PA_a", True)], {"PA_a"})
    assert only_dead_agents([("PA_a", True), ("PA_b", True)], {"PA_a", "PA_b"})
    assert not only_dead_agents([("PA_a", True), ("PA_p", False)], {"PA_a"})  # a person
    assert not only_dead_agents([("PA_a", True), ("PA_b", True)], {"PA_a"})  # a live agent
    assert not only_dead_agents([("PA_p", False)], {"PA_p"})  # never a person, even so
    assert not only_dead_agents([], set())


# --- a dispatch already made (LiveKit's own, with the room) -----------------------------------


def test_a_dispatch_no_worker_has_answered_yet_is_on_its_way_until_livekits_deadline() -> None:
    # LiveKit lists a job only once a worker accepted it: until then the hook may still run
    answering = DispatchView(created_at=NOW - 1.0)
    assert dispatch_on_its_way([answering], NOW, WATCH)
    dropped = DispatchView(created_at=NOW - REQUEST_DEADLINE - 0.1)  # no worker took it
    assert not dispatch_on_its_way([dropped], NOW, WATCH)


def test_a_job_sent_to_a_worker_a_moment_ago_is_on_its_way_for_a_bounded_time() -> None:
    launching = DispatchView(created_at=NOW - 9, jobs=1, starting=((NOW - 2.0, "AW_1"),))
    assert dispatch_on_its_way([launching], NOW, WATCH)
    # LiveKit never changes a dead job's state: "running" long ago proves nothing
    stale = DispatchView(created_at=NOW - 60, jobs=1, starting=((NOW - WATCH.job_wait, "AW_1"),))
    assert not dispatch_on_its_way([stale], NOW, WATCH)
    ended = DispatchView(created_at=NOW - 2, jobs=1)  # its job failed or ended
    assert not dispatch_on_its_way([ended], NOW, WATCH)


def test_a_room_with_no_dispatch_or_an_unknown_time_has_nothing_on_its_way() -> None:
    assert not dispatch_on_its_way([], NOW, WATCH)
    assert not dispatch_on_its_way([DispatchView(created_at=0.0)], NOW, WATCH)


def test_a_job_of_a_worker_whose_link_closed_brings_no_agent() -> None:
    launching = DispatchView(created_at=NOW - 2, jobs=1, starting=((NOW - 1.0, "AW_1"),))
    assert not dispatch_on_its_way([launching], NOW, WATCH, gone={"AW_1"})
    assert dispatch_on_its_way([launching], NOW, WATCH, gone={"AW_2"})
