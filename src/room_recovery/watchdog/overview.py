"""What the operations view shows (`GET /api/overview`): a snapshot of the watchdog's own
memory. It makes no LiveKit call, so a view left open costs a dictionary walk per refresh,
and nobody looking costs nothing.

Rooms are listed most urgent first (a person waiting longest, then rooms under close
watch, then the rest), at most `ROOM_LIMIT` of them; `more` counts the others.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .rooms import WatchedRoom

if TYPE_CHECKING:
    from .service import Watchdog

ROOM_LIMIT = 200


@dataclass(frozen=True)
class RoomLine:
    """One room as the view lists it."""

    name: str
    people: tuple[str, ...]
    agents: tuple[str, ...]
    waiting_for: float | None  # seconds a person has waited without a live agent
    attention: str  # why it is looked at closely, or "quiet"
    dispatches: int
    failed: bool
    replacing: str | None

    def urgency(self) -> tuple[int, float, str]:
        """Sort key: waiting longest first, then watched closely, then by name."""
        if self.waiting_for is not None:
            return (0, -self.waiting_for, self.name)
        return (1 if self.attention != "quiet" else 2, 0.0, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "people": list(self.people),
            "agents": list(self.agents),
            "waiting_for": None if self.waiting_for is None else round(self.waiting_for, 1),
            "attention": self.attention,
            "dispatches": self.dispatches,
            "failed": self.failed,
            "replacing": self.replacing,
        }


def room_line(name: str, room: WatchedRoom, now: float) -> RoomLine:
    """What the view says of one room, from the watchdog's last look at it (`now`: monotonic)."""
    since = room.history.waiting_since
    return RoomLine(
        name=name,
        people=room.people,
        agents=room.agents,
        waiting_for=max(0.0, now - since) if room.waiting and since is not None else None,
        attention=room.reason or "quiet",
        dispatches=len(room.history.dispatches),
        failed=room.history.failed,
        replacing=room.replacing,
    )


def overview(watchdog: Watchdog, limit: int = ROOM_LIMIT) -> dict[str, Any]:
    """Everything the operations view shows, as JSON-ready values."""
    now = time.monotonic()
    book = watchdog.book
    lines = sorted(
        (room_line(name, room, now) for name, room in book.rooms.items()),
        key=RoomLine.urgency,
    )
    health = watchdog.health()
    listed = len(watchdog.listing)
    return {
        "at": time.time(),
        "role": watchdog.leadership.role(),
        "health": health.to_dict(),
        "rooms": {
            "listed": listed,
            "known": len(book.rooms),
            "threshold": watchdog.options.room_alert_threshold,
            "alert": watchdog.alerting,
            "close": book.close_count(),
            "quiet": book.quiet_count(),
            "waiting": sum(1 for line in lines if line.waiting_for is not None),
            "people_waiting": sum(
                len(line.people) for line in lines if line.waiting_for is not None
            ),
        },
        "room_list": [line.to_dict() for line in lines[:limit]],
        "more": max(0, len(lines) - limit),
        "recoveries": [item.to_dict() for item in watchdog.journal.recent()],
        "time_to_agent": [
            {"le": None if math.isinf(bound) else bound, "count": count}
            for bound, count in watchdog.metrics.join_distribution()
        ],
        "workers": {
            "links": watchdog.links.count(),
            "jobs": watchdog.links.job_count(),
            "silent": watchdog.links.silent_count(),
        },
    }
