"""RoomManager against a real livekit-server, with real participants."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings

import pytest
from livekit import api

from room_recovery.core.errors import (
    AuthenticationError,
    InvalidRoomNameError,
    OutOfScopeError,
    ServerUnreachableError,
)
from room_recovery.core.manager import RoomManager
from room_recovery.system.livekit_server import free_port
from tests.support.livekit import ServerInfo, eventually, participant


async def create_room(server: ServerInfo, name: str) -> None:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=name, empty_timeout=600))


def manager_for(server: ServerInfo, **options: object) -> RoomManager:
    return RoomManager(server.url, server.api_key, server.api_secret, **options)  # type: ignore[arg-type]


async def test_list_rooms_shows_name_age_and_participant_count(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "user1"):
        # The server refreshes num_participants at most every 5 s.
        async def counted() -> bool:
            rooms = {room.name: room for room in await manager.list_rooms()}
            return rooms[room_name].num_participants == 1

        await eventually(counted, timeout=8, interval=0.25, what="the participant count")
        [room] = [r for r in await manager.list_rooms() if r.name == room_name]
        assert 0 < time.time() - room.creation_time < 60


async def test_get_room_info_returns_none_for_a_missing_room(manager: RoomManager) -> None:
    assert await manager.get_room_info("no-such-room-here") is None


async def test_list_participants_of_a_missing_room_is_empty(manager: RoomManager) -> None:
    assert await manager.list_participants("no-such-room-here") == []


async def test_deleting_a_room_that_is_gone_is_not_an_error(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str
) -> None:
    await create_room(livekit_server, room_name)
    assert await manager.delete_room(room_name) is True
    assert await manager.delete_room(room_name) is False
    assert await manager.get_room_info(room_name) is None


async def test_removing_a_participant_who_left_is_not_an_error(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "stays"):
        async with participant(livekit_server, room_name, "leaves"):
            assert await manager.remove_participant(room_name, "leaves") is True
        assert await manager.remove_participant(room_name, "leaves") is False
        identities = [p.identity for p in await manager.list_participants(room_name)]
        assert identities == ["stays"]


async def test_cleanup_stale_rooms_deletes_old_empty_rooms_and_keeps_busy_ones(
    livekit_server: ServerInfo, room_name: str
) -> None:
    empty, busy = f"{room_name}-empty", f"{room_name}-busy"
    await create_room(livekit_server, empty)
    async with participant(livekit_server, busy, "user", publish=True):
        async with manager_for(
            livekit_server, stale_room_timeout=0.001, room_prefix=room_name
        ) as manager:
            await eventually(lambda: _has_tracks(manager, busy), what="the track to publish")
            report = await manager.cleanup_stale_rooms()
            assert [d.room for d in report.deleted] == [empty]
            assert await manager.get_room_info(empty) is None
            assert [p.identity for p in await manager.list_participants(busy)] == ["user"]


async def _has_tracks(manager: RoomManager, room: str) -> bool:
    return any(p.tracks for p in await manager.list_participants(room))


async def test_cleanup_stale_rooms_leaves_young_rooms_alone(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await create_room(livekit_server, room_name)
    async with manager_for(livekit_server, room_prefix=room_name) as manager:
        report = await manager.cleanup_stale_rooms()
        assert report.deleted == []
        assert await manager.get_room_info(room_name) is not None
        await manager.delete_room(room_name)


async def test_dry_run_reports_without_deleting(livekit_server: ServerInfo, room_name: str) -> None:
    await create_room(livekit_server, room_name)
    async with manager_for(livekit_server, stale_room_timeout=0.001, room_prefix=room_name) as m:
        report = await m.cleanup_stale_rooms(dry_run=True)
        assert [d.room for d in report.deleted] == [room_name]
        assert await m.get_room_info(room_name) is not None
        await m.delete_room(room_name)


async def test_cleanup_never_touches_rooms_outside_room_prefix(
    livekit_server: ServerInfo, room_name: str
) -> None:
    mine, theirs = f"{room_name}-mine", f"other-app-{room_name}"
    await create_room(livekit_server, mine)
    await create_room(livekit_server, theirs)
    async with manager_for(
        livekit_server, stale_room_timeout=0.001, room_prefix=f"{room_name}-"
    ) as manager:
        report = await manager.cleanup_stale_rooms()
        assert [d.room for d in report.deleted] == [mine]
        assert theirs not in [r.name for r in await manager.list_rooms()]
        with pytest.raises(OutOfScopeError, match="other-app"):
            await manager.delete_room(theirs)
    async with manager_for(livekit_server) as unscoped:
        assert await unscoped.get_room_info(theirs) is not None
        await unscoped.delete_room(theirs)


async def test_a_ghost_left_by_a_killed_process_is_removed_once_stale(
    livekit_server: ServerInfo, room_name: str, spawn_participant: type
) -> None:
    ghost = spawn_participant(room_name, "ghost-agent", kind="agent")
    await ghost.ready()
    ghost.kill()  # SIGKILL: the server still shows it ACTIVE for about 20 s
    async with manager_for(
        livekit_server, room_prefix=room_name, agent_alone_grace=0.001
    ) as manager:
        assert [p.identity for p in await manager.list_participants(room_name)] == ["ghost-agent"]
        report = await manager.cleanup_stale_rooms()
        assert [d.room for d in report.deleted] == [room_name]
        assert "agent left alone" in report.deleted[0].reason
        assert await manager.get_room_info(room_name) is None


async def test_ensure_clean_room_keeps_the_person_who_triggered_the_job(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str, spawn_participant: type
) -> None:
    ghost = spawn_participant(room_name, "agent-old", kind="agent")
    await ghost.ready()
    ghost.kill()
    async with participant(livekit_server, room_name, "user1", publish=True):
        report = await manager.ensure_clean_room(room_name, keep="user1")
        assert [r.identity for r in report.removed] == ["agent-old"]
        assert [k.identity for k in report.kept] == ["user1"]
        assert [p.identity for p in await manager.list_participants(room_name)] == ["user1"]


async def test_ensure_clean_room_on_a_room_that_does_not_exist_yet_is_clean(
    manager: RoomManager,
) -> None:
    report = await manager.ensure_clean_room("not-created-yet")
    assert report.ok and not report.changed_anything


async def test_ensure_clean_room_logs_the_specs_lines(
    manager: RoomManager,
    livekit_server: ServerInfo,
    room_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="room_recovery")
    # an agent left over from an earlier session: it joined before the person
    async with (
        participant(livekit_server, room_name, "agent-x", kind="agent"),
        participant(livekit_server, room_name, "user"),
    ):
        await manager.ensure_clean_room(room_name, keep=["user"])
    messages = [r.getMessage() for r in caplog.records]
    assert f"🧹 Ensuring room {room_name} is clean before joining..." in messages
    assert f"Room {room_name} has 1 existing participant(s), cleaning them out..." in messages
    assert f"Removed participant agent-x from room {room_name}" in messages
    assert f"✅ Room {room_name} successfully cleaned" in messages


async def test_cleanup_room_force_deletes_the_room(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "stuck") as lk_room:
        disconnected = asyncio.Event()
        lk_room.on("disconnected", lambda *_: disconnected.set())
        report = await manager.cleanup_room(room_name, force=True)
        assert [d.room for d in report.deleted] == [room_name]
        await asyncio.wait_for(disconnected.wait(), 10)


async def test_cleanup_room_without_force_keeps_live_participants(
    manager: RoomManager, livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "user", publish=True):
        report = await manager.cleanup_room(room_name)
        assert report.removed == [] and report.deleted == []
        assert [k.identity for k in report.kept] == ["user"]


async def test_an_unreachable_server_is_named_in_the_error() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachableError, match=url):
        await RoomManager(url, "k", "s").list_rooms()


async def test_a_wrong_secret_is_reported_as_rejected(livekit_server: ServerInfo) -> None:
    manager = RoomManager(livekit_server.url, livekit_server.api_key, "wrong-secret")
    with pytest.raises(AuthenticationError, match="LIVEKIT_API_SECRET"):
        await manager.list_rooms()


async def test_a_room_name_livekit_would_refuse_is_rejected_before_any_call(
    manager: RoomManager,
) -> None:
    with pytest.raises(InvalidRoomNameError, match="256 bytes"):
        await manager.delete_room("x" * 300)
    assert manager.api_calls == 0


async def test_used_without_closing_as_the_spec_does_it_leaks_no_session(
    livekit_server: ServerInfo,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = manager_for(livekit_server)
        await manager.list_rooms()
        await manager.cleanup_stale_rooms(dry_run=True)
        del manager
        gc.collect()
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []
