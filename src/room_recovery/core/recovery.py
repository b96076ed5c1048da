"""Replace a dead agent in place: the one sequence the worker monitor and the watchdog share.

1. Mark the room `recovering` (room metadata), so a page in it waits there instead of
   leaving for a new room while the replacement is on its way.
2. Remove the dead agent's participant, so the person sees it go now, not in 20 s.
3. Dispatch the same agent again (`""`: LiveKit's automatic dispatch, which re-sends an
   automatic-dispatch worker into an existing room), with the same metadata (the person).

Each step is tried even if an earlier one failed: a page that does not wait is worse than
none, but an agent that never comes is worst.
"""

from __future__ import annotations

import logging

from ..protocol.room_status import recovering
from .errors import RoomRecoveryError
from .manager import RoomManager

logger = logging.getLogger(__name__)


async def replace_agent(
    manager: RoomManager,
    room: str,
    dead: str,
    agent_name: str,
    metadata: str,
    *,
    cause: str,
    dispatch: bool = True,
) -> str | None:
    """Replace agent `dead` in `room`. Returns the dispatch id, or None.

    With `dispatch=False` (no worker can take the job now: it would be dropped) the room is
    marked and the dead agent removed; the caller dispatches once a worker is there.

    Raises nothing but cancellation: failures are logged as warnings.
    """
    fields = {"room": room, "identity": dead, "agent_name": agent_name, "cause": cause}
    try:
        await manager.update_room_status(room, recovering(cause, dead))
    except RoomRecoveryError as exc:
        logger.warning("could not mark room %s recovering: %s", room, exc, extra=fields)
    try:
        await manager.remove_participant(room, dead)
    except RoomRecoveryError as exc:
        logger.warning("could not remove dead agent %s: %s", dead, exc, extra=fields)
    if not dispatch:
        return None
    try:
        return await manager.dispatch_agent(room, agent_name, metadata)
    except RoomRecoveryError as exc:
        logger.warning("could not dispatch a new agent to room %s: %s", room, exc, extra=fields)
        return None
