"""People LiveKit lists but cannot reach: ghosts a dead node leaves in a cluster's state.

In distributed mode each node keeps its rooms' participants in the shared Redis. When a
node dies (SIGKILL, a crash) and a person's client never reconnects, that person stays
listed ACTIVE: no node holds them any more, so nothing ever ends them. Measured with
`bench/rooms_left.py`: still listed minutes later, an agent joining found nobody, and the
watchdog dispatched a new agent to them every 33 s. LiveKit routes a call about one
participant to that participant's node; for such a ghost no node answers ("no response
from servers", code `unavailable`), while a real person's node answers in milliseconds.

The watchdog asks (an UpdateParticipant that changes nothing, `Transport.reaches`) only
when it is about to dispatch for the people waiting in a room. One unanswered ask is
doubt, not death (a node may be stalled): no dispatch meanwhile (an agent could not
reach them either), and they are asked again at each look. Unanswered for `GHOST_AFTER`
seconds, each of them, with no other person in the room: they are ghosts, and the room
is deleted (DeleteRoom clears that state; RemoveParticipant cannot, it goes to the dead
node too). One person who answers, or a server that cannot say, and the room is served
as before. Nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum

GHOST_AFTER = 20.0  # seconds a person's node must stay silent before they count as a ghost


class Reach(StrEnum):
    """The verdict on the people a dispatch would be for."""

    REACHED = "reached"  # someone answers (or the server cannot say): dispatch as before
    DOUBT = "doubt"  # nobody answers yet: no dispatch, ask again at the next look
    GHOSTS = "ghosts"  # nobody has answered for GHOST_AFTER: delete the room


def judge_reach(
    answers: Mapping[str, bool | None],
    unanswered_since: Mapping[str, float],
    now: float,
    ghost_after: float = GHOST_AFTER,
) -> tuple[Reach, dict[str, float]]:
    """The verdict on a room's people, and since when each one has not answered.

    `answers` maps each person's sid to whether LiveKit reached them (None: it cannot
    say); `unanswered_since` is what the last verdict returned (a sid that answers, or
    has left, is forgotten).
    """
    since = {sid: unanswered_since.get(sid, now) for sid, ok in answers.items() if ok is False}
    if not answers or len(since) < len(answers):
        return Reach.REACHED, since
    if all(now - first >= ghost_after for first in since.values()):
        return Reach.GHOSTS, since
    return Reach.DOUBT, since


def only_dead_agents(listed: Iterable[tuple[str, bool]], unremoved: Collection[str]) -> bool:
    """Whether a room holds nothing but agents judged dead whose removal no node answered.

    `listed` is each participant's (sid, is an agent). Such a room has nobody to serve and
    nothing LiveKit will ever end (their node died, as for the ghost people above): it is
    deleted at once, which kicks nobody alive. One person, or one agent not judged dead,
    and it is not.
    """
    listed = list(listed)
    return bool(listed) and all(agent and sid in unremoved for sid, agent in listed)
