"""Replace a dead agent in place: the one sequence the worker monitor and the watchdog share.

1. Look at the room and plan (`rules.recovery.plan_replacement`): which participant is the
   dead agent (by sid, or by having joined before the death), and whether a person still
   waits with no other agent.
2. Mark the room `recovering` (room metadata), so a page in it waits there instead of
   leaving for a new room while the replacement is on its way.
3. Remove the dead agent's participant, by its sid (`RoomManager.remove_agent`), so the
   person sees it go now, not in 20 s. A person, or a replacement under the same identity,
   is never removed.
4. Dispatch the same agent again (`""`: LiveKit's automatic dispatch, which re-sends an
   automatic-dispatch worker into an existing room), with the same metadata (the person).

Each step is tried even if an earlier one failed: a page that does not wait is worse than
none, but an agent that never comes is worst.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..protocol.room_status import recovering
from ..rules.recovery import DeadAgent, plan_replacement
from .errors import NotLeading, RoomRecoveryError
from .manager import RoomManager
from .views import participant_view

logger = logging.getLogger(__name__)

# awaited right before each side effect ("mark", "remove", "dispatch"): False skips it
Gate = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class ReplacementOutcome:
    """What a replacement did: removed the dead sid or not, and the new dispatch's id."""

    removed: bool = False
    dispatch_id: str | None = None
    dispatched: bool = False  # a dispatch was made (its id is None if the call failed)
    serving: str | None = None  # the other agent that serves the room, if one does


async def _always(action: str) -> bool:
    return True


async def replace_agent(
    manager: RoomManager,
    room: str,
    dead: DeadAgent,
    agent_name: str,
    metadata: str,
    *,
    cause: str,
    gate: Gate = _always,
    only_if_listed: bool = False,
) -> ReplacementOutcome:
    """Replace agent `dead` in `room` (see the module). `gate(action)` is awaited right
    before each call that changes something: the watchdog fences there (only its leader
    acts) and claims the room before a dispatch; False skips that step.

    `only_if_listed`: act only if LiveKit lists the dead agent (kind AGENT) in the room:
    for a death reported by a peer (a worker link), which may speak only of its own agents.

    Raises RoomRecoveryError when the room cannot be looked at, or the gate raises (the
    watchdog's NotLeading); a failed step is logged as a warning and the next one tried.
    """
    fields = {"room": room, "identity": dead.identity, "agent_name": agent_name, "cause": cause}
    views = [participant_view(i) for i in await manager.list_participants(room)]
    # each step's failure is logged and the next tried; a lost lead stops them all
    plan = plan_replacement(views, dead)
    if only_if_listed and plan.remove is None:
        logger.info(
            "not replacing %s in room %s: no agent of that identity and sid is there",
            dead.identity,
            room,
            extra=fields,
        )
        return ReplacementOutcome(False, None, False, plan.serving)
    removed = False
    if plan.dispatch and await gate("mark"):
        try:
            await manager.update_room_status(room, recovering(cause, dead.identity))
        except NotLeading:
            raise
        except RoomRecoveryError as exc:
            logger.warning("could not mark room %s recovering: %s", room, exc, extra=fields)
    if plan.remove is not None and await gate("remove"):
        try:
            removed = await manager.remove_agent(room, dead.identity, plan.remove.sid)
        except NotLeading:
            raise
        except RoomRecoveryError as exc:
            logger.warning("could not remove dead agent %s: %s", dead.identity, exc, extra=fields)
    if not plan.dispatch or not await gate("dispatch"):
        return ReplacementOutcome(removed, None, False, plan.serving)
    try:
        dispatch_id: str | None = await manager.dispatch_agent(room, agent_name, metadata)
    except NotLeading:
        raise
    except RoomRecoveryError as exc:
        logger.warning("could not dispatch a new agent to room %s: %s", room, exc, extra=fields)
        dispatch_id = None
    return ReplacementOutcome(removed, dispatch_id, True, plan.serving)
