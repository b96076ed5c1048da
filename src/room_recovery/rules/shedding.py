"""When a worker near its capacity ends a job that serves nobody.

LiveKit sends no job to a worker whose load has reached its target (0.7 by default): the
dispatch is dropped, silently ("no servers available"). After a node dies, the jobs of its
rooms keep their job processes for up to a minute while their agents reconnect, alone, to
rooms their people have left. A worker sized for its sessions fills up with them, and new
people wait for the watchdog's rescue instead of LiveKit's dispatch.

So a worker near that limit (`audits`) looks at the rooms of its jobs older than
`SHED_MIN_AGE`, and ends a job whose room has had nobody but agents in it in looks at
least `SHED_CONFIRM` apart (`judge_vacancy`). Ending a job is its agent leaving an empty
room, as the guide's graceful shutdown has it: no participant is removed, and a job whose
room holds anyone but agents (a person, a phone caller, an egress) is not ended by this
rule; only when every one of them is a ghost of a dead node (`rules.reach`, asked by
`agent.shedding`). A room that cannot be listed is never judged. Below `SHED_LOAD` nothing
is listed at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import ParticipantView, has_a_person

SHED_LOAD = 0.5  # a worker at this load looks for jobs that serve nobody (LiveKit's limit: 0.7)
SHED_MIN_AGE = 8.0  # a younger job's person may still be on their way in
SHED_CONFIRM = 3.0  # a room must be seen empty of people this long before its job ends


def audits(load: float | None) -> bool:
    """Whether a worker at `load` looks for jobs that serve nobody (None: load unknown)."""
    return load is not None and load >= SHED_LOAD


def judge_vacancy(
    empty_since: float | None, participants: Sequence[ParticipantView] | None, now: float
) -> tuple[float | None, bool]:
    """One look at a job's room: (since when it has been empty of people, end the job now).

    `participants` is None when the room could not be listed: no judgement either way."""
    if participants is None:
        return empty_since, False
    if has_a_person(participants):
        return None, False
    since = now if empty_since is None else empty_since
    return since, now - since >= SHED_CONFIRM
