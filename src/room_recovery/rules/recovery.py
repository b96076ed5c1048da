"""Whom a recovery removes, and whether it sends a new agent: only what is provably dead.

An agent is judged dead by whoever saw it die (its worker saw the job process exit, the
watchdog saw its worker's socket close or its heartbeat stop). The judgement names the
agent (`DeadAgent`): its identity, and the proof that ties it to one participant, either
the participant's sid as it was seen, or the moment of death (a participant that joined
after that is a replacement, never the dead one). `plan_replacement` then finds that one
participant, of kind AGENT, and nobody else: a person is never removed, and neither is an
agent that shares the identity but joined later (LiveKit reuses identities: `agent-<room>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import Kind, ParticipantView, State, is_person


@dataclass(frozen=True)
class DeadAgent:
    """An agent judged dead: its identity and the proof (`sid` seen, or `died_at`, epoch s).

    `own_identity`: the identity names the dead job alone (livekit-agents' default,
    `agent-<job id>`), so a participant of that identity that joined before the death is
    that job's agent under any sid: it reconnected (a node restart) after its sid was seen.
    """

    identity: str
    sid: str = ""
    died_at: float | None = None
    own_identity: bool = False

    @classmethod
    def of_job(cls, job_id: str, identity: str, sid: str, died_at: float) -> DeadAgent:
        """The agent of job `job_id`, dead at `died_at`."""
        return cls(identity, sid, died_at, own_identity=identity == f"agent-{job_id}")


@dataclass(frozen=True)
class Replacement:
    """What to do for a dead agent: remove `remove` (or nobody), then dispatch or not."""

    remove: ParticipantView | None
    dispatch: bool
    serving: str | None = None  # another agent that serves the room, when one does


def verdict(participant: ParticipantView, dead: DeadAgent) -> bool | None:
    """Is `participant` the agent judged dead? True, False (another agent, or no agent), or
    None when nothing proves it either way (same identity, but no sid or time to compare).

    A participant that joined before the death (LiveKit's `joined_at`) is taken for the
    dead one: on two machines whose clocks differ, an agent that died within that
    difference of its join is not recognised (and left to the server's own timeout).
    """
    if participant.kind is not Kind.AGENT or participant.identity != dead.identity:
        return False
    if dead.sid and (participant.sid == dead.sid or not dead.own_identity):
        return participant.sid == dead.sid
    if dead.died_at is not None:
        return participant.joined_at < dead.died_at
    return None


def plan_replacement(participants: Sequence[ParticipantView], dead: DeadAgent) -> Replacement:
    """Remove the dead agent if it is still listed; dispatch a new one only if a person is
    there and no other agent serves them (a replacement may already have come)."""
    verdicts = [(p, verdict(p, dead)) for p in participants]
    corpse = next((p for p, is_dead in verdicts if is_dead), None)
    others = [p for p, is_dead in verdicts if p.kind is Kind.AGENT and is_dead is False]
    serving = others[0].identity if others else None
    wanted = any(is_person(p) for p in participants) and serving is None
    return Replacement(corpse, wanted, serving)


# --- one agent per room and worker ---------------------------------------------------------

CLAIM_ASSIGN_WAIT = 10.0  # a job accepted but never launched (no assignment came) lapses
CLAIM_START_WAIT = 15.0  # a launched job's agent may take this long to show in the room


@dataclass(frozen=True)
class Claim:
    """A worker's job for a room: accepted at `at` (monotonic s), `launched` once its
    process runs, its agent's `identity` once known."""

    job_id: str
    at: float
    launched: bool = False
    identity: str = ""


def serves(
    claim: Claim | None, now: float, participants: Sequence[ParticipantView] | None = None
) -> bool | None:
    """Does the worker's job `claim` still serve its room, so that a new job request for the
    room would make a second agent? None when only the room's participants can tell.

    A job accepted moments ago serves (its assignment or its agent is on its way); a job
    whose process ended has no claim left. A job that runs past `CLAIM_START_WAIT` serves
    while its agent is listed in the room: LiveKit re-dispatched the room after a node
    restart, or dispatched it twice, while that agent was reconnecting. Once its agent is
    gone from the room, it serves nobody, and the new job is welcome.
    """
    if claim is None:
        return False
    age = now - claim.at
    if not claim.launched:
        return age < CLAIM_ASSIGN_WAIT
    if age < CLAIM_START_WAIT:
        return True
    if participants is None:
        return None
    return any(
        p.kind is Kind.AGENT and p.identity == claim.identity and p.state is not State.DISCONNECTED
        for p in participants
    )
