"""The guide's module name: `from livekit_room_manager import RoomManager` keeps working.

`RoomManager` is `room_recovery.RoomManager`, plus one thing the guide's code needs: it
watches the agent worker it runs in. The guide's request handler imports this module
*inside* the handler, so the worker's first job request is the first moment any code of
ours runs there; a user may also call `ensure_clean_room` from the entrypoint, in the job's
own process. At its import, and before each `ensure_clean_room`, this module finds which
it is (`room_recovery.agent.attach`): in the worker, the monitor attaches (a dead agent is
replaced in place within a second, and the worker links to the watchdog); in a job, the job
links to the watchdog itself. Inside a job, the job's own agent is never cleaned out.

That is this module's one import-time side effect, and it costs nothing elsewhere: in a
process without livekit-agents it only adds a log handler that wakes when livekit-agents
logs "registered worker" (a worker that imports this module first thing is watched from
its registration on).

In the worker's request handler, `ensure_clean_room` also declines a request for a room
that a job of this worker already serves (the handler's `accept()` then does nothing): one
agent per room, however many dispatches LiveKit or a recovery made.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from types import FrameType

from room_recovery import RoomManager as _RoomManager
from room_recovery.core.report import CleanupReport

__all__ = ["RoomManager"]

logger = logging.getLogger("room_recovery.agent")


class RoomManager(_RoomManager):
    """`room_recovery.RoomManager`; inside an agent worker it also watches the worker."""

    async def ensure_clean_room(
        self, room_name: str, keep: Collection[str] | str = ()
    ) -> CleanupReport:
        frame = sys._getframe(1)
        own = _watch(frame, self)
        if own is not None:  # called from an entrypoint: the agent itself stays
            keep = {keep} if isinstance(keep, str) else set(keep)
            keep.add(own)
        elif await _declined(frame, room_name):  # this worker's agent already serves it
            return CleanupReport()
        return await super().ensure_clean_room(room_name, keep)


def _watch(
    frame: FrameType | None, manager: _RoomManager | None = None, registering: bool = False
) -> str | None:
    """`watch_this_process` when this process runs livekit-agents; never raises."""
    if "livekit.agents" not in sys.modules:
        return None
    try:
        from room_recovery.agent.attach import watch_this_process

        settings = manager.settings if manager else None
        return watch_this_process(frame, settings, registering=registering)
    except Exception:  # a worker must never fail for our watch: the watchdog still works
        logger.debug("could not watch this agent worker", exc_info=True)
        return None


async def _declined(frame: FrameType | None, room_name: str) -> bool:
    """In a worker's request handler: whether the request was declined because a job of
    this worker already serves the room (`decline_if_served`); never raises."""
    if "livekit.agents" not in sys.modules:
        return False
    try:
        from room_recovery.agent.attach import decline_if_served

        return await decline_if_served(frame, room_name)
    except Exception:  # never cost a person their agent for our check
        logger.debug("could not check whether the room is already served", exc_info=True)
        return False


class _WorkerWatch(logging.Handler):
    """Watches the worker when livekit-agents, imported after this module, registers it.

    Once: from then on livekit-agents is imported, and `agent.adapter`'s own handler (which
    `watch_this_process` installs) sees each later registration."""

    done = False  # not removed from the logger while it logs: that would skip a handler

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "registered worker" and not self.done:
            self.done = True
            _watch(sys._getframe(1), registering=True)


def _watch_now_or_at_registration() -> None:
    if "livekit.agents" in sys.modules:
        _watch(sys._getframe(2))  # the importer's frame: maybe a request handler
        return
    source = logging.getLogger("livekit.agents")
    if not any(isinstance(h, _WorkerWatch) for h in source.handlers):
        source.addHandler(_WorkerWatch(logging.INFO))


_watch_now_or_at_registration()
