"""The agent's heartbeat: how the watchdog tells a live agent from a fresh ghost in seconds.

A SIGKILLed agent stays ACTIVE on the server for about 20 s, so the server's view cannot
reveal it. Each agent therefore sets a participant attribute to a new value every
`HEARTBEAT_INTERVAL` seconds. The watchdog notes, on its own clock, when it last saw that
value change; a value that has not changed for `HEARTBEAT_TIMEOUT` seconds marks a ghost.
Judging change on the watchdog's clock makes the two machines' clocks irrelevant.

Agents without a heartbeat are judged by the server's state alone, as before.

An agent on a loaded machine may beat late without being dead. The tracker remembers the
longest gap it has seen between an agent's changes and allows that agent twice as much
silence (at most `MAX_ALLOWANCE`), the way adaptive failure detectors (phi accrual) learn
each peer's rhythm: a healthy agent keeps the 1.5 s limit, one that once stalled for 1.2 s
gets 2.4 s instead of being replaced in the middle of a sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from livekit import rtc

logger = logging.getLogger(__name__)

HEARTBEAT_ATTRIBUTE = "room_recovery.heartbeat"
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 1.5
STALL_FACTOR = 2.0  # an agent may be silent this many times its longest gap seen so far
MAX_ALLOWANCE = 5.0  # but never longer: the server itself needs about 20 s


async def beat(participant: rtc.LocalParticipant, interval: float = HEARTBEAT_INTERVAL) -> None:
    """Set the heartbeat attribute to a new value every `interval` seconds, until cancelled."""
    count = 0
    while True:
        count += 1
        try:
            await participant.set_attributes({HEARTBEAT_ATTRIBUTE: f"{count}:{time.time():.3f}"})
        except Exception as exc:  # a slow or closing connection must not end the job
            logger.debug("heartbeat not sent: %s", exc)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def heartbeat(
    participant: rtc.LocalParticipant, interval: float = HEARTBEAT_INTERVAL
) -> AsyncIterator[None]:
    """Beat for as long as the block runs."""
    task = asyncio.create_task(beat(participant, interval), name="room-recovery-heartbeat")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class HeartbeatTracker:
    """The watchdog's memory: for each (room, identity), the last value, when it changed,
    and the longest gap between two changes seen so far."""

    _seen: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _longest_gap: dict[tuple[str, str], float] = field(default_factory=dict)

    def silence(
        self, room: str, identity: str, attributes: Mapping[str, str], now: float
    ) -> float | None:
        """Seconds since this participant's heartbeat last changed; None if it has none."""
        value = attributes.get(HEARTBEAT_ATTRIBUTE)
        if value is None:
            return None
        key = (room, identity)
        previous = self._seen.get(key)
        if previous is None or previous[0] != value:
            if previous is not None:
                gap = now - previous[1]
                self._longest_gap[key] = max(gap, self._longest_gap.get(key, 0.0))
            self._seen[key] = (value, now)
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
