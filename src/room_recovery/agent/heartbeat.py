"""The agent's side of the heartbeat: set the attribute to a new value every 0.5 s.

The format is `protocol.heartbeat`; the watchdog's judgement is `rules.liveness`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from livekit import rtc

from ..core.tasks import cancel_and_wait
from ..protocol.heartbeat import HEARTBEAT_ATTRIBUTE, HEARTBEAT_INTERVAL, heartbeat_value

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 1.0  # a beat that cannot be sent in this long is skipped, never waited for


async def beat(participant: rtc.LocalParticipant, interval: float = HEARTBEAT_INTERVAL) -> None:
    """Set the heartbeat attribute to a new value every `interval` seconds, until cancelled."""
    count = 0
    while True:
        count += 1
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await participant.set_attributes(
                    {HEARTBEAT_ATTRIBUTE: heartbeat_value(count, time.time())}
                )
        except Exception as exc:  # a slow or closing connection must not end the job
            logger.debug("heartbeat not sent: %s", exc or type(exc).__name__)
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
        await cancel_and_wait(task)
