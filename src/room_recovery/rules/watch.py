"""The watchdog's decision for one room: remove which ghosts, dispatch an agent, or give up.

`assess_room` is a pure function of what the room holds now, how long each agent's
heartbeat has been silent, and what the watchdog remembers of the room (`RoomHistory`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .liveness import HEARTBEAT_TIMEOUT
from .model import Kind, ParticipantView, Removal, is_person


@dataclass(frozen=True)
class WatchPolicy:
    """When the watchdog acts on a room, in seconds."""

    grace: float = 3.0  # a person may wait this long for the first agent before we act
    dispatch_wait: float = 4.0  # how long a dispatched agent gets to arrive
    max_dispatches: int = 3  # then the room is marked failed, so the page gives up early
    heartbeat_timeout: float = (
        HEARTBEAT_TIMEOUT  # an agent whose heartbeat is silent this long is a ghost
    )
    start_wait: float = 15.0  # an agent its worker says is starting gets this long to join


@dataclass(frozen=True)
class RoomHistory:
    """What the watchdog remembers of one room between looks."""

    waiting_since: float | None = None
    dispatches: tuple[float, ...] = ()
    failed: bool = False
    agent_died: bool = False  # the wait began when a serving agent's heartbeat stopped


@dataclass(frozen=True)
class RoomAssessment:
    """What to do about one room now, and what to remember of it."""

    waiting: bool
    ghosts: tuple[Removal, ...]
    dispatch: bool
    mark_failed: bool
    history: RoomHistory
    cause: str | None = None  # why an agent is dispatched: "agent_missing" or "agent_died"


def room_agent(dispatched_names: Sequence[str], fallback: str, automatic: bool = False) -> str:
    """The agent to send into a room again: the first it was dispatched by name, else "" when
    an automatic-dispatch worker serves the deployment (`automatic`), else `fallback`.

    A room created without a named dispatch carries the server's own automatic dispatch,
    whose agent name is empty. For a named agent that is not the room's agent: a dispatch
    to "" reaches no named worker and is dropped. For an automatic-dispatch worker it is:
    a dispatch to "" sends it into the existing room again (measured).
    """
    named = next((name for name in dispatched_names if name), None)
    if named is not None:
        return named
    return "" if automatic else fallback


def assess_room(
    participants: Sequence[ParticipantView],
    heartbeat_silence: dict[str, float | None],
    history: RoomHistory,
    now: float,
    watch: WatchPolicy,
    heartbeat_allowance: Mapping[str, float] | None = None,
    hold: bool = False,
) -> RoomAssessment:
    """Decide, for a room, which ghost agents to remove and whether to dispatch an agent.

    `heartbeat_silence` maps an agent's identity to the seconds its heartbeat has been
    silent (None when it sends none: then the server's view of it is trusted). An agent is
    a ghost when that exceeds `watch.heartbeat_timeout`, or its own, longer allowance in
    `heartbeat_allowance` (learned from its rhythm, see `liveness.HeartbeatTracker`).

    `hold`: a dispatch now would make two (a linked worker reported a job for this room
    whose agent has not joined yet) or be dropped (no linked worker serves the agent now).
    No agent is dispatched then, for up to `watch.start_wait` after the wait began.
    """
    allowance = heartbeat_allowance or {}
    agents = [p for p in participants if p.kind is Kind.AGENT]
    ghosts = tuple(
        Removal(a.identity, f"heartbeat silent for {silence:.1f}s")
        for a in agents
        if (silence := heartbeat_silence.get(a.identity)) is not None
        and silence > max(watch.heartbeat_timeout, allowance.get(a.identity, 0.0))
    )
    ghost_ids = {g.identity for g in ghosts}
    live_agents = [a for a in agents if a.identity not in ghost_ids]
    people = [p for p in participants if is_person(p)]
    if not people or live_agents:
        return RoomAssessment(False, ghosts, False, False, RoomHistory(failed=history.failed))

    agent_died = history.agent_died or bool(ghosts)
    since = history.waiting_since if history.waiting_since is not None else now
    waiting = RoomHistory(since, history.dispatches, history.failed, agent_died)
    cause = "agent_died" if agent_died else "agent_missing"
    nothing = RoomAssessment(True, ghosts, False, False, waiting, cause)
    if history.failed:
        return nothing
    # A person whose agent died has already waited: act at once. A new arrival gets grace.
    if not agent_died and now - since < watch.grace:
        return nothing
    if history.dispatches and now - history.dispatches[-1] < watch.dispatch_wait:
        return nothing
    if hold and now - since < watch.start_wait:
        return nothing
    if len(history.dispatches) >= watch.max_dispatches:
        failed = RoomHistory(since, history.dispatches, True, agent_died)
        return RoomAssessment(True, ghosts, False, True, failed, cause)
    dispatched = RoomHistory(since, (*history.dispatches, now), False, agent_died)
    return RoomAssessment(True, ghosts, True, False, dispatched, cause)
