"""The recovery's decisions, with no server: whom a recovery removes, what counts as an
attempt, when a person is given up on (never while an agent could come), and what `up`
reads of a worker's registration."""

from __future__ import annotations

from dataclasses import replace

from room_recovery.rules.model import Kind, ParticipantView, State
from room_recovery.rules.recovery import DeadAgent, plan_replacement, verdict
from room_recovery.rules.watch import (
    REQUEST_DEADLINE,
    DispatchFate,
    RoomHistory,
    WatchPolicy,
    assess_room,
    dispatched,
)
from room_recovery.system.options import ExtraAgent
from room_recovery.system.registrations import name_problem, registered_name

NOW = 5_000.0
WALL = 1_700_000_000.0  # epoch seconds, for join times
WATCH = WatchPolicy(grace=3, dispatch_wait=4, max_dispatches=3)


def view(identity: str, kind: Kind, sid: str, joined: float = WALL - 60) -> ParticipantView:
    return ParticipantView(identity, kind, State.ACTIVE, joined, 0, sid=sid)


def person(identity: str = "user") -> ParticipantView:
    return view(identity, Kind.STANDARD, f"PA_{identity}")


def agent(
    identity: str = "agent-room", sid: str = "PA_old", joined: float = WALL - 60
) -> ParticipantView:
    return view(identity, Kind.AGENT, sid, joined)


# --- whom a recovery removes ---------------------------------------------------------------


def test_the_dead_agent_is_the_participant_with_its_sid() -> None:
    dead = DeadAgent("agent-room", sid="PA_old")
    assert verdict(agent(sid="PA_old"), dead) is True
    assert verdict(agent(sid="PA_new"), dead) is False  # its replacement, same identity


def test_without_a_sid_the_dead_agent_is_the_one_that_joined_before_the_death() -> None:
    dead = DeadAgent("agent-room", died_at=WALL)
    assert verdict(agent(joined=WALL - 5), dead) is True
    assert verdict(agent(joined=WALL + 0.4), dead) is False  # joined after: a replacement


def test_a_dead_jobs_agent_that_reconnected_under_a_new_sid_is_found_by_its_own_identity() -> None:
    # livekit-agents names a job's agent `agent-<job id>`: that identity is the job's alone.
    # A node restart had the agent reconnect under a new sid after its sid was reported.
    dead = DeadAgent.of_job("AJ_1", "agent-AJ_1", sid="PA_old", died_at=WALL)
    assert dead.own_identity
    assert verdict(agent("agent-AJ_1", sid="PA_new", joined=WALL - 5), dead) is True
    assert verdict(agent("agent-AJ_1", sid="PA_new", joined=WALL + 0.4), dead) is False
    # an identity shared by the room's agents (`agent-<room>`): only its sid proves it
    shared = DeadAgent.of_job("AJ_1", "agent-room", sid="PA_old", died_at=WALL)
    assert not shared.own_identity
    assert verdict(agent("agent-room", sid="PA_new", joined=WALL - 5), shared) is False


def test_a_person_is_never_the_dead_agent_even_under_its_identity() -> None:
    dead = DeadAgent("user", sid="PA_user")
    assert verdict(person("user"), dead) is False
    plan = plan_replacement([person("user")], dead)
    assert plan.remove is None


def test_no_proof_removes_nothing_and_blocks_nothing() -> None:
    plan = plan_replacement([person(), agent()], DeadAgent("agent-room"))
    assert plan.remove is None and plan.dispatch and plan.serving is None


def test_the_dead_agent_is_removed_and_replaced_where_a_person_waits() -> None:
    plan = plan_replacement([person(), agent()], DeadAgent("agent-room", died_at=WALL))
    assert plan.remove == agent() and plan.dispatch


def test_a_replacement_already_there_means_no_second_dispatch() -> None:
    room = [person(), agent(sid="PA_old"), agent(sid="PA_new", joined=WALL + 1)]
    plan = plan_replacement(room, DeadAgent("agent-room", died_at=WALL))
    assert plan.remove is not None and plan.remove.sid == "PA_old"
    assert not plan.dispatch and plan.serving == "agent-room"


def test_with_nobody_left_the_dead_agent_goes_and_none_comes() -> None:
    plan = plan_replacement([agent()], DeadAgent("agent-room", died_at=WALL))
    assert plan.remove is not None and not plan.dispatch


# --- what counts as an attempt --------------------------------------------------------------


def waiting_after_a_dispatch(sent: float, *, failed: bool = False) -> RoomHistory:
    attempts = (sent,) if not failed else (sent - 20, sent - 10, sent)
    return RoomHistory(NOW - 30, attempts, failed, pending="AD_1", last_dispatch=sent)


def test_a_young_dispatch_is_left_to_arrive_and_its_fate_not_asked() -> None:
    result = assess_room([person()], {}, waiting_after_a_dispatch(NOW - 1), NOW, WATCH)
    assert not result.dispatch and not result.ask_fate


def test_after_the_request_deadline_the_watchdog_asks_what_became_of_it() -> None:
    history = waiting_after_a_dispatch(NOW - 4.5)
    assert assess_room([person()], {}, history, NOW, WATCH).ask_fate
    short = replace(WATCH, dispatch_wait=1.0)  # never sooner than LiveKit's own deadline
    early = waiting_after_a_dispatch(NOW - (REQUEST_DEADLINE - 0.5))
    assert not assess_room([person()], {}, early, NOW, short).ask_fate


