"""The one owner of the connection to LiveKit's server API, and its error translation.

`Transport` opens livekit-api's `LiveKitAPI` (one HTTP session, signed tokens reused, see
`signing`), runs each call with a timeout, counts calls, and turns transport and server
errors into this package's (`errors`). It knows nothing of staleness or reports: the
manager decides, this only carries. A missing room or participant is not an error here:
the queries return empty results, the actions return False.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp
from livekit import api

from .errors import AuthenticationError, LiveKitAPIError, ServerUnreachableError
from .settings import Settings
from .signing import use_cached_tokens

T = TypeVar("T")

DEFAULT_REQUEST_TIMEOUT = 10.0
UNAVAILABLE = "unavailable"  # LiveKit's code when no node answers for what a call is about
ORPHANED = "could not find object"  # LiveKit's answer about a room whose node is gone
NODE_TIMED_OUT = "deadline_exceeded"  # LiveKit's 408: the node it asked did not answer
REACH_TIMEOUT = 5.0  # seconds to ask a participant's node (LiveKit itself waits 3 s for it)


class Transport:
    """Calls to one LiveKit server; `open()` shares one session until `close()`."""

    def __init__(
        self,
        settings: Settings,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        before_change: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.request_timeout = request_timeout
        self.calls = 0  # server API calls made, for benchmarks and metrics
        # called right before every call that changes something; it raises to forbid it
        # (the watchdog's leader checks that its lease still holds, on its own clock)
        self.before_change = before_change
        self._api: api.LiveKitAPI | None = None

    def open(self) -> None:
        """Open a session that every call shares until `close()`."""
        if self._api is None:
            self._api = self._new_api()

    async def close(self) -> None:
        """Close the shared session; safe to call more than once."""
        if self._api is not None:
            current, self._api = self._api, None
            await current.aclose()

    def _new_api(self, timeout: float | None = None) -> api.LiveKitAPI:
        key, secret = self.settings.livekit_api_key, self.settings.livekit_api_secret
        lkapi = api.LiveKitAPI(
            self.settings.http_url,
            key,
            secret,
            timeout=aiohttp.ClientTimeout(total=timeout or self.request_timeout),
        )
        return use_cached_tokens(lkapi, key, secret)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[api.LiveKitAPI]:
        """The shared session, or one for this block only, closed after it."""
        if self._api is not None:
            yield self._api
            return
        lkapi = self._new_api()
        try:
            yield lkapi
        finally:
            await lkapi.aclose()

    async def call(
        self,
        action: str,
        request: Callable[[], Awaitable[T]],
        *,
        changes: bool = False,
        timeout: float | None = None,
    ) -> T:
        """Run one server API call, turning transport and server errors into ours.
        `changes`: it changes something (`before_change` may forbid it); `timeout`: this
        call's own bound (default `request_timeout`)."""
        timeout = timeout or self.request_timeout
        if changes and self.before_change is not None:
            self.before_change()
        self.calls += 1
        url = self.settings.livekit_url
        try:
            return await asyncio.wait_for(request(), timeout)
        except api.ServerError as exc:
            if exc.code == api.ServerErrorCode.UNAUTHENTICATED or exc.status == 401:
                raise AuthenticationError(url, self.settings.livekit_api_key) from None
            if exc.status == 404 and exc.code == "unknown":
                raise LiveKitAPIError(
                    action, "bad_route", f"{url} is not a LiveKit server"
                ) from None
            raise LiveKitAPIError(action, exc.code, exc.message) from None
        except TimeoutError:
            raise ServerUnreachableError(url, f"no answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            detail = exc.os_error.strerror or str(exc.os_error) or "cannot connect"
            raise ServerUnreachableError(url, detail.lower()) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ServerUnreachableError(url, str(exc) or type(exc).__name__) from None

    async def _call_or_missing(
        self, action: str, request: Callable[[], Awaitable[T]], *, changes: bool = False
    ) -> T | None:
        """`call`, with None when the server says the room or participant does not exist."""
        try:
            return await self.call(action, request, changes=changes)
        except LiveKitAPIError as exc:
            if exc.code == api.ServerErrorCode.NOT_FOUND:
                return None
            raise

    # --- the calls the manager makes ------------------------------------------------------

    async def list_rooms(self, lkapi: api.LiveKitAPI, names: Sequence[str] = ()) -> list[api.Room]:
        """The rooms (all, or those named), in scope or not: the manager filters."""
        request = api.ListRoomsRequest(names=list(names))
        response = await self.call("list rooms", lambda: lkapi.room.list_rooms(request))
        return list(response.rooms)

    async def list_participants(
        self, lkapi: api.LiveKitAPI, room_name: str
    ) -> list[api.ParticipantInfo]:
        """The room's participants; [] when the room does not exist."""
        request = api.ListParticipantsRequest(room=room_name)
        response = await self._call_or_missing(
            f"list the participants of room {room_name!r}",
            lambda: lkapi.room.list_participants(request),
        )
        return list(response.participants) if response is not None else []

    async def get_participant(
        self, lkapi: api.LiveKitAPI, room_name: str, identity: str
    ) -> api.ParticipantInfo | None:
        """One participant of a room; None when it (or the room) is not there."""
        request = api.RoomParticipantIdentity(room=room_name, identity=identity)
        return await self._call_or_missing(
            f"get participant {identity!r} of room {room_name!r}",
            lambda: lkapi.room.get_participant(request),
        )

    async def remove(self, lkapi: api.LiveKitAPI, room_name: str, identity: str) -> bool:
        """Remove a participant; False when it was not there."""
        request = api.RoomParticipantIdentity(room=room_name, identity=identity)
        response = await self._call_or_missing(
            f"remove participant {identity!r} from room {room_name!r}",
            lambda: lkapi.room.remove_participant(request),
            changes=True,
        )
        return response is not None

    async def remove_exact(
        self,
        lkapi: api.LiveKitAPI,
        room_name: str,
        identity: str,
        sid: str,
        *,
        agent_only: bool = False,
    ) -> bool:
        """Remove participant `sid` (known as `identity`), and nobody else; False if it is
        gone, or `identity` now names another participant (or, with `agent_only`, one that
        is not an agent). LiveKit removes by identity only, and identities are reused, so
        it is looked up right before."""
        info = await self.get_participant(lkapi, room_name, identity)
        if info is None or (sid and info.sid != sid):
            return False
        if agent_only and info.kind != api.ParticipantInfo.Kind.AGENT:
            return False
        return await self.remove(lkapi, room_name, identity)

    async def delete(self, lkapi: api.LiveKitAPI, room_name: str) -> bool:
        """Delete a room; False when it did not exist.

        A room whose LiveKit node died (a cluster) cannot be deleted where it is: LiveKit
        answers "could not find object" once that node is forgotten, and before that it
        waits for the node, in vain ("request timed out", past our bound). Creating it again
        places it on a live node (its allocator skips dead ones), and then it goes. Only
        when LiveKit still lists the room: it answers, so the silence was the room's node."""
        request = api.DeleteRoomRequest(room=room_name)
        action = f"delete room {room_name!r}"
        try:
            response = await self._call_or_missing(
                action, lambda: lkapi.room.delete_room(request), changes=True
            )
        except (LiveKitAPIError, ServerUnreachableError) as exc:
            if not _node_silent(exc) or not await self.list_rooms(lkapi, [room_name]):
                raise
            again = api.CreateRoomRequest(name=room_name)
            await self.call(
                f"place room {room_name!r} on a live node",
                lambda: lkapi.room.create_room(again),
                changes=True,
            )
            response = await self._call_or_missing(
                action, lambda: lkapi.room.delete_room(request), changes=True
            )
        return response is not None

    async def dispatch(
        self, lkapi: api.LiveKitAPI, room_name: str, agent_name: str, metadata: str
    ) -> api.AgentDispatch:
        request = api.CreateAgentDispatchRequest(
            agent_name=agent_name, room=room_name, metadata=metadata
        )
        return await self.call(
            f"dispatch agent {agent_name!r} to room {room_name!r}",
            lambda: lkapi.agent_dispatch.create_dispatch(request),
            changes=True,
        )

    async def delete_dispatch(
        self, lkapi: api.LiveKitAPI, room_name: str, dispatch_id: str
    ) -> bool:
        """Delete one agent dispatch of a room; False when it (or the room) is not there."""
        response = await self._call_or_missing(
            f"delete dispatch {dispatch_id!r} of room {room_name!r}",
            lambda: lkapi.agent_dispatch.delete_dispatch(dispatch_id, room_name),
            changes=True,
        )
        return response is not None

    async def list_dispatches(
        self, lkapi: api.LiveKitAPI, room_name: str
    ) -> list[api.AgentDispatch]:
        """The room's agent dispatches; [] when the room does not exist."""
        dispatches = await self._call_or_missing(
            f"list the agent dispatches of room {room_name!r}",
            lambda: lkapi.agent_dispatch.list_dispatch(room_name),
        )
        return list(dispatches or [])

    async def create_room(
        self, lkapi: api.LiveKitAPI, room_name: str, agent_name: str | None
    ) -> api.Room:
        """Create a room as a person's first join would: with `agent_name`'s dispatch in its
        configuration, or (None) with none, so LiveKit's automatic dispatch applies."""
        agents = [] if agent_name is None else [api.RoomAgentDispatch(agent_name=agent_name)]
        request = api.CreateRoomRequest(name=room_name, agents=agents)
        return await self.call(
            f"create room {room_name!r}", lambda: lkapi.room.create_room(request), changes=True
        )

    async def update_metadata(self, lkapi: api.LiveKitAPI, room_name: str, metadata: str) -> None:
        request = api.UpdateRoomMetadataRequest(room=room_name, metadata=metadata)
        await self.call(
            f"update the metadata of room {room_name!r}",
            lambda: lkapi.room.update_room_metadata(request),
            changes=True,
        )

    async def reaches(self, lkapi: api.LiveKitAPI, room_name: str, identity: str) -> bool | None:
        """Whether LiveKit reaches a participant where it is connected: an UpdateParticipant
        that changes nothing, which goes to the participant's own node. False when no node
        answers for it (`unavailable`, "no response from servers": its node is gone, and the
        server lists a ghost); True when it answers, or is not there any more; None when the
        server cannot say (not reachable itself, or another refusal). It opens its own
        session rather than use `lkapi`: it needs a longer bound than a look's."""
        request = api.UpdateParticipantRequest(room=room_name, identity=identity)
        # LiveKit waits 3 s for the participant's node: longer than a look's own bound
        async with self._new_api(REACH_TIMEOUT) as own:
            try:
                await self.call(
                    f"reach participant {identity!r} in room {room_name!r}",
                    lambda: own.room.update_participant(request),
                    timeout=REACH_TIMEOUT,
                )
            except LiveKitAPIError as exc:
                if exc.code == api.ServerErrorCode.NOT_FOUND:
                    return True  # gone: nobody to doubt
                return False if exc.code == UNAVAILABLE else None
            except ServerUnreachableError:
                return None
        return True

    async def update_attributes(
        self, lkapi: api.LiveKitAPI, room_name: str, identity: str, attributes: dict[str, str]
    ) -> bool:
        """Merge `attributes` into a participant's; False when it was not there."""
        request = api.UpdateParticipantRequest(
            room=room_name, identity=identity, attributes=attributes
        )
        response = await self._call_or_missing(
            f"update the attributes of {identity!r} in room {room_name!r}",
            lambda: lkapi.room.update_participant(request),
            changes=True,
        )
        return response is not None


def _node_silent(exc: LiveKitAPIError | ServerUnreachableError) -> bool:
    """Whether a refused or unanswered call may be the room's node not answering: LiveKit
    forgot the node ("could not find object"), gave up waiting for it (its 408), or did
    not answer within our bound (it waits for the node longer than that)."""
    if isinstance(exc, ServerUnreachableError):
        return True
    return ORPHANED in str(exc) or exc.code == NODE_TIMED_OUT
