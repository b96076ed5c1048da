"""The room commands: rooms, participants, remove, delete, clean, clean-stale."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from livekit import api
from rich.text import Text

from ..core.manager import RoomManager
from ..core.report import CleanupReport
from ..core.settings import Settings
from ..core.views import participant_view
from ..rules.model import Kind, State
from . import output
from .invocation import Run, command

app = typer.Typer()

T = TypeVar("T")
Room = Annotated[str, typer.Argument(help="room name", show_default=False)]

_STATE_STYLES = {
    State.ACTIVE: "green",
    State.JOINED: "green",
    State.JOINING: "yellow",
    State.DISCONNECTED: "red",
}


def _managed(settings: Settings, act: Callable[[RoomManager], Awaitable[T]]) -> T:
    """Run `act` with a RoomManager for `settings`, closing it afterwards."""

    async def main() -> T:
        async with RoomManager(settings=settings) as manager:
            return await act(manager)

    return asyncio.run(main())


@command(app, "List active rooms with their participant count and age.")
def rooms(run: Run) -> int:
    found = _managed(run.settings, lambda manager: manager.list_rooms())
    if run.json:
        output.print_json([_room_dict(room) for room in found], indent=2, sort_keys=True)
    elif not found:
        output.line("no active rooms")
    else:
        listing = output.table("ROOM", "PARTICIPANTS", "AGE")
        for room in found:
            listing.add_row(room.name, str(room.num_participants), output.age(room.creation_time))
        output.show(listing)
        output.line(f"{len(found)} active room(s)")
    return 0


def _room_dict(room: api.Room) -> dict[str, Any]:
    return {
        "name": room.name,
        "num_participants": room.num_participants,
        "creation_time": room.creation_time,
        "age_seconds": round(time.time() - room.creation_time, 1),
    }


@command(app, "List the participants of one room.")
def participants(run: Run, room: Room) -> int:
    infos = _managed(run.settings, lambda manager: manager.list_participants(room))
    views = [participant_view(info) for info in infos]
    if run.json:
        output.print_json(
            [
                {
                    "identity": v.identity,
                    "kind": v.kind.value,
                    "state": v.state.value,
                    "joined_at": v.joined_at,
                    "tracks": v.track_count,
                }
                for v in views
            ],
            indent=2,
            sort_keys=True,
        )
    elif not views:
        output.line(f"no participants in room {room!r} (or no such room)")
    else:
        listing = output.table("IDENTITY", "KIND", "STATE", "IN ROOM", "TRACKS")
        for v in views:
            listing.add_row(
                v.identity,
                Text(v.kind.value, style="cyan" if v.kind == Kind.AGENT else ""),
                Text(v.state.value, style=_STATE_STYLES.get(v.state, "")),
                output.age(v.joined_at),
                str(v.track_count),
            )
        output.show(listing)
    return 0


@command(app, "Remove one participant from a room.")
def remove(
    run: Run,
    room: Room,
    identity: Annotated[
        str,
        typer.Argument(help="the participant's identity (see `participants`)", show_default=False),
    ],
) -> int:
    removed = _managed(run.settings, lambda manager: manager.remove_participant(room, identity))
    if run.json:
        output.print_json(
            {"room": room, "identity": identity, "removed": removed}, indent=2, sort_keys=True
        )
    elif removed:
        output.line(f"removed {identity!r} from room {room!r}")
    else:
        output.line(f"{identity!r} is not in room {room!r}: nothing to do")
    return 0


@command(app, "Delete a room, disconnecting everyone in it.")
def delete(run: Run, room: Room) -> int:
    deleted = _managed(run.settings, lambda manager: manager.delete_room(room))
    if run.json:
        output.print_json({"room": room, "deleted": deleted}, indent=2, sort_keys=True)
    elif deleted:
        output.line(f"deleted room {room!r}")
    else:
        output.line(f"room {room!r} does not exist: nothing to do")
    return 0


@command(app, "Clean one room: remove its stale participants, or with --force delete the room.")
def clean(
    run: Run,
    room: Room,
    force: Annotated[bool, typer.Option("--force", help="delete the room outright")] = False,
) -> int:
    report = _managed(run.settings, lambda manager: manager.cleanup_room(room, force=force))
    return _print_report(report, run.json)


@command(app, "Delete stale rooms and remove stale participants (what startup cleanup does).")
def clean_stale(
    run: Run,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only show what would be removed or deleted")
    ] = False,
) -> int:
    with output.progress("cleaning stale rooms", enabled=not (run.json or run.quiet)) as update:
        report = _managed(
            run.settings,
            lambda manager: manager.cleanup_stale_rooms(dry_run=dry_run, on_progress=update),
        )
    return _print_report(report, run.json)


def _print_report(report: CleanupReport, as_json: bool) -> int:
    """Print what a cleanup did (or would do); the exit code is 1 when a step failed."""
    if as_json:
        output.print_json(report.to_dict(), indent=2, sort_keys=True)
        return 0 if report.ok else 1
    for removed in report.removed:
        verb = "would remove" if report.dry_run else "removed"
        output.line(
            Text.assemble(
                (verb, "yellow"), f" {removed.identity} from {removed.room}: {removed.reason}"
            )
        )
    for deleted in report.deleted:
        verb = "would delete" if report.dry_run else "deleted"
        output.line(Text.assemble((verb, "yellow"), f" room {deleted.room}: {deleted.reason}"))
    for failure in report.failed:
        who = f" {failure.identity}" if failure.identity else ""
        output.line(
            Text.assemble(("FAILED", "bold red"), f"{who} in {failure.room}: {failure.error}")
        )
    output.line(Text(report.summary(), style="bold" if report.ok else "bold red"))
    return 0 if report.ok else 1
