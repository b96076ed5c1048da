"""What is stale, whom to remove, whom to keep: pure decisions over plain data.

Nothing here talks to a server. The manager fetches rooms and participants, turns them
into `RoomView` / `ParticipantView`, asks these functions, and acts on the verdicts.

The rule, in one place:

* A room is stale when it has no participants and is older than the stale timeout.
* A participant is stale when it has been in its room longer than the stale timeout and
  shows no sign of life: it never reached the ACTIVE state, or it publishes no track
  (egress participants, which never publish, are exempt).
* An agent is stale when it is alone in its room (no participant other than agents) and
  joined more than `agent_alone_grace` seconds ago: an agent waits for a person only that long.
* Before a new agent joins (`prejoin_removals`) every agent already in the room is a ghost:
  the job that is starting is the one that should serve the room.
* Whoever is in `keep` is never removed: that is the person the agent is joining for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_ROOM_NAME_BYTES = 256  # livekit-server's default limit.max_room_name_length
DEFAULT_AGENT_ALONE_GRACE = 30.0


class Kind(StrEnum):
    """A participant's kind, as the server API reports it."""

    STANDARD = "standard"
    INGRESS = "ingress"
    EGRESS = "egress"
    SIP = "sip"
    AGENT = "agent"
    OTHER = "other"


class State(StrEnum):
    """A participant's connection state, as the server API reports it."""

    JOINING = "joining"
    JOINED = "joined"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class RoomView:
    """What the policy needs to know of a room."""

    name: str
    creation_time: float  # seconds since the epoch
    num_participants: int


@dataclass(frozen=True)
class ParticipantView:
    """What the policy needs to know of a participant."""

    identity: str
    kind: Kind
    state: State
    joined_at: float  # seconds since the epoch
    track_count: int


@dataclass(frozen=True)
class Removal:
    """A participant to remove, and why (the reason reaches logs and reports)."""

    identity: str
    reason: str


@dataclass(frozen=True)
class StalePolicy:
    """The thresholds of the rule above, in seconds."""

    stale_timeout: float = 300.0
    agent_alone_grace: float = DEFAULT_AGENT_ALONE_GRACE


def room_name_problem(name: str) -> str | None:
    """Why LiveKit would refuse this room name, or None when it is acceptable."""
    if not name or not name.strip():
        return "a room name must not be empty"
    if len(name.encode()) > MAX_ROOM_NAME_BYTES:
        return f"a room name must be at most {MAX_ROOM_NAME_BYTES} bytes, got {len(name.encode())}"
    return None


def is_stale_room(room: RoomView, now: float, policy: StalePolicy) -> bool:
    """Whether an empty room has outlived the stale timeout."""
    return room.num_participants == 0 and now - room.creation_time > policy.stale_timeout


def has_a_person(participants: Iterable[ParticipantView]) -> bool:
    """Whether anyone but an agent is in the room (people, phone callers, ingress)."""
    return any(p.kind is not Kind.AGENT for p in participants)


def staleness(
    participant: ParticipantView,
    room_participants: Sequence[ParticipantView],
    now: float,
    policy: StalePolicy,
) -> str | None:
    """Why a participant is stale, or None when it looks alive."""
    age = now - participant.joined_at
    if participant.kind is Kind.AGENT and age > policy.agent_alone_grace:
        others = [p for p in room_participants if p.identity != participant.identity]
        if not has_a_person(others):
            return "agent left alone in the room"
    if age <= policy.stale_timeout:
        return None
    if participant.state is not State.ACTIVE:
        return f"never became active (state {participant.state.value})"
    if participant.track_count == 0 and participant.kind is not Kind.EGRESS:
        return "publishes nothing"
    return None


