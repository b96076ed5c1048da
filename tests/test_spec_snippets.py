"""The spec's documented snippets, run verbatim against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from livekit import api

from tests.support.livekit import ServerInfo, participant

ROOT = Path(__file__).resolve().parents[1]

# From ROOM_RECOVERY_GUIDE.md, "Manual Room Cleanup" and "Troubleshooting", unchanged.
LIST_ROOMS = """
import asyncio
from livekit_room_manager import RoomManager

async def main():
    manager = RoomManager()
    rooms = await manager.list_rooms()
    for room in rooms:
        print(f'{room.name}: {room.num_participants} participants')

asyncio.run(main())
"""
CLEAN_STALE = """
import asyncio
from livekit_room_manager import RoomManager

async def main():
    manager = RoomManager()
    await manager.cleanup_stale_rooms()

asyncio.run(main())
"""
DELETE_ROOM = """
import asyncio
from livekit_room_manager import RoomManager

async def main():
    manager = RoomManager()
    await manager.delete_room('stuck-room-name')

asyncio.run(main())
"""
FORCE_CLEANUP = """
import asyncio
from livekit_room_manager import RoomManager

async def main():
    m = RoomManager()
    await m.cleanup_room('stuck-room-name', force=True)

asyncio.run(main())
"""
DIAGNOSIS = """
import asyncio
from livekit_room_manager import RoomManager
async def main():
    m = RoomManager()
    rooms = await m.list_rooms()
    print(f'{len(rooms)} active rooms')
    for r in rooms:
        participants = await m.list_participants(r.name)
        print(f'  {r.name}: {len(participants)} participants')
asyncio.run(main())
"""
CRON_LINE = (
    "import asyncio; from livekit_room_manager import RoomManager; "
    "asyncio.run(RoomManager().cleanup_stale_rooms())"
)
STARTUP_HEREDOC = """import asyncio
from livekit_room_manager import RoomManager

async def cleanup():
    manager = RoomManager()
    await manager.cleanup_stale_rooms()

asyncio.run(cleanup())
"""


def run_python(
    server: ServerInfo, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
    environment |= server.env() | env
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "nclosed" not in result.stderr  # no "Unclosed client session" warnings


async def test_list_rooms_snippet_prints_each_room(
    livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "user"):
        result = run_python(livekit_server, "-c", LIST_ROOMS, ROOM_PREFIX=room_name)
    assert_clean(result)
    assert result.stdout.startswith(f"{room_name}: ")


async def test_diagnosis_snippet_counts_rooms_and_participants(
    livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "user"):
        result = run_python(livekit_server, "-c", DIAGNOSIS, ROOM_PREFIX=room_name)
    assert_clean(result)
    assert result.stdout.splitlines() == ["1 active rooms", f"  {room_name}: 1 participants"]


async def test_delete_and_force_cleanup_snippets_remove_the_stuck_room(
    livekit_server: ServerInfo,
) -> None:
    for snippet in (DELETE_ROOM, FORCE_CLEANUP):
        async with api.LiveKitAPI(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            await lkapi.room.create_room(api.CreateRoomRequest(name="stuck-room-name"))
            assert_clean(run_python(livekit_server, "-c", snippet))
            listed = await lkapi.room.list_rooms(api.ListRoomsRequest(names=["stuck-room-name"]))
            assert list(listed.rooms) == []


def test_cleanup_snippets_cron_line_and_startup_heredoc_run(
    livekit_server: ServerInfo, room_name: str
) -> None:
    scope = {"ROOM_PREFIX": room_name}
    assert_clean(run_python(livekit_server, "-c", CLEAN_STALE, **scope))
    assert_clean(run_python(livekit_server, "-c", CRON_LINE, **scope))
    assert_clean(run_python(livekit_server, "-", stdin=STARTUP_HEREDOC, **scope))


def test_the_specs_test_script_prints_its_four_lines(livekit_server: ServerInfo) -> None:
    result = run_python(livekit_server, "test_room_recovery.py", ROOM_PREFIX="test-recovery")
    assert_clean(result)
    assert result.stdout.splitlines() == [
        "✅ RoomManager initialized",
        "✅ Stale room cleanup complete",
        "✅ Room 'test-recovery-room' is clean and ready",
        "✅ Room Recovery System Test PASSED",
    ]


def test_the_specs_test_script_says_what_failed_when_the_server_is_down(
    livekit_server: ServerInfo,
) -> None:
    result = run_python(livekit_server, "test_room_recovery.py", LIVEKIT_URL="ws://127.0.0.1:9")
    assert result.returncode == 1
    assert "❌" in result.stdout and "ws://127.0.0.1:9" in result.stdout


def test_the_readmes_corrected_room_count_line_prints_the_count(
    livekit_server: ServerInfo, room_name: str
) -> None:
    line = (
        "import asyncio; from livekit_room_manager import RoomManager; "
        "print(f'{len(asyncio.run(RoomManager().list_rooms()))} rooms')"
    )
    result = run_python(livekit_server, "-c", line, ROOM_PREFIX=f"{room_name}-none")
    assert_clean(result)
    assert result.stdout == "0 rooms\n"
