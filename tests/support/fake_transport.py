"""An in-memory LiveKit server behind our own `Transport`'s methods, for unit tests.

`FakeTransport` is a `Transport` over dicts: the same methods, livekit model types, answers
for a missing room or participant ([], None, False), `before_change` and `calls`. It also
records each call (`log`, `called`, `changes`), fails one when told (`fail`), lets the world
move right before one (`before`), and shows what changed (`snapshot`, `removed`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from copy import deepcopy
from typing import Any, NamedTuple, TypeVar, cast

from livekit import api
from livekit.protocol import agent_dispatch, models
from livekit.protocol.agent import JobStatus

from room_recovery.core.errors import LiveKitAPIError, ServerUnreachableError
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings
from room_recovery.core.transport import Transport

T = TypeVar("T")
P = models.ParticipantInfo
AGENT, STANDARD = P.Kind.AGENT, P.Kind.STANDARD
JOINING, JOINED, ACTIVE, DISCONNECTED = P.JOINING, P.JOINED, P.ACTIVE, P.DISCONNECTED
CHANGES = {"remove", "remove_exact", "delete", "dispatch", "delete_dispatch", "create_room"}
CHANGES |= {"update_metadata", "update_attributes"}
LK = api.LiveKitAPI
URL = "ws://fake-livekit.invalid:7880"
NO_API = cast(LK, object())  # what `session()` yields: the fake needs none


def fake_settings(room_prefix: str = "", stale_timeout: float = 300.0) -> Settings:
    """Settings from these values alone (no environment, no .env)."""
    alone: dict[str, Any] = {"_env_file": None, "room_stale_silent": False}
    return Settings(
        livekit_url=URL, room_prefix=room_prefix, room_stale_timeout=stale_timeout, **alone
    )


def manager_on(fake: FakeTransport, **options: Any) -> RoomManager:
    """A RoomManager over `fake`, with its settings (`options`: RoomManager's)."""
    return RoomManager(settings=fake.settings, transport=fake, **options)


def timeout(transport: Transport) -> ServerUnreachableError:
    """The error the real Transport raises when the server does not answer in time."""
    detail = f"no answer within {transport.request_timeout:g} s"
    return ServerUnreachableError(transport.settings.livekit_url, detail)


class Call(NamedTuple):
    name: str  # the Transport method
    args: tuple[Any, ...]  # its arguments after `lkapi`, keyword ones last


class FakeTransport(Transport):
    """Rooms, participants (by identity) and dispatches in memory; see the module."""

    def __init__(
        self, settings: Settings | None = None, before_change: Callable[[], None] | None = None
    ) -> None:
        super().__init__(settings or fake_settings(), before_change=before_change)
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = defaultdict(dict)
        self.dispatches: dict[str, list[agent_dispatch.AgentDispatch]] = defaultdict(list)
        self.log: list[Call] = []
        self.removed: list[tuple[str, str, str]] = []  # (room, identity, sid) really removed
        self.ghosts: dict[str, set[str]] = defaultdict(set)  # listed, but no node answers
        self._failures: dict[str, list[Exception]] = defaultdict(list)
        self._before: dict[str, list[Callable[[], object]]] = defaultdict(list)
        self._ids = 0

    # --- setting the scene ------------------------------------------------------------

    def add_room(self, name: str, *, age: float = 60.0, metadata: str = "") -> models.Room:
        created = time.time() - age
        room = models.Room(name=name, sid=f"RM_{name}", metadata=metadata)
        room.creation_time, room.creation_time_ms = int(created), int(created * 1000)
        self.rooms[name] = room
        return room

    def add_participant(
        self, room: str, identity: str, *, age: float = 10.0, tracks: int = 1, **fields: Any
    ) -> models.ParticipantInfo:
        """A participant that joined room `room` (created if need be) `age` seconds ago;
        `fields`: ParticipantInfo's (kind, state, sid, attributes...), ACTIVE by default."""
        if room not in self.rooms:
            self.add_room(room, age=age + 1)
        joined = time.time() - age
        info = P(identity=identity, **{"sid": self._new_id("PA"), "state": ACTIVE, **fields})
        info.joined_at, info.joined_at_ms = int(joined), int(joined * 1000)
        info.tracks.extend(models.TrackInfo(sid=f"TR_{identity}_{n}") for n in range(tracks))
        self.participants[room][identity] = info
        return info

    def add_dispatch(
        self, room: str, agent_name: str, *, metadata: str = "", jobs: Sequence[JobStatus] = ()
    ) -> agent_dispatch.AgentDispatch:
        """A dispatch with one job per status in `jobs` (none: no worker took it)."""
        dispatch = agent_dispatch.AgentDispatch(
            id=self._new_id("AD"), agent_name=agent_name, room=room, metadata=metadata
        )
        for status in jobs:
            job = dispatch.state.jobs.add(id=self._new_id("AJ"), room=models.Room(name=room))
            job.state.status = status
        self.dispatches[room].append(dispatch)
        return dispatch

    def fail(self, name: str, error: Exception | None = None, *, times: int = 1) -> None:
        """The next `times` calls of method `name` raise `error` (default: a timeout), after
        `before_change` and counted, as the real one's would; nothing changes."""
        self._failures[name].extend([error or timeout(self)] * times)

    def before(self, name: str, action: Callable[[], object]) -> None:
        """Run `action` right before the next call of method `name` (the world moves on)."""
        self._before[name].append(action)

    # --- what happened ----------------------------------------------------------------

    def called(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of method `name`, in order."""
        return [call.args for call in self.log if call.name == name]

    def changes(self) -> list[str]:
        """The methods called that change something (allowed or not), in order."""
        return [call.name for call in self.log if call.name in CHANGES]

    def snapshot(self) -> object:
        """Everything the fake server holds, to compare before and after."""
        held = self.rooms, self.participants, self.dispatches
        return deepcopy([{k: v for k, v in d.items() if v} for d in held])

    # --- the Transport's methods ------------------------------------------------------

    def open(self) -> None: ...

    async def close(self) -> None: ...

    @asynccontextmanager
    async def session(self) -> AsyncIterator[LK]:
        yield NO_API

    async def call(
        self,
        action: str,
        request: Callable[[], Awaitable[T]],
        *,
        changes: bool = False,
        timeout: float | None = None,
    ) -> T:
        raise AssertionError(f"FakeTransport has no fake for {action!r}: add one")

    async def list_rooms(self, lkapi: LK, names: Sequence[str] = ()) -> list[api.Room]:
        self._enter("list_rooms", tuple(names))
        rooms = [deepcopy(r) for n, r in self.rooms.items() if not names or n in names]
        for room in rooms:
            room.num_participants = len(self.participants.get(room.name, {}))
        return rooms

    async def list_participants(self, lkapi: LK, room_name: str) -> list[P]:
        self._enter("list_participants", room_name)
        return [deepcopy(p) for p in self.participants.get(room_name, {}).values()]

    async def get_participant(self, lkapi: LK, room_name: str, identity: str) -> P | None:
        self._enter("get_participant", room_name, identity)
        return self._get(room_name, identity)

    async def remove(self, lkapi: LK, room_name: str, identity: str) -> bool:
        self._enter("remove", room_name, identity)
        return self._remove(room_name, identity)

    async def remove_exact(
        self, lkapi: LK, room_name: str, identity: str, sid: str, *, agent_only: bool = False
    ) -> bool:
        # two server calls, as in the real one: `fail("remove_exact")` fails the look-up
        self._enter("remove_exact", room_name, identity, sid, agent_only, server_call=False)
        self._server("remove_exact")
        info = self._get(room_name, identity)
        if info is None or (sid and info.sid != sid):
            return False
        if agent_only and info.kind != AGENT:
            return False
        self._server("remove", changes=True)
        return self._remove(room_name, identity)

    async def delete(self, lkapi: LK, room_name: str) -> bool:
        self._enter("delete", room_name)
        self.participants.pop(room_name, None)
        self.dispatches.pop(room_name, None)
        return self.rooms.pop(room_name, None) is not None

    async def dispatch(
        self, lkapi: LK, room_name: str, agent_name: str, metadata: str
    ) -> api.AgentDispatch:
        self._enter("dispatch", room_name, agent_name, metadata)
        return deepcopy(self.add_dispatch(room_name, agent_name, metadata=metadata))

    async def delete_dispatch(self, lkapi: LK, room_name: str, dispatch_id: str) -> bool:
        self._enter("delete_dispatch", room_name, dispatch_id)
        before = self.dispatches.get(room_name, [])
        self.dispatches[room_name] = [d for d in before if d.id != dispatch_id]
        return len(self.dispatches[room_name]) < len(before)

    async def list_dispatches(self, lkapi: LK, room_name: str) -> list[api.AgentDispatch]:
        self._enter("list_dispatches", room_name)
        return [deepcopy(d) for d in self.dispatches.get(room_name, [])]

    async def create_room(self, lkapi: LK, room_name: str, agent_name: str | None) -> api.Room:
        self._enter("create_room", room_name, agent_name)
        if room_name not in self.rooms:
            self.add_room(room_name, age=0)
            if agent_name is not None:
                self.add_dispatch(room_name, agent_name)
        return deepcopy(self.rooms[room_name])

    async def update_metadata(self, lkapi: LK, room_name: str, metadata: str) -> None:
        self._enter("update_metadata", room_name, metadata)
        if room_name not in self.rooms:
            raise LiveKitAPIError("update metadata", "not_found", "room does not exist")
        self.rooms[room_name].metadata = metadata

    async def reaches(self, lkapi: LK, room_name: str, identity: str) -> bool | None:
        self._enter("reaches", room_name, identity)
        return identity not in self.ghosts.get(room_name, set())

    async def update_attributes(
        self, lkapi: LK, room_name: str, identity: str, attributes: dict[str, str]
    ) -> bool:
        self._enter("update_attributes", room_name, identity, dict(attributes))
        info = self.participants.get(room_name, {}).get(identity)
        if info is not None:
            info.attributes.update(attributes)
        return info is not None

    # --- inside -------------------------------------------------------------------------

    def _enter(self, name: str, *args: Any, server_call: bool = True) -> None:
        """Record the call and run what `before` queued for it; then, for a method that is
        one server call, what the real `Transport.call` does first."""
        self.log.append(Call(name, args))
        for action in self._before.pop(name, []):
            action()
        if server_call:
            self._server(name, changes=name in CHANGES)

    def _server(self, name: str, *, changes: bool = False) -> None:
        if changes and self.before_change is not None:
            self.before_change()
        self.calls += 1
        if self._failures.get(name):
            raise self._failures[name].pop(0)

    def _get(self, room: str, identity: str) -> models.ParticipantInfo | None:
        info = self.participants.get(room, {}).get(identity)
        return deepcopy(info) if info is not None else None

    def _remove(self, room: str, identity: str) -> bool:
        info = self.participants.get(room, {}).pop(identity, None)
        if info is not None:
            self.removed.append((room, identity, info.sid))
        return info is not None

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"
