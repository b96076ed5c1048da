"""`room-recovery`: the command line for what the spec does with `python -c` snippets.

Every command reads LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, ROOM_STALE_TIMEOUT and
ROOM_PREFIX from the environment or `.env`. Errors are printed as one line, with the exit
code of their class (see errors.py); `--json` prints machine-readable output instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from livekit import api

from ..core.errors import RoomRecoveryError
from ..core.manager import RoomManager
from ..core.report import CleanupReport
from ..core.settings import Settings, load_settings
from ..core.views import participant_view
from .services import add_service_commands
from .system import add_system_commands

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]

_EPILOG = """\
examples:
  room-recovery up                          run everything: server, demo agent, page, watchdog
  room-recovery doctor --probe              why did no agent come? (dispatches a test agent)
  room-recovery rooms                       list rooms with participant counts and ages
  room-recovery participants my-room        who is in a room, and in which state
  room-recovery clean-stale --dry-run       show what a stale cleanup would remove
  room-recovery clean stuck-room --force    delete a stuck room, disconnecting everyone
settings come from the environment or .env: LIVEKIT_URL, LIVEKIT_API_KEY,
LIVEKIT_API_SECRET, ROOM_STALE_TIMEOUT (seconds, default 300), ROOM_PREFIX (scope).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="room-recovery",
        description="Keep LiveKit voice-agent rooms healthy: list, inspect and clean rooms.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="LiveKit server URL (default: LIVEKIT_URL)")
    parser.add_argument("--prefix", help="only rooms whose name starts with this (ROOM_PREFIX)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only warnings and errors in the log"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print JSON for machines")
        sub.set_defaults(handler=handler)
        return sub

    command("rooms", _rooms, "List active rooms with their participant count and age.")
    sub = command("participants", _participants, "List the participants of one room.")
    sub.add_argument("room", help="room name")
    sub = command("remove", _remove, "Remove one participant from a room.")
    sub.add_argument("room", help="room name")
    sub.add_argument("identity", help="the participant's identity (see `participants`)")
    sub = command("delete", _delete, "Delete a room, disconnecting everyone in it.")
    sub.add_argument("room", help="room name")
    sub = command(
        "clean",
        _clean,
        "Clean one room: remove its stale participants, or with --force delete the room.",
    )
    sub.add_argument("room", help="room name")
    sub.add_argument("--force", action="store_true", help="delete the room outright")
    sub = command(
        "clean-stale",
        _clean_stale,
        "Delete stale rooms and remove stale participants (what startup cleanup does).",
    )
    sub.add_argument(
        "--dry-run", action="store_true", help="only show what would be removed or deleted"
    )
    add_system_commands(commands, command)
    add_service_commands(commands, command)
    sub = commands.add_parser(
        "agent",
        help="Run the offline demo voice agent worker (see `room-recovery agent --help`).",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["agent"]:  # the worker has its own options and event loop
        from ..demo.command import main as agent_main

        return agent_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    _configure_logging(quiet=args.quiet or getattr(args, "json", False))
    try:
        settings = load_settings(livekit_url=args.url, room_prefix=args.prefix)
        handler: Handler = args.handler
        return asyncio.run(handler(args, settings))
    except RoomRecoveryError as exc:
        print(f"room-recovery: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s - %(message)s",
        stream=sys.stderr,
    )
    # The SDKs' own INFO lines are noise next to ours.
    for noisy in ("livekit", "livekit.agents", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _age(seconds_since_epoch: float) -> str:
    seconds = max(0, int(time.time() - seconds_since_epoch))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


async def _rooms(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        rooms = await manager.list_rooms()
    if args.json:
        _print_json([_room_dict(room) for room in rooms])
    elif not rooms:
        print("no active rooms")
    else:
        rows = [[r.name, str(r.num_participants), _age(r.creation_time)] for r in rooms]
        print(_table(rows, ["ROOM", "PARTICIPANTS", "AGE"]))
        print(f"{len(rooms)} active room(s)")
    return 0


def _room_dict(room: api.Room) -> dict[str, Any]:
    return {
        "name": room.name,
        "num_participants": room.num_participants,
        "creation_time": room.creation_time,
        "age_seconds": round(time.time() - room.creation_time, 1),
    }


async def _participants(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        infos = await manager.list_participants(args.room)
    views = [participant_view(info) for info in infos]
    if args.json:
        _print_json(
            [
                {
                    "identity": v.identity,
                    "kind": v.kind.value,
                    "state": v.state.value,
                    "joined_at": v.joined_at,
                    "tracks": v.track_count,
                }
                for v in views
            ]
        )
    elif not views:
        print(f"no participants in room {args.room!r} (or no such room)")
    else:
        rows = [
            [v.identity, v.kind.value, v.state.value, _age(v.joined_at), str(v.track_count)]
            for v in views
        ]
        print(_table(rows, ["IDENTITY", "KIND", "STATE", "IN ROOM", "TRACKS"]))
    return 0


async def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        removed = await manager.remove_participant(args.room, args.identity)
    if args.json:
        _print_json({"room": args.room, "identity": args.identity, "removed": removed})
    elif removed:
        print(f"removed {args.identity!r} from room {args.room!r}")
    else:
        print(f"{args.identity!r} is not in room {args.room!r}: nothing to do")
    return 0


async def _delete(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        deleted = await manager.delete_room(args.room)
    if args.json:
        _print_json({"room": args.room, "deleted": deleted})
    elif deleted:
        print(f"deleted room {args.room!r}")
    else:
        print(f"room {args.room!r} does not exist: nothing to do")
    return 0


async def _clean(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        report = await manager.cleanup_room(args.room, force=args.force)
    return _print_report(report, args.json)


async def _clean_stale(args: argparse.Namespace, settings: Settings) -> int:
    async with RoomManager(settings=settings) as manager:
        report = await manager.cleanup_stale_rooms(dry_run=args.dry_run)
    return _print_report(report, args.json)


def _print_report(report: CleanupReport, as_json: bool) -> int:
    if as_json:
        _print_json(report.to_dict())
    else:
        for removed in report.removed:
            verb = "would remove" if report.dry_run else "removed"
            print(f"{verb} {removed.identity} from {removed.room}: {removed.reason}")
        for deleted in report.deleted:
            verb = "would delete" if report.dry_run else "deleted"
            print(f"{verb} room {deleted.room}: {deleted.reason}")
        for failure in report.failed:
            who = f" {failure.identity}" if failure.identity else ""
            print(f"FAILED{who} in {failure.room}: {failure.error}")
        print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
