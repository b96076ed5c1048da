"""What is stale, whom to remove before an agent joins, whom to keep.

Nothing here talks to a server. The manager fetches rooms and participants, turns them
into `RoomView` / `ParticipantView`, asks these functions, and acts on the verdicts.

The rule, in one place:

* A room is stale when it has no participants and is older than the stale timeout.
* A participant is stale when it has been in its room longer than the stale timeout and
  never reached the ACTIVE state (it never connected). Publishing nothing is no sign of
  death (a listen-only person, a transcriber agent): an ACTIVE participant that has
  published no track is removed only when `remove_silent` is set (ROOM_STALE_SILENT=true;
  egress participants, which never publish, are exempt even then).
* An agent is stale when it is alone in its room (no participant other than agents) and
  joined more than `agent_alone_grace` seconds ago: an agent waits for a person only that long.
* Before a new agent joins (`prejoin_removals`) an agent already in the room is removed
  when it is shown dead (DISCONNECTED, or its heartbeat is older than `dead_heartbeat`) or
  left over from an earlier session (it joined before every person now in the room). An
  agent that joined after the person and may be alive is serving them: it stays. (The
  spec removes every agent; but a live agent is a person's conversation.)
* Whoever is in `keep` is never removed: that is the person the agent is joining for.
* An agent in `alive` is never removed either: its worker says its process runs and
  answers (the watchdog's worker links, `protocol.links`). Its heartbeat may be silent for
  a reason that is no death (a stalled process, a Redis outage that froze the attribute),
  and an agent left over from before the person's (re)connection may be serving them; only
  the server's own word (DISCONNECTED) removes it then. The watchdog judges by the same rule.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .model import Kind, ParticipantView, Removal, RoomView, State, has_a_person

DEFAULT_AGENT_ALONE_GRACE = 30.0


@dataclass(frozen=True)
class StalePolicy:
    """The thresholds of the rule above, in seconds."""

    stale_timeout: float = 300.0
    agent_alone_grace: float = DEFAULT_AGENT_ALONE_GRACE
    dead_heartbeat: float = 3.0  # an agent whose heartbeat is older than this is dead
    remove_silent: bool = False  # also an ACTIVE participant that publishes nothing (opt-in)


def is_stale_room(room: RoomView, now: float, policy: StalePolicy) -> bool:
    """Whether an empty room has outlived the stale timeout."""
    return room.num_participants == 0 and now - room.creation_time > policy.stale_timeout


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
    silent = participant.track_count == 0 and participant.kind is not Kind.EGRESS
    if policy.remove_silent and silent:
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
            removals.append(Removal(participant.identity, reason, participant.sid))
    return removals


def agent_death(agent: ParticipantView, now: float, policy: StalePolicy) -> str | None:
    """Why an agent is shown dead, or None when it may be alive."""
    if agent.state is State.DISCONNECTED:
        return "disconnected"
    if agent.heartbeat_at is not None and now - agent.heartbeat_at > policy.dead_heartbeat:
        return f"heartbeat silent for {now - agent.heartbeat_at:.1f}s"
    return None


def doubted_agents(
    removals: Sequence[Removal], participants: Sequence[ParticipantView]
) -> set[str]:
    """The agents among `removals` that the server does not show gone: removed on our own
    judgement (a silent heartbeat, an earlier join), which their worker may contradict."""
    gone = {p.identity for p in participants if p.state is State.DISCONNECTED}
    agents = {p.identity for p in participants if p.kind is Kind.AGENT}
    return {r.identity for r in removals if r.identity in agents and r.identity not in gone}


def prejoin_removals(
    participants: Sequence[ParticipantView],
    now: float,
    policy: StalePolicy,
    keep: Collection[str] = (),
    alive: Collection[str] = (),
) -> list[Removal]:
    """Whom to remove before a new agent joins: dead agents, and stale participants.

    The people in `keep` (the person the agent is joining for) always stay, and so do the
    agents in `alive` (their worker vouches for them) unless the server shows them gone.
    """
    removals = []
    people = [p.joined_at for p in participants if p.kind is not Kind.AGENT]
    first_person = min(people) if people else None
    for participant in participants:
        if participant.identity in keep:
            continue
        if participant.kind is Kind.AGENT:
            reason = agent_death(participant, now, policy)
            if participant.identity in alive and participant.state is not State.DISCONNECTED:
                continue
            if reason is None and (first_person is None or participant.joined_at < first_person):
                reason = "left over from an earlier session"
            if reason is not None:
                removals.append(Removal(participant.identity, f"agent {reason}", participant.sid))
            continue
        reason = staleness(participant, participants, now, policy)
        if reason is not None:
            removals.append(Removal(participant.identity, reason, participant.sid))
    return removals
