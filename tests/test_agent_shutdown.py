"""Graceful shutdown on a real worker: room_cleanup, forged messages, a closed tab."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from livekit import api

from room_recovery.agent.guard import GuardOptions, SessionGuard
from room_recovery.core.manager import RoomManager
from room_recovery.protocol.messages import room_cleanup
from tests.support.livekit import ServerInfo, eventually
from tests.support.worker import WorkerProcess, person

GRACE = 1.0


@pytest.fixture(scope="module")
async def worker(
    livekit_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """A demo worker for this module, that leaves 1 s after the person left."""
    name = f"guard-agent-{uuid.uuid4().hex[:8]}"
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    process = WorkerProcess.demo(livekit_server, name, log, "--grace", str(GRACE))
    try:
        await process.registered()
        yield process
    finally:
        process.close()


async def room_is_gone(manager: RoomManager, room: str) -> None:
    async def gone() -> bool:
        return await manager.get_room_info(room) is None

    await eventually(gone, timeout=10, what=f"room {room} to be deleted")


async def test_room_cleanup_makes_the_agent_leave_and_the_room_disappear(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        await user.wait_for_guarded_agent()
        await user.send(room_cleanup().to_bytes())
        await user.wait_for_no_agent(timeout=10)
    await room_is_gone(manager, room_name)
    await worker.wait_for_log(f"user1 asked to clean up room {room_name}")


async def test_a_room_cleanup_from_an_agent_is_ignored(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        await user.wait_for_guarded_agent()
        async with person(livekit_server, room_name, "impostor", kind="agent") as impostor:
            await worker.wait_for_log(f"agent impostor joined room {room_name}")
            await impostor.send(room_cleanup().to_bytes())
            await worker.wait_for_log(f"Ignoring room_cleanup in room {room_name} from agent")
        assert user.agents() and await manager.get_room_info(room_name) is not None


async def until_logged(
    worker: WorkerProcess, send: Callable[[], Awaitable[None]], line: str, tries: int = 5
) -> None:
    """Send a message the agent must ignore until its log says it did. Sent once, it was
    once never logged (1 full run in 5); the likely cause, not proven, is a packet sent just
    as the agent joined, before its data channel was open: the heartbeat that says its
    guard listens travels by signalling, not by that channel. Ignoring is idempotent, so
    sending again changes nothing but delivery."""
    for attempt in range(tries):
        await send()
        try:
            await worker.wait_for_log(line, timeout=3)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


async def test_a_room_cleanup_sent_by_the_server_api_is_ignored(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        await user.wait_for_guarded_agent()
        async with api.LiveKitAPI(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:

            async def send() -> None:
                request = api.SendDataRequest(
                    room=room_name, data=room_cleanup().to_bytes(), kind=api.DataPacket.RELIABLE
                )
                await lkapi.room.send_data(request)

            await until_logged(
                worker, send, f"Ignoring room_cleanup in room {room_name} from no participant"
            )
        assert user.agents() and await manager.get_room_info(room_name) is not None


async def test_a_room_cleanup_naming_another_room_is_ignored(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        await user.wait_for_guarded_agent()

        async def send() -> None:
            await user.send(room_cleanup(room="someone-elses-room").to_bytes())

        await until_logged(
            worker, send, f"Ignoring room_cleanup in room {room_name} naming another"
        )
        assert user.agents() and await manager.get_room_info(room_name) is not None


async def test_a_room_cleanup_in_another_room_leaves_this_one_alone(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    other_room = f"{room_name}-other"
    async with (
        person(livekit_server, room_name, "user1", worker.agent_name) as user,
        person(livekit_server, other_room, "user2", worker.agent_name) as other,
    ):
        await user.wait_for_guarded_agent()
        await other.wait_for_guarded_agent()
        await other.send(room_cleanup().to_bytes())
        await other.wait_for_no_agent(timeout=10)
        await room_is_gone(manager, other_room)
        assert user.agents() and await manager.get_room_info(room_name) is not None


MALFORMED = [
    b"",
    b"\xff\xfe not utf-8",
    b"not json",
    b"[1, 2, 3]",
    b'"room_cleanup"',
    b'{"type": "room_cleanup"}',
    b'{"type": "room_cleanup", "timestamp": "yesterday"}',
    b'{"type": "room_cleanup", "timestamp": 1700000000}',
    b'{"type": "room_cleanup", "timestamp": "2025-01-31T12:00:00Z", "room": 7}',
    b'{"type": "self_destruct"}',
    b'{"type": "agent_selection", "agent_id": ""}',
    json.dumps({"type": "room_cleanup", "pad": "x" * 5000}).encode(),
]


async def test_malformed_messages_change_nothing(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        agent = await user.wait_for_guarded_agent()
        for payload in MALFORMED:
            if payload:  # an empty packet cannot be published; it still is malformed
                await user.send(payload)
        await worker.wait_for_log(
            f"Ignoring a malformed data message in room {room_name}", count=len(MALFORMED) - 1
        )
        await user.send(b"a topic that is not ours", topic="lk-chat-topic")
        assert user.agents() == [agent]
        assert await manager.get_room_info(room_name) is not None
        # and the agent still listens: a genuine goodbye still works
        await user.send(room_cleanup().to_bytes())
        await user.wait_for_no_agent(timeout=10)
    await room_is_gone(manager, room_name)


async def test_a_person_who_leaves_without_a_message_is_followed_by_the_agent_and_the_room(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        await user.wait_for_guarded_agent()
    # the tab closed: no room_cleanup; the agent leaves after GRACE, the room goes with it
    await worker.wait_for_log(f"user1 left room {room_name} without saying goodbye")
    await room_is_gone(manager, room_name)


async def test_the_agent_stays_when_the_person_comes_back_within_the_grace_period(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        agent = await user.wait_for_guarded_agent()
    async with person(livekit_server, room_name, "user1") as back:
        await worker.wait_for_log(f"participant user1 joined room {room_name}; staying")
        await asyncio.sleep(GRACE * 1.5)  # proving an absence takes time: the timer is off
        assert [a.sid for a in back.agents()] == [agent.sid]
        await back.send(room_cleanup().to_bytes())
        await back.wait_for_no_agent(timeout=10)


# --- a room LiveKit made anew under the same name ---------------------------------------------


class RoomOfSid:
    """The few parts of an rtc.Room the guard reads: a name, a sid, nobody in it."""

    def __init__(self, sid: str) -> None:
        self.name, self._sid = "voice-1", sid
        self.remote_participants: dict[str, object] = {}

    @property
    async def sid(self) -> str:
        return self._sid

    def on(self, *_: object) -> None: ...

    def off(self, *_: object) -> None: ...


def job_context(sent_to: str, joined: str) -> SimpleNamespace:
    ctx = SimpleNamespace(
        job=SimpleNamespace(room=SimpleNamespace(sid=sent_to)),
        room=RoomOfSid(joined),
        shutdowns=[],
        add_shutdown_callback=lambda _: None,
    )
    ctx.shutdown = ctx.shutdowns.append
    return ctx


async def test_an_agent_that_joined_a_room_made_anew_under_its_name_leaves_at_once() -> None:
    # two DeleteRoom calls at once (a closing tab's leave, its agent's own cleanup): LiveKit
    # made the room again for a moment and sent its agent, which then joined an empty new one
    options = GuardOptions(heartbeat=False, delete_room=False)
    anew = SessionGuard(job_context("RM_sent", "RM_other"), options)  # type: ignore[arg-type]
    anew.start()
    await asyncio.wait_for(anew.ended.wait(), 2)
    assert anew.reason == "the room it was sent to is gone"
    same = SessionGuard(job_context("RM_sent", "RM_sent"), options)  # type: ignore[arg-type]
    same.start()
    assert same._made_anew is not None
    await same._made_anew
    assert not same.ended.is_set()  # its own room: it waits for its person as always
    same._cancel_timer()
