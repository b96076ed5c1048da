"""RoomManager: the spec's room management utility, over livekit-api's RoomService.

It fetches, asks `rules` what to do, acts, and reports. Use it either way:

    async with RoomManager() as manager:        # one HTTP session for many calls
        await manager.cleanup_stale_rooms()

    await RoomManager().cleanup_stale_rooms()  # the spec's way: each call opens and
                                                # closes its own session, nothing leaks
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from types import TracebackType

from livekit import api

from ..rules.model import RoomView
from ..rules.staleness import (
    DEFAULT_AGENT_ALONE_GRACE,
    StalePolicy,
    doubted_agents,
    is_stale_room,
    prejoin_removals,
    stale_removals,
)
from .errors import RoomRecoveryError
from .link import ask_alive_all, split_urls
from .outcomes import delete_into, remove_into
from .report import CleanupReport, Failure, KeptParticipant
from .room_actions import RoomActions
from .settings import Settings, load_settings
from .transport import DEFAULT_REQUEST_TIMEOUT, Transport
from .views import participant_view

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16

Progress = Callable[[int, int], None]  # (rooms done, rooms in all)


class RoomManager(RoomActions):
    """List, inspect and clean LiveKit rooms, within this deployment's ROOM_PREFIX.

    Arguments left as None fall back to the environment and `.env` (see `settings`).
    Raises ConfigurationError at construction when a setting is invalid.
    """

    def __init__(
        self,
        livekit_url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        stale_room_timeout: float | None = None,
        *,
        room_prefix: str | None = None,
        settings: Settings | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        agent_alone_grace: float = DEFAULT_AGENT_ALONE_GRACE,
        before_change: Callable[[], None] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings or load_settings(
            livekit_url=livekit_url,
            livekit_api_key=api_key,
            livekit_api_secret=api_secret,
            room_stale_timeout=stale_room_timeout,
            room_prefix=room_prefix,
        )
        self.policy = StalePolicy(
            self.settings.room_stale_timeout,
            agent_alone_grace,
            remove_silent=self.settings.room_stale_silent,
        )
        self.max_concurrency = max_concurrency
        # `transport`: the calls to make instead (tests: `tests/support/fake_transport.py`)
        self._transport = transport or Transport(self.settings, request_timeout, before_change)

    @property
    def stale_room_timeout(self) -> float:
        return self.settings.room_stale_timeout

    @property
    def request_timeout(self) -> float:
        return self._transport.request_timeout

    @property
    def api_calls(self) -> int:
        """Server API calls made so far, for benchmarks and metrics."""
        return self._transport.calls

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> RoomManager:
        self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the HTTP session opened by `async with`; safe to call more than once."""
        await self._transport.close()

    # --- the spec's queries ----------------------------------------------------------

    async def list_rooms(self) -> list[api.Room]:
        """The active rooms of this deployment (those whose name starts with ROOM_PREFIX)."""
        async with self._transport.session() as lkapi:
            return await self._list_rooms(lkapi)

    async def rooms_named(self, names: Sequence[str]) -> list[api.Room]:
        """Those of the named rooms (in scope) that exist, in one call."""
        async with self._transport.session() as lkapi:
            return await self._list_rooms(lkapi, names=list(names))

    async def get_room_info(self, room_name: str) -> api.Room | None:
        """The room, or None when it does not exist."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            rooms = await self._list_rooms(lkapi, names=[room_name])
        return rooms[0] if rooms else None

    async def list_participants(self, room_name: str) -> list[api.ParticipantInfo]:
        """The room's participants; an empty list when the room does not exist."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            return await self._transport.list_participants(lkapi, room_name)

    async def remove_participant(self, room_name: str, identity: str) -> bool:
        """Remove one participant. True if removed, False if it was already gone."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            removed = await self._transport.remove(lkapi, room_name, identity)
        if removed:
            fields = {"room": room_name, "identity": identity}
            logger.info("Removed participant %s from room %s", identity, room_name, extra=fields)
        return removed

    async def delete_room(self, room_name: str) -> bool:
        """Delete a room, disconnecting everyone in it. False if it did not exist."""
        self._check_room(room_name)
        async with self._transport.session() as lkapi:
            deleted = await self._transport.delete(lkapi, room_name)
        if deleted:
            logger.info("🗑️ Deleted room %s", room_name, extra={"room": room_name})
        return deleted

    # --- cleanups --------------------------------------------------------------------

    async def cleanup_stale_rooms(
        self,
        *,
        dry_run: bool = False,
        on_progress: Progress | None = None,
        rooms: Sequence[api.Room] | None = None,
    ) -> CleanupReport:
        """Delete stale empty rooms and remove stale participants, in ROOM_PREFIX only.

        Rooms are handled concurrently (at most `max_concurrency` calls at once). A room
        whose every participant is stale is deleted in one call. A room that fails (a call
        that stalls or is refused, even a bug) is one entry in `report.failed`, never the
        end of the others; only failing to list the rooms at all (unreachable, bad key) raises.
        `on_progress(done, total)` is called once the rooms are listed and after each room.
        `rooms`: these only (from a listing made just before), for a caller that pages
        through the rooms at its own pace.
        """
        logger.info(
            "🧹 Cleaning up stale rooms (older than %gs)...",
            self.stale_room_timeout,
            extra={"prefix": self.settings.room_prefix, "dry_run": dry_run},
        )
        report = CleanupReport(dry_run=dry_run)
        now = time.time()
        async with self._transport.session() as lkapi:
            if rooms is None:
                rooms = await self._list_rooms(lkapi)
            rooms = [room for room in rooms if self.settings.in_scope(room.name)]
            report.rooms_checked = len(rooms)
            gate = asyncio.Semaphore(self.max_concurrency)
            done = 0
            if on_progress is not None:
                on_progress(done, len(rooms))

            async def clean(room: api.Room) -> None:
                nonlocal done
                async with gate:
                    report.merge(await self._clean_room_safely(lkapi, room, now, dry_run))
                done += 1
                if on_progress is not None:
                    on_progress(done, len(rooms))

            async with asyncio.TaskGroup() as group:
                for room in rooms:
                    group.create_task(clean(room))
        logger.info("✅ Stale room cleanup complete: %s", report.summary())
        return report

    async def _clean_room_safely(
        self, lkapi: api.LiveKitAPI, room: api.Room, now: float, dry_run: bool
    ) -> CleanupReport:
        """`_clean_stale_room`, with any failure (a stalled call, a bug) as one entry in the
        report: one room never ends the cleanup of the others."""
        try:
            return await self._clean_stale_room(lkapi, room, now, dry_run)
        except RoomRecoveryError as exc:
            error = str(exc)
            logger.warning(
                "Could not clean room %s: %s", room.name, error, extra={"room": room.name}
            )
        except Exception as exc:  # reported, with its traceback, not raised
            error = f"unexpected {type(exc).__name__}: {exc}"
            logger.exception("Could not clean room %s", room.name, extra={"room": room.name})
        report = CleanupReport(dry_run=dry_run)
        report.failed.append(Failure(room.name, None, error))
        return report

    async def _clean_stale_room(
        self, lkapi: api.LiveKitAPI, room: api.Room, now: float, dry_run: bool
    ) -> CleanupReport:
        # The listing's num_participants cannot decide anything: the server refreshes it
        # at most every 5 s and leaves agents and egress out of it. Ask for the real list.
        report = CleanupReport(dry_run=dry_run)
        participants = [
            participant_view(p) for p in await self._transport.list_participants(lkapi, room.name)
        ]
        view = RoomView(room.name, float(room.creation_time), len(participants))
        if is_stale_room(view, now, self.policy):
            reason = f"empty for more than {self.stale_room_timeout:g}s"
            await delete_into(self._transport, report, lkapi, room.name, reason)
            return report
        removals = stale_removals(participants, now, self.policy)
        if participants and len(removals) == len(participants):
            reasons = sorted({r.reason for r in removals})
            await delete_into(
                self._transport,
                report,
                lkapi,
                room.name,
                "every participant is stale: " + ", ".join(reasons),
            )
            return report
        await remove_into(self._transport, report, lkapi, room.name, removals)
        removed = {r.identity for r in removals}
        report.kept.extend(
            KeptParticipant(room.name, p.identity)
            for p in participants
            if p.identity not in removed
        )
        return report

    async def ensure_clean_room(
        self, room_name: str, keep: Collection[str] | str = ()
    ) -> CleanupReport:
        """Make a room ready for an agent to join, never removing anyone in `keep`.

        Removes agents already in the room (ghosts of earlier jobs) and stale participants.
        If a removal fails, the room is deleted instead, as the spec says, unless a kept
        person is inside: then the failure is reported and the person stays connected.
        """
        self._check_room(room_name)
        keep_set = {keep} if isinstance(keep, str) else set(keep)
        logger.info(
            "🧹 Ensuring room %s is clean before joining...",
            room_name,
            extra={"room": room_name, "keep": sorted(keep_set)},
        )
        report = CleanupReport(rooms_checked=1)
        async with self._transport.session() as lkapi:
            participants = [
                participant_view(p)
                for p in await self._transport.list_participants(lkapi, room_name)
            ]
            removals = prejoin_removals(participants, time.time(), self.policy, keep_set)
            doubted = doubted_agents(removals, participants)
            if doubted:  # removed on our own judgement: their worker may know better
                alive = await self._alive_by_their_workers(room_name, doubted)
                removals = prejoin_removals(
                    participants, time.time(), self.policy, keep_set, alive=alive
                )
            report.kept.extend(
                KeptParticipant(room_name, p.identity)
                for p in participants
                if p.identity not in {r.identity for r in removals}
            )
            if removals:
                logger.info(
                    "Room %s has %d existing participant(s), cleaning them out...",
                    room_name,
                    len(removals),
                    extra={"room": room_name},
                )
                await remove_into(self._transport, report, lkapi, room_name, removals)
            if report.failed:
                await self._fall_back_to_delete(report, lkapi, room_name, keep_set)
        if report.ok:
            logger.info("✅ Room %s successfully cleaned", room_name, extra={"room": room_name})
        return report

    async def _alive_by_their_workers(self, room_name: str, doubted: set[str]) -> set[str]:
        """Which of the `doubted` agents their worker vouches for (the watchdog's links).

        Without a watchdog (ROOM_RECOVERY_WATCHDOG_URL unset) nobody can vouch: none. When
        none of its watchdogs can say, none is proven dead: all of them."""
        urls = split_urls(self.settings.room_recovery_watchdog_url)
        if not urls:
            return set()
        answer = await ask_alive_all(urls, self.settings, room_name)
        alive = doubted if answer is None else doubted & answer
        if alive:
            logger.info(
                "Keeping agent(s) %s in room %s: %s",
                ", ".join(sorted(alive)),
                room_name,
                "nobody can say they are dead (the watchdog did not answer)"
                if answer is None
                else "their worker says they run; a silent heartbeat is a stall, not a death",
                extra={"room": room_name, "agents": sorted(alive)},
            )
        return alive

    async def _fall_back_to_delete(
        self, report: CleanupReport, lkapi: api.LiveKitAPI, room_name: str, keep: set[str]
    ) -> None:
        present = {k.identity for k in report.kept} & keep
        if present:
            logger.warning(
                "Could not remove every stale participant of room %s; not deleting it, "
                "because %s is in it",
                room_name,
                ", ".join(sorted(present)),
                extra={"room": room_name},
            )
            return
        logger.warning("Cleanup of room %s failed, force deleting it", room_name)
        failed, report.failed = report.failed, []
        await delete_into(self._transport, report, lkapi, room_name, "participant removal failed")
        if report.failed:
            report.failed[:0] = failed

    async def cleanup_room(self, room_name: str, force: bool = False) -> CleanupReport:
        """Clean one room by hand.

        With `force`, delete the room (everyone in it is disconnected). Without, remove its
        stale participants, and delete it when nobody is left.
        """
        self._check_room(room_name)
        report = CleanupReport(rooms_checked=1)
        async with self._transport.session() as lkapi:
            if force:
                await delete_into(self._transport, report, lkapi, room_name, "forced cleanup")
                return report
            participants = [
                participant_view(p)
                for p in await self._transport.list_participants(lkapi, room_name)
            ]
            removals = stale_removals(participants, time.time(), self.policy)
            if len(removals) == len(participants):
                # Nobody alive is left: deleting is one call, and a room that is
                # already gone is simply not reported.
                await delete_into(self._transport, report, lkapi, room_name, "no live participant")
                return report
            await remove_into(self._transport, report, lkapi, room_name, removals)
            removed = {r.identity for r in removals}
            report.kept.extend(
                KeptParticipant(room_name, p.identity)
                for p in participants
                if p.identity not in removed
            )
        return report

    # --- server calls ------------------------------------------------------------------

    async def _list_rooms(self, lkapi: api.LiveKitAPI, names: Sequence[str] = ()) -> list[api.Room]:
        rooms = await self._transport.list_rooms(lkapi, names)
        return [room for room in rooms if self.settings.in_scope(room.name)]
