"""The actions of a cleanup, each outcome recorded in its report instead of raised.

A removal or deletion that the server refuses, or that stalls, is a `Failure` in the
report; the cleanup goes on with the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from livekit import api

from ..rules.model import Removal
from .errors import RoomRecoveryError
from .report import CleanupReport, DeletedRoom, Failure, RemovedParticipant
from .transport import Transport

logger = logging.getLogger(__name__)


async def remove_into(
    transport: Transport,
    report: CleanupReport,
    lkapi: api.LiveKitAPI,
    room_name: str,
    removals: Sequence[Removal],
) -> None:
    """Remove participants concurrently, recording each outcome in the report.

    A removal that names a sid removes that participant only: one that has left, or whose
    identity a newer participant took, is not removed (and not reported).
    """

    async def remove(removal: Removal) -> None:
        if not report.dry_run:
            try:
                if removal.sid:
                    found = await transport.remove_exact(
                        lkapi, room_name, removal.identity, removal.sid
                    )
                    if not found:
                        return
                else:
                    await transport.remove(lkapi, room_name, removal.identity)
            except RoomRecoveryError as exc:
                report.failed.append(Failure(room_name, removal.identity, str(exc)))
                logger.warning(
                    "Could not remove participant %s from room %s: %s",
                    removal.identity,
                    room_name,
                    exc,
                )
                return
            logger.info(
                "Removed participant %s from room %s",
                removal.identity,
                room_name,
                extra={
                    "room": room_name,
                    "identity": removal.identity,
                    "reason": removal.reason,
                },
            )
        report.removed.append(RemovedParticipant(room_name, removal.identity, removal.reason))

    async with asyncio.TaskGroup() as group:
        for removal in removals:
            group.create_task(remove(removal))


async def delete_into(
    transport: Transport,
    report: CleanupReport,
    lkapi: api.LiveKitAPI,
    room_name: str,
    reason: str,
) -> None:
    """Delete a room, recording the outcome in the report (nothing if it was gone)."""
    if not report.dry_run:
        try:
            existed = await transport.delete(lkapi, room_name)
        except RoomRecoveryError as exc:
            report.failed.append(Failure(room_name, None, str(exc)))
            logger.warning("Could not delete room %s: %s", room_name, exc)
            return
        if not existed:
            return
        logger.info(
            "🗑️ Deleted room %s (%s)",
            room_name,
            reason,
            extra={"room": room_name, "reason": reason},
        )
    report.deleted.append(DeletedRoom(room_name, reason))
