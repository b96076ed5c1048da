"""Whether a job of a full worker serves nobody: the looks behind `WorkerMonitor.shed_orphans`.

A job serves nobody when its room has had nobody but agents in it for `SHED_CONFIRM`
(`rules.shedding.judge_vacancy`), or when every person LiveKit lists there is a ghost: no
node has answered for them for `GHOST_AFTER` (`rules.reach.judge_reach`, the watchdog's
own rule). The second is what a node's death leaves: its rooms stay listed in Redis with
their people and agents ACTIVE, the people have gone elsewhere, and the job's agent
reconnects, alone, for minutes. The job's own agent is asked first (an UpdateParticipant
that changes nothing, which goes to the room's node): when its node answers, nobody else
is asked. Only then are the people asked, each one, and only for a job old enough on a
worker near its load limit. A room or a person the server cannot say anything about
is never judged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..core.errors import RoomRecoveryError
from ..core.manager import RoomManager
from ..core.settings import Settings
from ..core.views import participant_view
from ..protocol.links import JobRecord
from ..rules.model import Kind, ParticipantView, has_a_person
from ..rules.reach import GHOST_AFTER, Reach, judge_reach
from ..rules.shedding import judge_vacancy

logger = logging.getLogger(__name__)

LISTING_TIMEOUT = 1.0  # bound on one room's listing
REACH_TIMEOUT = 6.0  # bound on asking a person's node (LiveKit itself waits 3 s for it)

EMPTY = "nobody but agents in its room"
GHOSTS = (
    "every person in its room is a ghost "
    f"(no LiveKit node has answered for them for {GHOST_AFTER:.0f} s)"
)


class RoomLooks:
    """What the worker has seen of its jobs' rooms, look after look."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._empty_since: dict[str, float] = {}  # job id -> its room first seen with no person
        self._unanswered: dict[str, dict[str, float]] = {}  # job id -> person sid -> since

    def forget(self, job_id: str | None = None) -> None:
        """Forget one job's looks (it ended), or all (the worker is no longer near its limit)."""
        if job_id is None:
            self._empty_since.clear()
            self._unanswered.clear()
        else:
            self._empty_since.pop(job_id, None)
            self._unanswered.pop(job_id, None)

    async def serves_nobody(self, record: JobRecord) -> str | None:
        """Why job `record` serves nobody now (to log), or None while it may serve someone."""
        listed = await self.listing(record.room)
        since, end = judge_vacancy(self._empty_since.get(record.job_id), listed, time.monotonic())
        if since is None:
            self._empty_since.pop(record.job_id, None)
        else:
            self._empty_since[record.job_id] = since
        if end:
            return EMPTY
        if listed and has_a_person(listed):
            return GHOSTS if await self._ghosts(record, listed) else None
        return None

    async def _ghosts(self, record: JobRecord, listed: list[ParticipantView]) -> bool:
        if await self.reaches(record.room, record.identity) is not False:
            # the room's node answers for its own agent (or the server cannot say): the
            # people it lists are no ghosts of a dead node, and need no asking one by one
            self._unanswered.pop(record.job_id, None)
            return False
        people = [p for p in listed if p.kind is not Kind.AGENT]
        answers = await asyncio.gather(*(self.reaches(record.room, p.identity) for p in people))
        unanswered = self._unanswered.get(record.job_id, {})
        verdict, since = judge_reach(
            {p.sid or p.identity: ok for p, ok in zip(people, answers, strict=True)},
            unanswered,
            time.monotonic(),
        )
        self._unanswered[record.job_id] = since
        return verdict is Reach.GHOSTS

    async def listing(self, room: str) -> list[ParticipantView] | None:
        """The room's participants; None when the server cannot say (or out of scope)."""
        try:
            async with asyncio.timeout(LISTING_TIMEOUT):
                async with RoomManager(settings=self._settings(), request_timeout=1) as manager:
                    return [participant_view(p) for p in await manager.list_participants(room)]
        except (RoomRecoveryError, TimeoutError, OSError):
            return None

    async def reaches(self, room: str, identity: str) -> bool | None:
        """Whether a node answers for this person (`Transport.reaches`); None: cannot say."""
        try:
            async with asyncio.timeout(REACH_TIMEOUT):
                async with RoomManager(settings=self._settings(), request_timeout=1) as manager:
                    return await manager.reaches(room, identity)
        except (RoomRecoveryError, TimeoutError, OSError):
            return None
