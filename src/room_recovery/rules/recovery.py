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

from .model import Kind, ParticipantView, is_person


@dataclass(frozen=True)
class DeadAgent:
    """An agent judged dead: its identity and the proof (`sid` seen, or `died_at`, epoch s)."""

    identity: str
    sid: str = ""
    died_at: float | None = None


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
    if dead.sid:
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
