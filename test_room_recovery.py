#!/usr/bin/env python3
"""The spec's check: `python test_room_recovery.py` against the running LiveKit server.

Uses LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET from the environment or .env.
Prints the spec's four lines when all is well; otherwise one line saying what failed
and exits 1.
"""

from __future__ import annotations

import asyncio
import sys

from room_recovery import RoomManager, RoomRecoveryError

TEST_ROOM = "test-recovery-room"


async def check() -> None:
    async with RoomManager() as manager:
        print("✅ RoomManager initialized")
        await manager.cleanup_stale_rooms()
        print("✅ Stale room cleanup complete")
        report = await manager.ensure_clean_room(TEST_ROOM)
        if not report.ok:
            raise RoomRecoveryError(f"room {TEST_ROOM!r} could not be cleaned: {report.failed}")
        print(f"✅ Room '{TEST_ROOM}' is clean and ready")
    print("✅ Room Recovery System Test PASSED")


def main() -> int:
    try:
        asyncio.run(check())
    except RoomRecoveryError as exc:
        print(f"❌ Room Recovery System Test FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
