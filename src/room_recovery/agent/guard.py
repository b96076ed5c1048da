"""Graceful shutdown inside a job: the agent leaves when the person does, and the room goes.

Layer 4 of the spec. Call `guard_session(ctx)` in the entrypoint, after `ctx.connect()`:

* A `room_cleanup` message (see `protocol.messages`) from a non-agent participant of the room ends
  the job: the agent leaves. Messages from agents, from the server API (no sender), naming
  another room, or malformed, are ignored with a warning.
* When the last person leaves without a message (a closed tab), the job ends after
  `grace` seconds, unless someone comes back. When nobody comes at all, after
  `first_join_timeout`.
* Every 0.5 s it sets the agent's heartbeat attribute (see `agent.heartbeat`), so the watchdog
  can tell within seconds that the agent's process died, long before the server does.
* When the guard ended the job and no one but agents (or the person who just said
  goodbye) is left, it deletes the room, so the room does not linger for the server's
  `departure_timeout`/`empty_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import JobContext

from ..core.errors import RoomRecoveryError
from ..core.manager import RoomManager
from ..core.settings import Settings, load_settings
from ..core.tasks import cancel_and_wait
from ..core.views import participant_view
from ..protocol.messages import (
    MESSAGE_TOPIC,
    AgentSelection,
    MalformedMessage,
    RoomCleanup,
    decode_message,
)
from ..rules.model import Kind
from . import heartbeat

logger = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0
DEFAULT_FIRST_JOIN_TIMEOUT = 30.0
DELETE_TIMEOUT = 5.0
SID_WAIT = 5.0  # seconds for LiveKit to tell the agent its room's sid


@dataclass(frozen=True)
class GuardOptions:
    """When the guard ends a job, in seconds, and whether it deletes the room after."""

    grace: float = DEFAULT_GRACE
    first_join_timeout: float = DEFAULT_FIRST_JOIN_TIMEOUT
    delete_room: bool = True
    heartbeat: bool = True  # publish the heartbeat the watchdog uses to spot a dead agent


def is_agent(participant: rtc.RemoteParticipant) -> bool:
    """Whether a participant of the rtc room is an agent."""
    return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


class SessionGuard:
    """Watches one job's room and ends the job when its person is gone (see the module)."""

    def __init__(
        self,
        ctx: JobContext,
        options: GuardOptions | None = None,
        *,
        settings: Settings | None = None,
        on_selection: Callable[[AgentSelection, rtc.RemoteParticipant], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = options or GuardOptions()
        self.on_selection = on_selection
        self.ended = asyncio.Event()
        self.reason: str | None = None
        self._settings = settings
        self._departed: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._made_anew: asyncio.Task[None] | None = None

    @property
    def room(self) -> rtc.Room:
        return self.ctx.room

    def start(self) -> None:
        """Listen to the room (it must be connected); the job's end undoes it."""
        self.room.on("data_received", self._on_data)
        self.room.on("participant_connected", self._on_participant_connected)
        self.room.on("participant_disconnected", self._on_participant_disconnected)
        self.room.on("disconnected", self._on_disconnected)
        self.ctx.add_shutdown_callback(self._on_shutdown)
        if self.options.heartbeat:
            self._heartbeat = asyncio.create_task(
                heartbeat.beat(self.room.local_participant), name="room-recovery-heartbeat"
            )
        if not self._people():
            self._start_timer(self.options.first_join_timeout, "nobody joined")
            self._made_anew = asyncio.create_task(self._end_if_the_room_was_made_anew())

    # --- room events (sync callbacks: they must never raise) -------------------------

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if self.ended.is_set():
            return
        if packet.topic not in (MESSAGE_TOPIC, None):
            return  # another protocol's data (chat, transcription …), not ours
        sender = packet.participant
        fields = {"room": self.room.name, "sender": sender.identity if sender else None}
        try:
            message = decode_message(packet.data)
        except MalformedMessage as exc:
            logger.warning(
                "Ignoring a malformed data message in room %s from %s: %s",
                self.room.name,
                fields["sender"],
                exc,
                extra=fields,
            )
            return
        if isinstance(message, AgentSelection):
            logger.info("Person chose agent %s", message.agent_name, extra=fields)
            if self.on_selection is not None and sender is not None:
                try:
                    self.on_selection(message, sender)
                except Exception:  # the guard must outlive a faulty callback
                    logger.exception("on_selection failed", extra=fields)
            return
        problem = self._cleanup_problem(message, sender)
        if problem is not None:
            logger.warning(
                "Ignoring room_cleanup in room %s %s", self.room.name, problem, extra=fields
            )
            return
        assert sender is not None
        logger.info(
            "👋 %s asked to clean up room %s; leaving",
            sender.identity,
            self.room.name,
            extra=fields,
        )
        self.end(f"room_cleanup from {sender.identity}", departed=sender.identity)

    def _cleanup_problem(
        self, message: RoomCleanup, sender: rtc.RemoteParticipant | None
    ) -> str | None:
        """Why a room_cleanup must be ignored, or None when it is genuine."""
        if sender is None:  # the server API, or someone the agent does not know yet
            return "from no participant of the room"
        if is_agent(sender):
            return f"from agent {sender.identity!r}: only a person may end the session"
        if message.room is not None and message.room != self.room.name:
            return f"naming another room ({message.room!r})"
        return None

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        staying = not is_agent(participant) and self._timer is not None
        logger.info(
            "%s %s joined room %s%s",
            "agent" if is_agent(participant) else "participant",
            participant.identity,
            self.room.name,
            "; staying" if staying else "",
            extra={"room": self.room.name, "identity": participant.identity},
        )
        if staying:
            self._cancel_timer()

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if is_agent(participant) or self.ended.is_set() or self._people():
            return
        logger.info(
            "%s left room %s without saying goodbye; leaving in %gs unless someone returns",
            participant.identity,
            self.room.name,
            self.options.grace,
            extra={"room": self.room.name, "identity": participant.identity},
        )
        self._start_timer(self.options.grace, f"{participant.identity} left")

    def _on_disconnected(self, reason: object) -> None:
        self._cancel_timer()
        self.ended.set()

    # --- ending --------------------------------------------------------------------

    def end(self, reason: str, departed: str | None = None) -> None:
        """End the job: the agent leaves; the room is deleted after if nobody else is left."""
        if self.ended.is_set():
            return
        self._cancel_timer()
        self.reason, self._departed = reason, departed
        self.ended.set()
        self.ctx.shutdown(reason)

    async def _end_if_the_room_was_made_anew(self) -> None:
        """End the job at once when the room it joined is not the room it was sent to.

        A DeleteRoom that meets a room another DeleteRoom is closing makes it again for a
        moment (livekit-server 1.13's `RoomService.DeleteRoom` first "ensures a node" with
        CreateRoom), and LiveKit sends that room's agent again. The agent then joins a new,
        empty room of the same name under another sid, and nobody ever comes to it: it
        would wait the whole `first_join_timeout` (seen when a closing tab's leave and its
        agent's own cleanup deleted the room together)."""
        sent_to = self.ctx.job.room.sid
        try:
            joined = await asyncio.wait_for(self.room.sid, SID_WAIT)
        except TimeoutError:
            return
        if sent_to and joined and joined != sent_to and not self._people():
            logger.info(
                "Room %s is a new room under the same name (%s, sent to %s); nobody is "
                "coming to it: leaving",
                self.room.name,
                joined,
                sent_to,
                extra={"room": self.room.name},
            )
            self.end("the room it was sent to is gone")

    def _people(self) -> list[rtc.RemoteParticipant]:
        return [p for p in self.room.remote_participants.values() if not is_agent(p)]

    def _start_timer(self, delay: float, reason: str) -> None:
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self.end, f"{reason}, waited {delay:g}s")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _on_shutdown(self, reason: str) -> None:
        """After the agent left: delete the room if the guard ended the job and it is empty."""
        self._cancel_timer()
        for task in (self._heartbeat, self._made_anew):
            if task is not None:
                await cancel_and_wait(task)
        for event, handler in (
            ("data_received", self._on_data),
            ("participant_connected", self._on_participant_connected),
            ("participant_disconnected", self._on_participant_disconnected),
            ("disconnected", self._on_disconnected),
        ):
            with contextlib.suppress(KeyError, ValueError):
                self.room.off(event, handler)  # type: ignore[arg-type]
        if self.reason is None or not self.options.delete_room:
            return  # not ours to end: the room was deleted, or the worker is stopping
        await self._delete_room_if_nobody_is_left()

    async def _delete_room_if_nobody_is_left(self) -> None:
        room_name = self.room.name
        fields = {"room": room_name, "reason": self.reason}
        try:
            settings = self._settings or load_settings()
            async with asyncio.timeout(DELETE_TIMEOUT):
                async with RoomManager(
                    settings=settings, request_timeout=DELETE_TIMEOUT
                ) as manager:
                    views = map(participant_view, await manager.list_participants(room_name))
                    others = [
                        v.identity
                        for v in views
                        if v.kind is not Kind.AGENT and v.identity != self._departed
                    ]
                    if others:
                        logger.info(
                            "Not deleting room %s: %s still in it",
                            room_name,
                            ", ".join(others),
                            extra=fields,
                        )
                        return
                    await manager.delete_room(room_name)
        except TimeoutError:
            logger.warning(
                "Could not delete room %s within %gs", room_name, DELETE_TIMEOUT, extra=fields
            )
        except RoomRecoveryError as exc:
            logger.warning("Could not delete room %s: %s", room_name, exc, extra=fields)


def guard_session(
    ctx: JobContext,
    options: GuardOptions | None = None,
    *,
    settings: Settings | None = None,
    on_selection: Callable[[AgentSelection, rtc.RemoteParticipant], None] | None = None,
) -> SessionGuard:
    """Start guarding a connected job's room (see the module). Returns the started guard."""
    guard = SessionGuard(ctx, options, settings=settings, on_selection=on_selection)
    guard.start()
    return guard
