"""The staleness rule, both sides of it, with no server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from room_recovery.rules.model import Kind, ParticipantView, RoomView, State, room_name_problem
from room_recovery.rules.restart import RestartPolicy, recent_crashes, restart_delay, should_give_up
from room_recovery.rules.retry import retry_delay
from room_recovery.rules.staleness import (
    StalePolicy,
    doubted_agents,
    is_stale_room,
    prejoin_removals,
    stale_removals,
)

NOW = 1_000_000.0
POLICY = StalePolicy(stale_timeout=300, agent_alone_grace=30)


def person(
    identity: str = "user",
    age: float = 10,
    state: State = State.ACTIVE,
    tracks: int = 1,
    kind: Kind = Kind.STANDARD,
) -> ParticipantView:
    return ParticipantView(identity, kind, state, NOW - age, tracks)


def agent(identity: str = "agent", age: float = 10, tracks: int = 1) -> ParticipantView:
    return person(identity, age, tracks=tracks, kind=Kind.AGENT)


def test_an_empty_room_older_than_the_timeout_is_stale() -> None:
    assert is_stale_room(RoomView("r", NOW - 301, 0), NOW, POLICY)


def test_an_empty_room_younger_than_the_timeout_stays() -> None:
    assert not is_stale_room(RoomView("r", NOW - 299, 0), NOW, POLICY)


def test_an_old_room_with_participants_is_not_a_stale_room() -> None:
    assert not is_stale_room(RoomView("r", NOW - 10_000, 1), NOW, POLICY)


def test_a_long_call_with_a_publishing_person_and_agent_stays() -> None:
    room = [person(age=3600), agent(age=3600)]
    assert stale_removals(room, NOW, POLICY) == []


def test_a_participant_that_never_became_active_is_stale_after_the_timeout() -> None:
    room = [person("ghost", age=301, state=State.JOINING, tracks=0), person("user")]
    assert [r.identity for r in stale_removals(room, NOW, POLICY)] == ["ghost"]


def test_a_participant_not_yet_active_within_the_timeout_stays() -> None:
    room = [person("slow", age=299, state=State.JOINING, tracks=0)]
    assert stale_removals(room, NOW, POLICY) == []


def test_publishing_nothing_is_no_sign_of_death_a_listener_stays() -> None:
    room = [person("listener", age=3600, tracks=0), agent(age=3600, tracks=0), person("user")]
    assert stale_removals(room, NOW, POLICY) == []


def test_removing_silent_participants_is_an_explicit_opt_in() -> None:
    opted_in = replace(POLICY, remove_silent=True)
    removals = stale_removals([person("mute", age=301, tracks=0), agent()], NOW, opted_in)
    assert [(r.identity, r.reason) for r in removals] == [("mute", "publishes nothing")]


def test_an_egress_recorder_that_publishes_nothing_stays() -> None:
    room = [person("rec", age=3600, tracks=0, kind=Kind.EGRESS), person("user"), agent()]
    assert stale_removals(room, NOW, POLICY) == []


def test_an_agent_alone_past_its_grace_is_stale() -> None:
    removals = stale_removals([agent(age=31)], NOW, POLICY)
    assert [(r.identity, r.reason) for r in removals] == [("agent", "agent left alone in the room")]


def test_an_agent_alone_within_its_grace_stays() -> None:
    assert stale_removals([agent(age=29)], NOW, POLICY) == []


def test_two_agents_without_a_person_are_both_stale() -> None:
    removals = stale_removals([agent("a1", age=60), agent("a2", age=60)], NOW, POLICY)
    assert {r.identity for r in removals} == {"a1", "a2"}


def test_an_agent_with_a_sip_caller_is_not_alone() -> None:
    room = [agent(age=600), person("caller", kind=Kind.SIP)]
    assert stale_removals(room, NOW, POLICY) == []


def test_keep_protects_a_stale_looking_participant() -> None:
    room = [person("user", age=301, state=State.JOINING, tracks=0)]
    assert stale_removals(room, NOW, POLICY, keep={"user"}) == []


def test_prejoin_removes_an_agent_left_over_from_an_earlier_session() -> None:
    room = [agent("old-agent", age=2), person("user", age=1)]
    removals = prejoin_removals(room, NOW, POLICY, keep={"user"})
    assert [r.identity for r in removals] == ["old-agent"]
    assert "earlier session" in removals[0].reason


def test_prejoin_never_removes_a_live_agent_serving_the_person() -> None:
    # it joined after the person and may be alive: a second job must not cut it off
    serving = ParticipantView(
        "agent-1", Kind.AGENT, State.ACTIVE, NOW - 5, 1, heartbeat_at=NOW - 0.4
    )
    silent = ParticipantView("agent-2", Kind.AGENT, State.ACTIVE, NOW - 5, 1)
    room = [person("user", age=10), serving, silent]
    assert prejoin_removals(room, NOW, POLICY, keep={"user"}) == []


def test_prejoin_removes_an_agent_shown_dead_even_when_it_came_for_the_person() -> None:
    dead = ParticipantView("agent-1", Kind.AGENT, State.ACTIVE, NOW - 5, 1, heartbeat_at=NOW - 4)
    gone = ParticipantView("agent-2", Kind.AGENT, State.DISCONNECTED, NOW - 5, 1)
    removals = prejoin_removals([person("user", age=10), dead, gone], NOW, POLICY, keep={"user"})
    assert sorted(r.identity for r in removals) == ["agent-1", "agent-2"]


def test_prejoin_keeps_an_agent_its_worker_vouches_for_however_silent_or_early() -> None:
    # a Redis outage froze its heartbeat; the person reconnected after it joined
    frozen = ParticipantView(
        "agent-1", Kind.AGENT, State.ACTIVE, NOW - 60, 1, heartbeat_at=NOW - 12
    )
    room = [frozen, person("user", age=5)]
    assert [r.identity for r in prejoin_removals(room, NOW, POLICY, keep={"user"})] == ["agent-1"]
    assert prejoin_removals(room, NOW, POLICY, keep={"user"}, alive={"agent-1"}) == []


def test_prejoin_removes_a_vouched_agent_the_server_shows_gone() -> None:
    gone = ParticipantView("agent-1", Kind.AGENT, State.DISCONNECTED, NOW - 5, 1)
    removals = prejoin_removals([gone, person("user")], NOW, POLICY, alive={"agent-1"})
    assert [r.reason for r in removals] == ["agent disconnected"]


def test_only_agents_removed_on_our_own_judgement_are_doubted() -> None:
    silent = ParticipantView("agent-1", Kind.AGENT, State.ACTIVE, NOW - 5, 1, heartbeat_at=NOW - 4)
    gone = ParticipantView("agent-2", Kind.AGENT, State.DISCONNECTED, NOW - 5, 1)
    stuck = person("old-user", age=900, state=State.JOINING, tracks=0)
    room = [silent, gone, stuck, person("user", age=1)]
    removals = prejoin_removals(room, NOW, POLICY, keep={"user"})
    assert sorted(r.identity for r in removals) == ["agent-1", "agent-2", "old-user"]
    assert doubted_agents(removals, room) == {"agent-1"}


def test_prejoin_keeps_the_person_who_triggered_the_job_even_when_not_yet_active() -> None:
    room = [person("user", age=0.5, state=State.JOINING, tracks=0)]
    assert prejoin_removals(room, NOW, POLICY, keep={"user"}) == []


def test_prejoin_keeps_a_live_person_even_without_keep() -> None:
    assert prejoin_removals([person("user", age=1)], NOW, POLICY) == []


def test_prejoin_removes_a_person_who_never_connected_and_is_not_kept() -> None:
    room = [person("old-user", age=900, state=State.JOINING, tracks=0), person("user", age=1)]
    removals = prejoin_removals(room, NOW, POLICY, keep={"user"})
    assert [r.identity for r in removals] == ["old-user"]


def test_prejoin_keeps_a_listen_only_person_who_publishes_nothing() -> None:
    room = [person("listener", age=900, tracks=0), person("user", age=1)]
    assert prejoin_removals(room, NOW, POLICY, keep={"user"}) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 257, "é" * 129])
def test_room_names_livekit_refuses_are_named(name: str) -> None:
    assert room_name_problem(name) is not None


@pytest.mark.parametrize("name", ["a", "voice-agent-room", "x" * 256, "salle-é"])
def test_room_names_livekit_accepts_pass(name: str) -> None:
    assert room_name_problem(name) is None


def test_retry_delays_are_the_specs_one_two_three_seconds() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]


def test_retry_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0)


RESTART = RestartPolicy(first_delay=1, max_delay=30, crash_limit=5, window=120)


def test_restart_delays_double_from_one_second_up_to_the_cap() -> None:
    assert [restart_delay(n, RESTART) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_part_that_keeps_dying_is_given_up_on() -> None:
    crashes = [NOW - 100, NOW - 60, NOW - 30, NOW - 10, NOW - 1]
    assert should_give_up(crashes, NOW, RESTART)


def test_old_crashes_do_not_count_against_a_part() -> None:
    crashes = [NOW - 1000, NOW - 900, NOW - 800, NOW - 700, NOW - 1]
    assert recent_crashes(crashes, NOW, RESTART) == 1
    assert not should_give_up(crashes, NOW, RESTART)
