"""A new agent is shown to the person at once, not on LiveKit's next 3-second tick.

livekit-server 1.13.5 tells the others in a room about a participant that has published
nothing (no track, no data track) only in a batch sent every 3 s (`subscriberUpdateInterval`
in its `pkg/rtc/room.go`): a silent agent that joined 0.2 s after a tick is seen 2.8 s
later. An update of the participant's attributes goes out at once and carries the queued
join with it. So when a job starts, the worker monitor waits (polling, bounded) for the
job's participant to become ACTIVE and, if it still publishes nothing, sets the attribute
`ANNOUNCED_ATTRIBUTE` on it through the server API. An agent that publishes (its voice)
or sets attributes itself (the guard's heartbeat) is announced by LiveKit already and costs
one listing. The user's entrypoint needs no code for this.
"""

from __future__ import annotations

import asyncio
import logging
import time

from livekit import api

from ..core.manager import RoomManager
from ..core.settings import process_settings

logger = logging.getLogger(__name__)

ANNOUNCED_ATTRIBUTE = "room_recovery.announced"
ANNOUNCE_WAIT = 15.0  # seconds a job's participant has to join before we stop looking
ANNOUNCE_EVERY = 0.1  # seconds between two listings while it joins


def needs_announcing(info: api.ParticipantInfo) -> bool:
    """True for an ACTIVE participant that LiveKit would announce only on its next tick."""
    return info.state == api.ParticipantInfo.State.ACTIVE and not info.is_publisher


def announcing() -> bool:
    return process_settings().room_recovery_announce


async def announce_when_joined(
    manager: RoomManager,
    room: str,
    identity: str,
    wait: float = ANNOUNCE_WAIT,
    every: float = ANNOUNCE_EVERY,
) -> str:
    """Wait for `identity` to be ACTIVE in `room`, then make LiveKit announce it now.

    Returns the sid of the participant it saw joining (announced by us, or already by
    LiveKit), or "" if it never joined in `wait` seconds, or left. Raises
    RoomRecoveryError when the server cannot be asked.
    """
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        infos = {i.identity: i for i in await manager.list_participants(room)}
        info = infos.get(identity)
        if info is not None and info.state == api.ParticipantInfo.State.ACTIVE:
            if needs_announcing(info):
                stamp = f"{time.time():.3f}"
                await manager.set_attributes(room, identity, {ANNOUNCED_ATTRIBUTE: stamp})
            return info.sid
        if info is not None and info.state == api.ParticipantInfo.State.DISCONNECTED:
            return ""
        await asyncio.sleep(every)
    return ""
