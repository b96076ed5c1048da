"""Pre-join cleanup on real workers: the agent joins, the person stays, ghosts go first."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from livekit.protocol import agent as agent_proto

from room_recovery.agent.hook import (
    agent_identity,
    dispatch_metadata,
    make_request_handler,
    person_from_metadata,
)
from room_recovery.core.errors import ConfigurationError
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import load_settings
from room_recovery.core.views import participant_view
from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE
from room_recovery.protocol.messages import room_cleanup
from room_recovery.rules.staleness import agent_death
from tests.support.livekit import ServerInfo, eventually, participant
from tests.support.worker import WorkerProcess, person

# Everyone without a track looks stale at once to this worker (publishing nothing counts,
# by the opt-in ROOM_STALE_SILENT): only `keep` can save them.
STALE_AT_ONCE = {"ROOM_STALE_TIMEOUT": "0.001", "ROOM_STALE_SILENT": "true"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def agent_name(
    livekit_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A demo worker registered under a name of its own, for this module."""
    name = unique("hook-agent")
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    worker = WorkerProcess.demo(livekit_server, name, log, env=STALE_AT_ONCE)
    try:
        await worker.registered()
        yield name
    finally:
        worker.close()


async def server_identities(manager: RoomManager, room: str) -> set[str]:
    return {p.identity for p in await manager.list_participants(room)}


# --- metadata --------------------------------------------------------------------------


def test_the_person_is_read_from_the_dispatch_metadata() -> None:
    assert person_from_metadata(dispatch_metadata("user1")) == "user1"
    for missing in ("", "not json", "[]", '{"person": 3}', '{"person": ""}', '{"other": "x"}'):
        assert person_from_metadata(missing) is None


def test_a_cleanup_timeout_beyond_livekits_deadline_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="between 0 and 3"):
        make_request_handler(timeout=3.5)


# --- the handler on its own, with a server that misbehaves -----------------------------


class FakeRequest:
    """What the handler uses of a livekit-agents JobRequest."""

    def __init__(self, room: str, metadata: str = "") -> None:
        self.room = api.Room(name=room)
        self.job = agent_proto.Job(metadata=metadata)
        self.agent_name = "test-agent"
        self.accepted: dict[str, Any] | None = None

    async def accept(self, **arguments: Any) -> None:
        self.accepted = arguments


async def test_a_silent_server_delays_the_join_by_the_timeout_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as black_hole:  # accepts connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen()
        url = f"ws://127.0.0.1:{black_hole.getsockname()[1]}"
        handler = make_request_handler(load_settings(livekit_url=url), timeout=0.3)
        request = FakeRequest("room-x", dispatch_metadata("user1"))
        started = time.monotonic()
        await handler(request)  # type: ignore[arg-type]
        assert time.monotonic() - started < 0.6
    assert request.accepted == {"identity": "agent-room-x", "name": "test-agent"}
    assert "Room cleanup failed: no answer within 0.3s" in caplog.text


