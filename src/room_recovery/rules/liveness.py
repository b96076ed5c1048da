"""Is an agent alive? Judged by whether its heartbeat value keeps changing.

The watchdog notes, on its own clock, when it last saw an agent's heartbeat value change;
a value that has not changed for `HEARTBEAT_TIMEOUT` seconds marks a ghost. Agents that
send no heartbeat are judged by the server's state alone.

An agent on a loaded machine may beat late without being dead. The tracker remembers the
longest gap it has seen between an agent's changes and allows that agent twice as much
silence (at most `MAX_ALLOWANCE`), the way adaptive failure detectors (phi accrual) learn
each peer's rhythm: a healthy agent keeps the 3 s limit, one that once stalled for 2 s
gets 4 s instead of being replaced in the middle of a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEARTBEAT_TIMEOUT = 3.0  # seconds of silence after which an agent is a ghost (a 2 s stall is not)
STALL_FACTOR = 2.0  # an agent may be silent this many times its longest gap seen so far
MAX_ALLOWANCE = 5.0  # but never longer: the server itself needs about 20 s


@dataclass
class HeartbeatTracker:
    """For each (room, identity): the last value, when it changed, the connection (sid) it
    was read on, and the longest gap between two changes seen so far."""

    _seen: dict[tuple[str, str], tuple[str, float, str]] = field(default_factory=dict)
    _longest_gap: dict[tuple[str, str], float] = field(default_factory=dict)

    def silence(
        self, room: str, identity: str, value: str | None, now: float, sid: str = ""
    ) -> float | None:
        """Seconds since this participant's heartbeat `value` last changed; None without one.

        A new connection (another `sid`) starts afresh: an agent that joined again under
        the same identity, after its node died, carries its old heartbeat in its attributes
        until it beats again, and its old silence is no evidence against the new connection.
        """
        if value is None:
            return None
        key = (room, identity)
        previous = self._seen.get(key)
        if previous is None or previous[2] != sid:
            self._seen[key] = (value, now, sid)
            return 0.0
        if previous[0] != value:
            gap = now - previous[1]
            self._longest_gap[key] = max(gap, self._longest_gap.get(key, 0.0))
            self._seen[key] = (value, now, sid)
            return 0.0
        return now - previous[1]

    def allowance(self, room: str, identity: str) -> float:
        """How long this agent may be silent, learned from its rhythm (at least the timeout)."""
        learned = STALL_FACTOR * self._longest_gap.get((room, identity), 0.0)
        return min(MAX_ALLOWANCE, max(HEARTBEAT_TIMEOUT, learned))

    def forget_room(self, room: str) -> None:
        for key in [k for k in self._seen if k[0] == room]:
            del self._seen[key]
            self._longest_gap.pop(key, None)

    def forget(self, room: str, identity: str) -> None:
        self._seen.pop((room, identity), None)
        self._longest_gap.pop((room, identity), None)
