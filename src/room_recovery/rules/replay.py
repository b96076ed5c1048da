"""Which message ids were seen lately: a replayed webhook is recognised and ignored.

LiveKit signs each webhook with a token valid for minutes; anyone who captured one could
send it again in that time (a replayed `room_finished` would reset what the watchdog
remembers of a room). Each id is remembered for `window` seconds, the longest such a token
lasts; at most `capacity` ids, the oldest forgotten first. Pure: the caller gives the time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

WEBHOOK_WINDOW = 600.0  # seconds: LiveKit's webhook tokens last 5 minutes; twice that
CAPACITY = 100_000


@dataclass
class RecentIds:
    """Ids seen in the last `window` seconds (at most `capacity` of them)."""

    window: float = WEBHOOK_WINDOW
    capacity: int = CAPACITY
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)  # id -> first seen

    def first_time(self, message_id: str, now: float) -> bool:
        """True the first time `message_id` comes within the window; False for a replay."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.window and len(self._seen) < self.capacity:
                break
            del self._seen[oldest]
        if message_id in self._seen:
            return False
        self._seen[message_id] = now
        return True