async def test_an_unreachable_server_still_lets_the_agent_join(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        handler = make_request_handler(load_settings(livekit_url=url))
        request = FakeRequest("room-y")
        await handler(request)  # type: ignore[arg-type]
    assert request.accepted is not None
    assert "Room cleanup failed" in caplog.text and "joining room room-y anyway" in caplog.text


# --- real worker, real server ----------------------------------------------------------


async def test_a_person_joins_and_the_agent_joins_them(
    livekit_server: ServerInfo, agent_name: str, room_name: str, manager: RoomManager
) -> None:
    async with person(livekit_server, room_name, "user1", agent_name) as user:
        agent = await user.wait_for_agent()
        assert agent.identity == agent_identity(room_name)
        assert await server_identities(manager, room_name) == {"user1", agent.identity}


async def test_the_person_the_job_is_for_is_never_removed_even_if_they_look_stale(
    livekit_server: ServerInfo, agent_name: str, room_name: str, manager: RoomManager
) -> None:
    # The worker counts anyone without a track as stale at once: only `keep` protects
    # the person, while the lurker without a track (not the job's person) is removed.
    async with participant(livekit_server, room_name, "lurker") as lurker:
        lurker_left = asyncio.Event()
        lurker.on("disconnected", lambda *_: lurker_left.set())
        async with person(livekit_server, room_name, "user1") as user:
            await manager.dispatch_agent(room_name, agent_name, dispatch_metadata("user1"))
            agent = await user.wait_for_agent()
            await asyncio.wait_for(lurker_left.wait(), 5)
            assert user.room.isconnected()
            assert await server_identities(manager, room_name) == {"user1", agent.identity}


async def test_without_metadata_live_people_are_kept(
    livekit_server: ServerInfo, agent_name: str, room_name: str, manager: RoomManager
) -> None:
    # the person publishes first, then the agent is dispatched with no metadata: a person
    # whose track is not out yet would look stale to this worker, and that is not the point
    async with person(livekit_server, room_name, "user1", publish=True) as user:
        await manager.dispatch_agent(room_name, agent_name, metadata="")
        agent = await user.wait_for_agent()
        assert user.room.isconnected()
        assert await server_identities(manager, room_name) == {"user1", agent.identity}


async def test_a_ghost_agent_left_by_a_killed_worker_is_removed_before_the_new_agent_joins(
    livekit_server: ServerInfo,
    room_name: str,
    manager: RoomManager,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    name = unique("ghost-agent")
    crashed = WorkerProcess.demo(livekit_server, name, tmp_path / "crashed.log")
    workers.append(crashed)
    await crashed.registered()
    async with person(livekit_server, room_name, "user1", name) as user:
        ghost = await user.wait_for_agent()
        # it is shown at once (announced), perhaps before its first beat: a ghost is an agent
        # whose heartbeat stopped, so let it beat once
        await user.wait_for("its heartbeat", lambda: HEARTBEAT_ATTRIBUTE in ghost.attributes, 5)
        crashed.kill()  # worker and job process SIGKILLed: the agent stays as a ghost
        assert agent_identity(room_name) in await server_identities(manager, room_name)

        fresh = WorkerProcess.demo(livekit_server, name, tmp_path / "fresh.log")
        workers.append(fresh)
        await fresh.registered()

        async def shown_dead() -> bool:  # its last beat older than the hook's threshold
            views = [participant_view(i) for i in await manager.list_participants(room_name)]
            found = [v for v in views if v.identity == ghost.identity]
            return bool(found) and agent_death(found[0], time.time(), manager.policy) is not None

        await eventually(shown_dead, what="the ghost's heartbeat to go silent")
        await manager.dispatch_agent(room_name, name, dispatch_metadata("user1"))
        await user.wait_for(
            "a new agent", lambda: any(a.sid != ghost.sid for a in user.agents()), timeout=10
        )
        [new_agent] = user.agents()
        left = user.events.index(("left", ghost.identity, ghost.sid))
        joined = user.events.index(("joined", new_agent.identity, new_agent.sid))
        assert left < joined, user.events
        await fresh.wait_for_log(f"Removed participant {ghost.identity} from room {room_name}")
        assert await server_identities(manager, room_name) == {"user1", new_agent.identity}


async def test_nothing_joins_when_no_worker_serves_the_agent(
    livekit_server: ServerInfo, room_name: str, manager: RoomManager
) -> None:
    nobody = unique("nobody")
    async with person(livekit_server, room_name, "user1", nobody) as user:
        with pytest.raises(AssertionError, match="timed out"):
            await user.wait_for_agent(timeout=3)
        assert await server_identities(manager, room_name) == {"user1"}


async def test_an_agent_written_with_worker_options_adopts_the_hook_with_one_line(
    livekit_server: ServerInfo,
    room_name: str,
    manager: RoomManager,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    name = unique("legacy-agent")
    legacy = WorkerProcess(
        livekit_server,
        # -P: the script's folder must not shadow the livekit package (tests/support/livekit.py)
        ["-P", "tests/support/legacy_agent.py", "start"],
        tmp_path / "legacy.log",
        env={"AGENT_NAME": name, "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "0"},
        stdout_to_log=True,  # cli.run_app logs JSON lines to stdout
    )
    workers.append(legacy)
    await legacy.wait_for_log("registered worker", timeout=40)
    async with person(livekit_server, room_name, "user1", name) as user:
        agent = await user.wait_for_agent()
        assert agent.identity == agent_identity(room_name)
        await legacy.wait_for_log(f"Room {room_name} successfully cleaned")
        assert "user1" in await server_identities(manager, room_name)
        await user.send(room_cleanup().to_bytes())  # and its one-line guard ends the job
        await user.wait_for_no_agent(timeout=10)
