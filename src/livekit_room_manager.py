"""The spec's module name: `from livekit_room_manager import RoomManager` keeps working.

The implementation lives in the `room_recovery` package; this module re-exports it. A worker
that imports it (the spec's request-handler snippet) is also watched from the moment it
registers (`room_recovery.agent.monitor`): a dead agent is replaced within a second, with no
further code. Importing it anywhere else costs nothing: the watch is a log handler that
wakes only when livekit-agents logs "registered worker".
"""

from __future__ import annotations

import logging

from room_recovery import RoomManager

__all__ = ["RoomManager"]


class _WorkerWatch(logging.Handler):
    """Loads the worker monitor when this process turns out to be an agent worker."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != "registered worker":
            return
        try:
            from room_recovery.agent import monitor
        except Exception:  # no livekit-agents here, or it changed: nothing to watch
            return
        monitor.handle_registration(record)  # attaches once; later registrations are its own


def _watch_worker() -> None:
    source = logging.getLogger("livekit.agents")
    if not any(isinstance(h, _WorkerWatch) for h in source.handlers):
        source.addHandler(_WorkerWatch(logging.INFO))


_watch_worker()
