"""The agent's heartbeat: how the watchdog tells a live agent from a fresh ghost in seconds.

A SIGKILLed agent stays ACTIVE on the server for about 20 s, so the server's view cannot
reveal it. Each agent therefore sets a participant attribute to a new value every
`HEARTBEAT_INTERVAL` seconds. The watchdog notes, on its own clock, when it last saw that
value change; a value that has not changed for `HEARTBEAT_TIMEOUT` seconds marks a ghost.
Judging change on the watchdog's clock makes the two machines' clocks irrelevant.

Agents without a heartbeat are judged by the server's state alone, as before.
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
    """The watchdog's memory: for each (room, identity), the last value and when it changed."""

    _seen: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

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
            self._seen[key] = (value, now)
            return 0.0
        return now - previous[1]

    def forget_room(self, room: str) -> None:
        for key in [k for k in self._seen if k[0] == room]:
            del self._seen[key]

    def forget(self, room: str, identity: str) -> None:
        self._seen.pop((room, identity), None)
