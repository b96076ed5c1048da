"""Which rooms the watchdog looks at closely, and how often it glances at the others.

The watchdog's cost must follow trouble, not the number of rooms. A room is looked at
closely (every poll, a quarter of a second) only while something may need doing in it:

* `waiting`: a person is there without a live agent;
* `recovering`: a ghost was just removed, or a replacement is on its way;
* `starting`: a linked worker reports an agent for the room that has not joined yet;
* `in_doubt`: an agent's liveness rests on its heartbeat (no worker link vouches for it),
  so the heartbeat must be read to notice its silence;
* `settling`: something happened in the room a moment ago (a webhook, a link message, a
  changed participant count in the room listing), until `settle` seconds have passed.

Every other room is quiet: a person with a live agent the worker link vouches for (or one
without heartbeat, which the server's own view covers), or nobody at all. A quiet room
costs nothing per second; webhooks, link messages and the room listing wake it. As a net
for a lost webhook, quiet rooms are glanced at again, oldest first, at most
`revisit_rate` rooms a second in all (`Pacer`), and none sooner than `revisit_after`.

Pure: the caller passes the time and what it saw.
"""

from __future__ import annotations

from dataclasses import dataclass

WAITING = "waiting"
RECOVERING = "recovering"
STARTING = "starting"
IN_DOUBT = "in_doubt"
SETTLING = "settling"


@dataclass(frozen=True)
class AttentionPolicy:
    """How closely the watchdog looks at rooms, in seconds and looks per second."""

    settle: float = 1.0  # after an event in a room, look closely this long
    revisit_after: float = 10.0  # a quiet room is glanced at again no sooner than this...
    revisit_rate: float = 2.0  # ...and at most this many quiet rooms a second in all
    watch_all: bool = False  # look at every room every poll (the design before issue 14)


@dataclass(frozen=True)
class RoomSignals:
    """What the last look at a room found, for `close_reason`."""

    waiting: bool = False
    recovering: bool = False
    starting: bool = False
    in_doubt: bool = False


def close_reason(
    signals: RoomSignals, last_event: float, now: float, policy: AttentionPolicy
) -> str | None:
    """Why the room must be looked at closely now, or None when it is quiet."""
    if signals.waiting:
        return WAITING
    if signals.recovering:
        return RECOVERING
    if signals.starting:
        return STARTING
    if signals.in_doubt:
        return IN_DOUBT
    if now - last_event < policy.settle:
        return SETTLING
    return None


class Pacer:
    """A token bucket: at most `rate` actions a second, in bursts of at most `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate < 0 or burst < 0:
            raise ValueError("a pacer's rate and burst cannot be negative")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, wanted: int, now: float) -> int:
        """How many of `wanted` actions may happen now (they are counted as done)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        granted = max(0, min(wanted, int(self._tokens)))
        self._tokens -= granted
        return granted


def next_page(names: list[str], after: str, size: int) -> tuple[list[str], str]:
    """The next `size` of the sorted `names` after `after`, wrapping around, and where the
    page after it starts (`""`: from the beginning). Each name comes once per round."""
    if size <= 0 or len(names) <= size:
        return names, ""
    later = [name for name in names if name > after]
    page = (later + [name for name in names if name <= after])[:size]
    return page, page[-1]
