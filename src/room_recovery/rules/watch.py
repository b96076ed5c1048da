"""The watchdog's decision for one room: remove which ghosts, dispatch an agent, or give up.

`assess_room` is a pure function of what the room holds now, how long each agent's
heartbeat has been silent, what the watchdog remembers of the room (`RoomHistory`), and,
when it asks for it (`ask_fate`), what became of its last dispatch (`DispatchFate`).

A dispatch is an attempt only if a worker took it. LiveKit drops a dispatch for which no
worker is registered, silently and for good (livekit/livekit#4060); by `dispatch_wait`
(longer than LiveKit's 3 s job-request deadline) a dispatch that no worker took never will.
Such a dispatch does not count, and the agent is dispatched again at once: a person who
waits is retried every `dispatch_wait` for as long as they wait, so an agent comes as soon
as a worker is back. A room is marked failed only after `max_dispatches` dispatches that
workers took and whose agents never came; even then, a person still there gets another
dispatch every `failed_retry` seconds, and at once when a worker (re)registers.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from .liveness import HEARTBEAT_TIMEOUT
from .model import Kind, ParticipantView, Removal, is_person

# LiveKit's deadline for a worker's answer to a job request is 3 s (psrpc's default): a
# dispatch with no job after this long was taken by no worker, and never will be.
REQUEST_DEADLINE = 3.5


@dataclass(frozen=True)
class WatchPolicy:
    """When the watchdog acts on a room, in seconds."""

    grace: float = 3.0  # a person may wait this long for the first agent before we act
    dispatch_wait: float = 4.0  # how long a dispatched agent gets to arrive (> LiveKit's 3 s)
    max_dispatches: int = 3  # taken but fruitless; then the room is marked failed
    heartbeat_timeout: float = (
        HEARTBEAT_TIMEOUT  # an agent whose heartbeat is silent this long is a ghost
    )
    start_wait: float = 15.0  # an agent its worker says is starting gets this long to join
    fate_every: float = 1.0  # seconds between two looks at a starting job's dispatch
    failed_retry: float = 30.0  # a person still in a failed room gets a dispatch this often
    job_wait: float = 8.0  # a job sent to a worker (hook, launch), its agent not in, gets this long


@dataclass(frozen=True)
class RoomHistory:
    """What the watchdog remembers of one room between looks."""

    waiting_since: float | None = None
    dispatches: tuple[float, ...] = ()  # attempts: taken by a worker, or not yet known
    failed: bool = False
    agent_died: bool = False  # the wait began when a serving agent's heartbeat stopped
    pending: str | None = None  # the last dispatch's id, until what became of it is known
    asked_at: float | None = None  # when that was last asked
    last_dispatch: float | None = None  # the last dispatch, counted or not (default: the
    # last counted one)

    @property
    def last_sent(self) -> float | None:
        """When the last dispatch was made, counted or not."""
        if self.last_dispatch is not None:
            return self.last_dispatch
        return self.dispatches[-1] if self.dispatches else None


@dataclass(frozen=True)
class DispatchFate:
    """What became of a dispatch, as LiveKit's dispatch state says: `taken` by a worker
    (a job exists), and whether that job is still `starting` (pending or running)."""

    taken: bool
    starting: bool = False


@dataclass(frozen=True)
class DispatchView:
    """One of a room's dispatches as LiveKit's state lists it: when it was made, how many
    jobs workers took for it, and each job still starting (pending or running): when it
    was sent to its worker (LiveKit's `started_at`) and which worker; wall-clock seconds."""

    created_at: float
    jobs: int = 0
    starting: tuple[tuple[float, str], ...] = ()  # (sent at, worker id) per starting job


def dispatch_on_its_way(
    dispatches: Sequence[DispatchView],
    wall_now: float,
    watch: WatchPolicy,
    gone: Collection[str] = (),
) -> bool:
    """Whether an agent may still come from a dispatch already made (LiveKit's own, made
    with the room, or anyone's), so that one more would make two agents.

    LiveKit lists a dispatch's job only once a worker has accepted it: a dispatch made less
    than `REQUEST_DEADLINE` ago with no job may still be in a worker's request hook (up to
    3 s). A job sent to its worker less than `watch.job_wait` ago and still starting may be
    launching its agent, unless its worker is `gone` (its link closed: the kernel's word).
    Neither is proof of life (a job's state never changes when it dies): both only ever
    hold a dispatch back for a bounded time.
    """
    for dispatch in dispatches:
        if not dispatch.jobs and wall_now - dispatch.created_at < REQUEST_DEADLINE:
            return True
        for since, worker in dispatch.starting:
            if wall_now - since < watch.job_wait and worker not in gone:
                return True
    return False


@dataclass(frozen=True)
class RoomAssessment:
    """What to do about one room now, and what to remember of it."""

    waiting: bool
    ghosts: tuple[Removal, ...]
    dispatch: bool
    mark_failed: bool
    history: RoomHistory
    cause: str | None = None  # why an agent is dispatched: "agent_missing" or "agent_died"
    ask_fate: bool = False  # decide again once `DispatchFate` of `history.pending` is known
    dropped: str | None = None  # the id of a dispatch found dropped (delete it)


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


def waited_before(participants: Sequence[ParticipantView], wall_now: float) -> float:
    """Seconds since the latest person joined (LiveKit's `joined_at`), 0 when unknown.

    A watchdog that hears of a room late (no webhook reached it: it learned of the room
    from its listing, seconds on) still knows how long the person has been waiting there.
    The latest join, not the first: of several people it is the shortest wait, the one
    that cannot be mistaken for an agent already on its way."""
    joins = [p.joined_at for p in participants if is_person(p) and p.joined_at > 0]
    return max(0.0, wall_now - max(joins)) if joins else 0.0


def assess_room(
    participants: Sequence[ParticipantView],
    heartbeat_silence: dict[str, float | None],
    history: RoomHistory,
    now: float,
    watch: WatchPolicy,
    heartbeat_allowance: Mapping[str, float] | None = None,
    hold: bool = False,
    *,
    fate: DispatchFate | None = None,
    worker_ready: bool = False,
    waited: float = 0.0,
) -> RoomAssessment:
    """Decide, for a room, which ghost agents to remove and whether to dispatch an agent.

    `heartbeat_silence` maps an agent's identity to the seconds its heartbeat has been
    silent (None when it sends none: then the server's view of it is trusted). An agent is
    a ghost when that exceeds `watch.heartbeat_timeout`, or its own, longer allowance in
    `heartbeat_allowance` (learned from its rhythm, see `liveness.HeartbeatTracker`).

    `hold`: a linked worker reported a job for this room whose agent has not joined yet: a
    dispatch now would make two. None is made for up to `watch.start_wait` after the wait.

    `fate`: what became of `history.pending`, once the result asked for it (`ask_fate`).
    `worker_ready`: a worker for the room's agent (re)registered since its last dispatch.
    `waited`: how long the people had been in the room when the watchdog first found them
    waiting (`waited_before`): the grace counts from their join, not from that first look.
    """
    allowance = heartbeat_allowance or {}
    agents = [p for p in participants if p.kind is Kind.AGENT]
    ghosts = tuple(
        Removal(a.identity, _why_dead(silence), a.sid)
        for a in agents
        if (silence := heartbeat_silence.get(a.identity)) is not None
        and silence > max(watch.heartbeat_timeout, allowance.get(a.identity, 0.0))
    )
    ghost_ids = {g.identity for g in ghosts}
    live_agents = [a for a in agents if a.identity not in ghost_ids]
    people = [p for p in participants if is_person(p)]
    if not people or live_agents:
        return RoomAssessment(False, ghosts, False, False, RoomHistory())

    agent_died = history.agent_died or bool(ghosts)
    since = history.waiting_since if history.waiting_since is not None else now - waited
    waiting = replace(history, waiting_since=since, agent_died=agent_died)
    cause = "agent_died" if agent_died else "agent_missing"
    dropped: str | None = None

    def nothing(state: RoomHistory = waiting, ask: bool = False) -> RoomAssessment:
        return RoomAssessment(True, ghosts, False, False, state, cause, ask, dropped)

    sent = waiting.last_sent
    if waiting.pending is not None and sent is not None:
        due = now - sent >= max(watch.dispatch_wait, REQUEST_DEADLINE) or worker_ready
        asked_lately = waiting.asked_at is not None and now - waiting.asked_at < watch.fate_every
        if fate is None:
            return nothing(ask=due and not asked_lately)
        if not fate.taken:  # dropped: no worker took it, so it was no attempt
            dropped = waiting.pending
            counted = waiting.dispatches[:-1]
            waiting = replace(waiting, dispatches=counted, pending=None, asked_at=None)
            if waiting.failed and len(counted) < watch.max_dispatches:
                waiting = replace(waiting, failed=False)
        elif fate.starting and now - sent < watch.start_wait:
            return nothing(replace(waiting, asked_at=now))  # its agent is on its way
        else:
            waiting = replace(waiting, pending=None, asked_at=None)
    if worker_ready and waiting.failed:  # a worker is back: a fresh round of attempts
        waiting = replace(waiting, failed=False, dispatches=())
    if waiting.failed:
        last = waiting.last_sent
        if last is None or now - last >= watch.failed_retry:
            return _dispatch(waiting, now, ghosts, cause, dropped, counted=False)
        return nothing()
    # A person whose agent died has already waited: act at once. A new arrival gets grace.
    if not agent_died and now - since < watch.grace:
        return nothing()
    last = waiting.last_sent
    recent = last is not None and now - last < watch.dispatch_wait
    if recent and dropped is None and not worker_ready:
        return nothing()
    if hold and now - since < watch.start_wait:
        return nothing()
    if len(waiting.dispatches) >= watch.max_dispatches:
        failed = replace(waiting, failed=True)
        return RoomAssessment(True, ghosts, False, True, failed, cause, False, dropped)
    return _dispatch(waiting, now, ghosts, cause, dropped, counted=True)


def _why_dead(silence: float) -> str:
    """Why an agent is a ghost: its heartbeat's silence, or (infinite) its worker's death."""
    if math.isinf(silence):
        return "its process died (its worker's word) and LiveKit still lists it"
    return f"heartbeat silent for {silence:.1f}s"


def _dispatch(
    history: RoomHistory,
    now: float,
    ghosts: tuple[Removal, ...],
    cause: str,
    dropped: str | None,
    *,
    counted: bool,
) -> RoomAssessment:
    """Dispatch now; the caller records the new dispatch's id with `dispatched`."""
    attempts = (*history.dispatches, now) if counted else history.dispatches
    state = replace(history, dispatches=attempts, last_dispatch=now, pending=None)
    return RoomAssessment(True, ghosts, True, False, state, cause, False, dropped)


def dispatched(history: RoomHistory, dispatch_id: str | None) -> RoomHistory:
    """`history` once the dispatch it decided was made (`dispatch_id`; None if the call
    failed). An attempt's fate is asked later (`ask_fate`); a failed room's retry, which
    counts nothing either way, is simply made again after `failed_retry`."""
    counted = bool(history.dispatches) and history.dispatches[-1] == history.last_sent
    return replace(history, pending=dispatch_id if counted else None, asked_at=None)
