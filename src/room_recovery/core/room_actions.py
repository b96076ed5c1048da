"""What room-recovery does in a room beyond the guide's methods: the recovery's own calls.

Dispatching an agent again, reading and deleting dispatches, marking the room's status,
removing one agent by its sid, setting an attribute: what the watchdog and the worker
monitor need. `RoomManager` inherits them; each checks the room name and its scope first.
"""

from __future__ import annotations

import logging

from livekit import api

from ..protocol.room_status import with_status
from ..rules.model import room_name_problem
from .errors import InvalidRoomNameError, OutOfScopeError
from .settings import Settings
from .transport import Transport

logger = logging.getLogger("room_recovery.core.manager")


class RoomActions:
    """The recovery's calls on one server (`RoomManager` is one, with the guide's methods)."""

    settings: Settings
    _transport: Transport

    def _check_room(self, room_name: str) -> None:
        problem = room_name_problem(room_name)
        if problem is not None:
            raise InvalidRoomNameError(f"invalid room name {room_name!r}: {problem}")
        if not self.settings.in_scope(room_name):
            raise OutOfScopeError(room_name, self.settings.room_prefix)

    async def remove_agent(self, room_name: str, identity: str, sid: str) -> bool:
        """Remove the agent participant `sid` (known as `identity`), and nobody else.

        LiveKit removes by identity only, and identities are reused (`agent-<room>`); so the
        participant is looked up right before, and removed only if it is still that sid and
        of kind AGENT. True if removed; False if it is gone, or is now someone else.
        """
        self._check_room(room_name)
        fields = {"room": room_name, "identity": identity, "sid": sid}
        async with self._transport.session() as lkapi:
            removed = await self._transport.remove_exact(
                lkapi, room_name, identity, sid, agent_only=True
            )
        if removed:
            logger.info(
                "Removed dead agent %s (%s) from room %s", identity, sid, room_name, extra=fields
            )
        return removed

    async def reaches(self, room_name: str, identity: str) -> bool | None:
        """Whether LiveKit reaches this participant on its node (`Transport.reaches`)."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            return await self._transport.reaches(lkapi, room_name, identity)

    async def set_attributes(self, room_name: str, identity: str, values: dict[str, str]) -> bool:
        """Merge `values` into a participant's attributes. False if it was not there."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            return await self._transport.update_attributes(lkapi, room_name, identity, values)

    async def dispatch_agent(self, room_name: str, agent_name: str, metadata: str = "") -> str:
        """Ask the server to send agent `agent_name` into the room. Returns the dispatch id.

        The server drops the job if no worker with that name is registered at that moment
        (livekit/livekit#4060), so callers check later that an agent really came.
        """
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            dispatch = await self._transport.dispatch(lkapi, room_name, agent_name, metadata)
        return dispatch.id

    async def create_room(self, room_name: str, agent_name: str | None) -> None:
        """Create a room whose creation dispatches `agent_name` (None: automatic dispatch)."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            await self._transport.create_room(lkapi, room_name, agent_name)

    async def dispatched_agents(self, room_name: str) -> list[tuple[str, str]]:
        """The (agent name, metadata) of every dispatch the room has had, oldest first."""
        return [(d.agent_name, d.metadata) for d in await self.list_dispatches(room_name)]

    async def list_dispatches(self, room_name: str) -> list[api.AgentDispatch]:
        """The room's agent dispatches, with their jobs; [] when the room does not exist."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            return await self._transport.list_dispatches(lkapi, room_name)

    async def delete_dispatch(self, room_name: str, dispatch_id: str) -> bool:
        """Delete one dispatch (one no worker took: nothing else happens). False if gone."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            return await self._transport.delete_dispatch(lkapi, room_name, dispatch_id)

    async def update_room_status(self, room_name: str, status: dict[str, str]) -> None:
        """Merge `{"room_recovery": status}` into the room's JSON metadata (pages read it)."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            rooms = await self._transport.list_rooms(lkapi, names=[room_name])
            if not rooms:
                return
            metadata = with_status(rooms[0].metadata, status)
            await self._transport.update_metadata(lkapi, room_name, metadata)
