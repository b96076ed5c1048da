"""A closed page's room is deleted, and a deletion LiveKit could not take is tried again.

The page's leave beacon (`/api/leave`) is sent once, as the tab closes: nothing on the
page can try again. When LiveKit does not answer then (its node restarting, Redis hung),
the room would stay with the page's person listed as LiveKit last saw them and the agent
in it, until the stale cleanup, five minutes on. So the page server keeps the request
and tries it again a few times (`RETRY_DELAYS`), with the same rule: the room goes only
if nobody but that person and agents is in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from ..core.errors import RoomRecoveryError
from ..core.manager import RoomManager
from ..core.settings import Settings
from ..core.views import participant_view
from ..rules.model import Kind

logger = logging.getLogger(__name__)

LEAVE_TIMEOUT = 5.0  # seconds for the server calls of one leave beacon
RETRY_DELAYS = (2.0, 4.0, 8.0)  # seconds before each new try of a leave LiveKit did not take
MAX_RETRYING = 200  # leaves kept at once; beyond, one line and no retry (beacons are signed)


async def delete_if_left_alone(settings: Settings, room: str, identity: str) -> bool:
    """Delete `room` if nobody but `identity` and agents is in it. True if deleted."""
    async with RoomManager(settings=settings, request_timeout=LEAVE_TIMEOUT) as manager:
        views = [participant_view(p) for p in await manager.list_participants(room)]
        others = [v for v in views if v.kind is not Kind.AGENT and v.identity != identity]
        if others:
            return False
        return await manager.delete_room(room)


class LeaveRetries:
    """Leaves LiveKit did not take, tried again in the background until they are."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: dict[str, asyncio.Task[None]] = {}  # room -> its retry

    def keep(self, room: str, identity: str) -> bool:
        """Try this leave again later; False if it cannot be kept (too many at once)."""
        if room in self._tasks:
            return True
        if len(self._tasks) >= MAX_RETRYING:
            return False
        task = asyncio.get_running_loop().create_task(self._retry(room, identity))
        self._tasks[room] = task
        task.add_done_callback(lambda _: self._tasks.pop(room, None))
        return True

    async def _retry(self, room: str, identity: str) -> None:
        fields = {"room": room, "identity": identity}
        error: RoomRecoveryError | None = None
        for attempt, delay in enumerate(RETRY_DELAYS, 1):
            await asyncio.sleep(delay)
            try:
                deleted = await delete_if_left_alone(self.settings, room, identity)
            except RoomRecoveryError as exc:
                error = exc
                continue
            outcome = "deleted room" if deleted else "kept room (someone else is in it):"
            logger.info(
                "👋 %s closed the page; %s %s (try %d)",
                identity,
                outcome,
                room,
                attempt + 1,
                extra=fields,
            )
            return
        logger.warning(
            "Gave up cleaning up room %s after its page closed (%d tries): %s; the stale "
            "cleanup deletes it once it is older than ROOM_STALE_TIMEOUT",
            room,
            len(RETRY_DELAYS) + 1,
            error,
            extra=fields,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app runs; its retries are cancelled when it stops."""
        try:
            yield
        finally:
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