def test_a_dispatch_no_worker_took_is_no_attempt_and_is_made_again_at_once() -> None:
    history = waiting_after_a_dispatch(NOW - 4.5)
    result = assess_room([person()], {}, history, NOW, WATCH, fate=DispatchFate(taken=False))
    assert result.dropped == "AD_1" and result.dispatch
    assert result.history.dispatches == (NOW,)  # the dropped one is gone, the new one counts


def test_a_person_is_never_marked_failed_for_dispatches_no_worker_took() -> None:
    history = RoomHistory(NOW - 60)
    for step in range(10):
        now = NOW + 5 * step
        result = assess_room([person()], {}, history, now, WATCH)
        if result.ask_fate:
            result = assess_room(
                [person()], {}, history, now, WATCH, fate=DispatchFate(taken=False)
            )
        assert not result.mark_failed and not result.history.failed
        history = dispatched(result.history, f"AD_{step}") if result.dispatch else result.history
    assert len(history.dispatches) <= 1


def test_a_job_that_is_still_starting_is_waited_for_not_doubled() -> None:
    history = waiting_after_a_dispatch(NOW - 5)
    starting = DispatchFate(taken=True, starting=True)
    result = assess_room([person()], {}, history, NOW, WATCH, fate=starting)
    assert not result.dispatch and result.history.asked_at == NOW
    again = assess_room([person()], {}, result.history, NOW + 0.5, WATCH)
    assert not again.ask_fate  # asked a moment ago
    late = assess_room([person()], {}, history, NOW + 11, WATCH, fate=starting)
    assert late.dispatch  # past start_wait: that agent is not coming


def test_taken_dispatches_count_and_a_fruitless_third_marks_the_room_failed() -> None:
    history = RoomHistory(NOW - 30, (NOW - 13, NOW - 9, NOW - 5), pending="AD_3")
    taken = DispatchFate(taken=True)
    result = assess_room([person()], {}, history, NOW, WATCH, fate=taken)
    assert result.mark_failed and result.history.failed


def test_a_failed_room_with_a_person_still_there_gets_a_dispatch_now_and_then() -> None:
    failed = RoomHistory(NOW - 60, (NOW - 50, NOW - 45, NOW - 40), True, last_dispatch=NOW - 20)
    assert not assess_room([person()], {}, failed, NOW, WATCH).dispatch  # 20 s: not yet
    later = assess_room([person()], {}, failed, NOW - 20 + WATCH.failed_retry, WATCH)
    assert later.dispatch and later.history.failed  # still failed: the page has moved on


def test_a_worker_that_registers_gives_a_failed_room_a_fresh_round_at_once() -> None:
    failed = RoomHistory(NOW - 60, (NOW - 50, NOW - 45, NOW - 40), True, last_dispatch=NOW - 40)
    result = assess_room([person()], {}, failed, NOW, WATCH, worker_ready=True)
    assert result.dispatch and not result.history.failed
    assert result.history.dispatches == (NOW,)


def test_a_worker_that_registers_gets_a_waiting_dispatch_it_could_not_have_taken() -> None:
    history = waiting_after_a_dispatch(NOW - 1)  # made before the worker was there
    asks = assess_room([person()], {}, history, NOW, WATCH, worker_ready=True)
    assert asks.ask_fate
    result = assess_room(
        [person()], {}, history, NOW, WATCH, fate=DispatchFate(taken=False), worker_ready=True
    )
    assert result.dropped == "AD_1" and result.dispatch


def test_an_agent_that_arrives_ends_the_wait_and_forgets_the_failure() -> None:
    failed = RoomHistory(NOW - 60, (NOW - 50,), True, last_dispatch=NOW - 50)
    result = assess_room([person(), agent()], {}, failed, NOW, WATCH)
    assert not result.waiting and result.history == RoomHistory()


# --- what `up` reads of a worker's registration -------------------------------------------

START_LINE = (
    '{"message": "registered worker", "level": "INFO", "name": "livekit.agents", '
    '"agent_name": "", "id": "AW_x"}'
)
DEV_LINE = 'INFO livekit.agents registered worker {"agent_name": "letta", "id": "AW_x"}'


def test_the_registered_name_is_read_from_either_log_format() -> None:
    assert registered_name(START_LINE) == ""
    assert registered_name(DEV_LINE) == "letta"
    assert registered_name("registered worker") is None


def test_an_automatic_worker_given_a_name_is_told_to_write_auto() -> None:
    agent_command = ExtraAgent("letta", ("python", "letta_voice_agent.py", "start"))
    problem = name_problem(agent_command, "")
    assert problem is not None
    assert "--agent-command 'auto:letta=python letta_voice_agent.py start'" in problem
    automatic = ExtraAgent("letta", ("python", "letta_voice_agent.py", "start"), automatic=True)
    assert name_problem(automatic, "") is None
    assert name_problem(agent_command, "letta") is None
    other = name_problem(automatic, "letta-agent")
    assert other is not None and "'letta-agent=python letta_voice_agent.py start'" in other