def stale_removals(
    participants: Sequence[ParticipantView],
    now: float,
    policy: StalePolicy,
    keep: Collection[str] = (),
) -> list[Removal]:
    """The stale participants of one room, except those in `keep`."""
    removals = []
    for participant in participants:
        if participant.identity in keep:
            continue
        reason = staleness(participant, participants, now, policy)
        if reason is not None:
            removals.append(Removal(participant.identity, reason))
    return removals


def prejoin_removals(
    participants: Sequence[ParticipantView],
    now: float,
    policy: StalePolicy,
    keep: Collection[str] = (),
) -> list[Removal]:
    """Whom to remove before a new agent joins: agents already there, and stale participants.

    The people in `keep` (the person the agent is joining for) always stay.
    """
    removals = []
    for participant in participants:
        if participant.identity in keep:
            continue
        if participant.kind is Kind.AGENT:
            removals.append(Removal(participant.identity, "ghost agent: a new agent is joining"))
            continue
        reason = staleness(participant, participants, now, policy)
        if reason is not None:
            removals.append(Removal(participant.identity, reason))
    return removals


def retry_delay(attempt: int, step: float = 1.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, 3 …): the spec's 1 s, 2 s, 3 s."""
    if attempt < 1:
        raise ValueError(f"retry attempts are counted from 1, got {attempt}")
    return step * attempt


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts a part that died: backoff, and when to give up."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    crash_limit: int = 5  # crashes within `window` seconds before giving up
    window: float = 120.0


def restart_delay(recent_crashes: int, restart: RestartPolicy) -> float:
    """Seconds before the next start, doubling with each recent crash: 1, 2, 4 … max_delay."""
    exponent = max(0, recent_crashes - 1)
    return float(min(restart.max_delay, restart.first_delay * 2**exponent))


def recent_crashes(crash_times: Sequence[float], now: float, restart: RestartPolicy) -> int:
    """How many crashes fall within the policy's window."""
    return sum(1 for t in crash_times if now - t <= restart.window)


def should_give_up(crash_times: Sequence[float], now: float, restart: RestartPolicy) -> bool:
    """Whether a part crashed too often to be restarted again (it is then reported failed)."""
    return recent_crashes(crash_times, now, restart) >= restart.crash_limit


# --- the watchdog's decisions --------------------------------------------------------


@dataclass(frozen=True)
class WatchPolicy:
    """When the watchdog acts on a room, in seconds."""

    grace: float = 3.0  # a person may wait this long for the first agent before we act
    dispatch_wait: float = 4.0  # how long a dispatched agent gets to arrive
    max_dispatches: int = 3  # then the room is marked failed, so the page gives up early
    heartbeat_timeout: float = 1.5  # an agent whose heartbeat is silent this long is a ghost


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


def is_person(participant: ParticipantView) -> bool:
    """Someone an agent serves: a standard participant or a phone caller, connected."""
    connected = participant.state in (State.JOINED, State.ACTIVE)
    return connected and participant.kind in (Kind.STANDARD, Kind.SIP)


def assess_room(
    participants: Sequence[ParticipantView],
    heartbeat_silence: dict[str, float | None],
    history: RoomHistory,
    now: float,
    watch: WatchPolicy,
    heartbeat_allowance: Mapping[str, float] | None = None,
) -> RoomAssessment:
    """Decide, for a room, which ghost agents to remove and whether to dispatch an agent.

    `heartbeat_silence` maps an agent's identity to the seconds its heartbeat has been
    silent (None when it sends none: then the server's view of it is trusted). An agent is
    a ghost when that exceeds `watch.heartbeat_timeout`, or its own, longer allowance in
    `heartbeat_allowance` (learned from its rhythm, see `heartbeat.HeartbeatTracker`).
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
    if len(history.dispatches) >= watch.max_dispatches:
        failed = RoomHistory(since, history.dispatches, True, agent_died)
        return RoomAssessment(True, ghosts, False, True, failed, cause)
    dispatched = RoomHistory(since, (*history.dispatches, now), False, agent_died)
    return RoomAssessment(True, ghosts, True, False, dispatched, cause)
