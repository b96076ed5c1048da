"""A worker near LiveKit's load limit ends the jobs that serve nobody, and no other.

Seen under chaos with the guide's worker (`bench/chaos.py`): after a node died, the agents
of its rooms reconnected, alone, for up to a minute; their jobs filled the worker, LiveKit
dropped new people's dispatches ("no servers available") and they waited for the
watchdog. The rule is `rules.shedding`; the worker's side is `WorkerMonitor.shed_orphans`;
the guide's worker on a real server is in `test_guide_worker.py`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from room_recovery.agent import monitor as monitor_module
from room_recovery.agent import shedding as shedding_module
from room_recovery.agent.monitor import WorkerMonitor
from room_recovery.protocol import links
from room_recovery.rules.model import Kind, ParticipantView, State
from room_recovery.rules.reach import GHOST_AFTER
from room_recovery.rules.shedding import (
    SHED_CONFIRM,
    SHED_LOAD,
    SHED_MIN_AGE,
    audits,
    judge_vacancy,
)

NOW = 1000.0


def someone(identity: str, kind: Kind) -> ParticipantView:
    return ParticipantView(identity, kind, State.ACTIVE, NOW - 30, 1)


AGENT = someone("agent-AJ_1", Kind.AGENT)
PERSON = someone("user-1", Kind.STANDARD)


# --- the rule -------------------------------------------------------------------------------


def test_only_a_worker_near_livekits_limit_looks_for_jobs_that_serve_nobody() -> None:
    assert not audits(None)  # a load it cannot read: it never looks
    assert not audits(SHED_LOAD - 0.01)
    assert audits(SHED_LOAD)
    assert audits(0.7)  # LiveKit's target: it sends this worker nothing


def test_a_job_ends_only_after_its_room_is_seen_without_a_person_for_the_confirm_time() -> None:
    since, end = judge_vacancy(None, [AGENT], NOW)
    assert (since, end) == (NOW, False)  # first look: only its own agent there
    assert judge_vacancy(since, [AGENT], NOW + SHED_CONFIRM - 0.1) == (NOW, False)
    assert judge_vacancy(since, [], NOW + SHED_CONFIRM) == (NOW, True)  # the room is gone too


def test_a_person_back_in_the_room_starts_the_wait_again() -> None:
    assert judge_vacancy(NOW, [AGENT, PERSON], NOW + SHED_CONFIRM) == (None, False)


@pytest.mark.parametrize("kind", [Kind.STANDARD, Kind.SIP, Kind.EGRESS, Kind.INGRESS])
def test_a_job_whose_room_holds_anyone_but_agents_is_never_ended(kind: Kind) -> None:
    assert judge_vacancy(NOW - 60, [AGENT, someone("x", kind)], NOW) == (None, False)


def test_a_room_that_cannot_be_listed_is_never_judged() -> None:
    assert judge_vacancy(NOW - 60, None, NOW) == (NOW - 60, False)
    assert judge_vacancy(None, None, NOW) == (None, False)


# --- the worker -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Process:
    def __init__(self, job_id: str, room: str, exitcode: int = 0) -> None:
        self.running_job = SimpleNamespace(
            job=SimpleNamespace(
                id=job_id, room=SimpleNamespace(name=room), agent_name="", metadata=""
            ),
            accept_arguments=SimpleNamespace(identity=f"agent-{job_id}"),
        )
        self.exitcode = exitcode
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class Pool:
    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes

    def on(self, *_: object) -> None:
        return None

    def get_by_job_id(self, job_id: str) -> Process | None:
        return next((p for p in self.processes if p.running_job.job.id == job_id), None)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    clocks = SimpleNamespace(monotonic=fake, time=time.time)  # the worker's clock only
    monkeypatch.setattr(monitor_module, "time", clocks)
    monkeypatch.setattr(shedding_module, "time", clocks)
    return fake


def watching(
    rooms: dict[str, list[ParticipantView]],
    load: float,
    monkeypatch: pytest.MonkeyPatch,
    reached: dict[str, bool | None] | None = None,
) -> tuple[WorkerMonitor, dict[str, Process], list[str]]:
    """A worker at `load` with one job per room of `rooms` (room -> who LiveKit lists);
    `reached`: whether a node answers for each person (identity), True if not given."""
    processes = {room: Process(f"AJ_{room}", room) for room in rooms}
    server = SimpleNamespace(
        active_jobs=[],
        on=lambda *_: None,
        _worker_load=load,
        _proc_pool=Pool([*processes.values()]),
    )
    worker = WorkerMonitor(server, watchdog="")
    listed: list[str] = []

    async def listing(room: str) -> list[ParticipantView] | None:
        listed.append(room)
        return rooms[room]

    async def reaches(room: str, identity: str) -> bool | None:
        listed.append(f"reach {identity}")
        return (reached or {}).get(identity, True)

    monkeypatch.setattr(worker.looks, "listing", listing)
    monkeypatch.setattr(worker.looks, "reaches", reaches)
    monkeypatch.setattr(monitor_module, "announcing", lambda: False)  # no LiveKit here
    for proc in processes.values():
        worker._launched(proc)
    return worker, processes, listed


async def settle(worker: WorkerMonitor) -> None:
    for task in list(worker._tasks):
        await task


async def test_below_the_limit_the_worker_asks_livekit_nothing(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, processes, listed = watching({"empty": [AGENT]}, SHED_LOAD - 0.1, monkeypatch)
    clock.now += SHED_MIN_AGE + SHED_CONFIRM + 10
    assert await worker.shed_orphans() == []
    assert listed == []  # cost follows trouble: no listing at all
    assert not processes["empty"].closed


async def test_near_the_limit_the_job_of_an_empty_room_ends_and_the_served_one_stays(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rooms = {"empty": [AGENT], "served": [AGENT, PERSON]}
    worker, processes, _ = watching(rooms, 0.7, monkeypatch)
    clock.now += SHED_MIN_AGE
    assert await worker.shed_orphans() == []  # first look: empty, not yet for long
    clock.now += SHED_CONFIRM
    assert await worker.shed_orphans() == ["AJ_empty"]
    await settle(worker)
    assert processes["empty"].closed
    assert not processes["served"].closed  # a person is there: never ended


async def test_the_job_of_a_room_whose_people_are_all_ghosts_of_a_dead_node_ends(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a node's death leaves in Redis: the person and the agent listed ACTIVE, no node
    # answering for the person, the job's agent reconnecting alone for minutes
    ghost, person = someone("user-gone", Kind.STANDARD), someone("user-here", Kind.STANDARD)
    rooms = {"dead-node": [AGENT, ghost], "alive": [AGENT, person]}
    reached = {"user-gone": False, "user-here": True, "agent-AJ_dead-node": False}
    worker, processes, asked = watching(rooms, 0.7, monkeypatch, reached)
    clock.now += SHED_MIN_AGE
    assert await worker.shed_orphans() == []  # one unanswered ask is doubt, not death
    clock.now += GHOST_AFTER - 1
    assert await worker.shed_orphans() == []
    clock.now += 1
    assert await worker.shed_orphans() == ["AJ_dead-node"]
    await settle(worker)
    assert processes["dead-node"].closed and not processes["alive"].closed
    assert "reach user-here" not in asked  # its agent's node answered: nobody else asked


async def test_a_person_the_server_cannot_say_about_keeps_the_job(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rooms = {"unsure": [AGENT, someone("user-1", Kind.STANDARD)]}
    reached = {"user-1": None, "agent-AJ_unsure": False}
    worker, processes, _ = watching(rooms, 0.7, monkeypatch, reached)
    for _ in range(3):
        clock.now += GHOST_AFTER
        assert await worker.shed_orphans() == []
    assert not processes["unsure"].closed


async def test_a_young_job_is_not_looked_at(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    worker, _, listed = watching({"young": []}, 0.7, monkeypatch)
    clock.now += SHED_MIN_AGE - 1
    assert await worker.shed_orphans() == []
    assert listed == []


async def test_a_job_the_worker_ended_is_no_death_even_when_its_process_was_killed(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, processes, _ = watching({"empty": [AGENT]}, 0.7, monkeypatch)
    sent: list[str] = []
    replaced: list[Any] = []
    monkeypatch.setattr(worker, "_send", sent.append)
    monkeypatch.setattr(worker, "_replace", lambda *args: replaced.append(args))
    clock.now += SHED_MIN_AGE
    await worker.shed_orphans()
    clock.now += SHED_CONFIRM
    await worker.shed_orphans()
    await settle(worker)
    proc = processes["empty"]
    proc.exitcode = -9  # livekit-agents kills a job that does not close in time
    worker._closed(proc)
    assert replaced == []  # no replacement for an agent that left an empty room
    ended = links.decode(sent[-1])
    assert ended["type"] == links.JOB_ENDED and ended["died"] is False  # the watchdog waits
