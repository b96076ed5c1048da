"""`room-recovery`: the Typer app, its global options, and `main`.

Every command reads LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, ROOM_STALE_TIMEOUT and
ROOM_PREFIX from the environment or `.env`. `main` turns every error into one line and an
exit code: 0 ok, 1 a cleanup step failed (or doctor found problems, or status is
unhealthy), 2 bad input or setting, 3 server unreachable, 4 key rejected, 130 on Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from ..core.errors import RoomRecoveryError
from . import output, rooms, services, system
from .invocation import CommandLine, Json, Prefix, Quiet, Url, command_line

_EPILOG = """\
examples:
  room-recovery up                          run everything: server, demo agent, page, watchdog
  room-recovery doctor --probe              why did no agent come? (dispatches a test agent)
  room-recovery rooms                       list rooms with participant counts and ages
  room-recovery participants my-room        who is in a room, and in which state
  room-recovery clean-stale --dry-run       show what a stale cleanup would remove
  room-recovery clean stuck-room --force    delete a stuck room, disconnecting everyone
  room-recovery rooms --prefix voice-       global options go after the command too
settings come from the environment or .env: LIVEKIT_URL, LIVEKIT_API_KEY,
LIVEKIT_API_SECRET, ROOM_STALE_TIMEOUT (seconds, default 300), ROOM_PREFIX (scope).
"""

_PLAIN_HELP = output.no_color()  # Rich's help styles text even with NO_COLOR; click's does not

app = typer.Typer(
    name=output.PROGRAM,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None if _PLAIN_HELP else "rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(epilog="\b\n" + _EPILOG if _PLAIN_HELP else _EPILOG)  # \b: click keeps lines
def _global_options(
    ctx: typer.Context,
    url: Url = None,
    prefix: Prefix = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Keep LiveKit voice-agent rooms healthy: list, inspect and clean rooms."""
    command_line(ctx).take(url, prefix, quiet, as_json)


_demo = typer.Typer()
app.add_typer(rooms.app)
app.add_typer(system.app)
app.add_typer(services.app)
app.add_typer(_demo)  # last in the help, as the agent is a part `up` runs


@_demo.command(
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def agent(ctx: typer.Context) -> int:
    """Run the offline demo voice agent worker (see `room-recovery agent --help`)."""
    return _demo_agent(ctx.args)


def _demo_agent(arguments: list[str]) -> int:
    """`room-recovery agent ARGS`: the demo worker has its own options and event loop."""
    from ..demo.command import main as agent_main  # MissingExtraError without [demo]

    return agent_main(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: sys.argv[1:]); returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["agent"]:
            return _demo_agent(arguments[1:])
        result = typer.main.get_command(app).main(
            args=arguments,
            prog_name=output.PROGRAM,
            standalone_mode=False,
            obj=CommandLine(arguments),
        )
    except typer.TyperException as exc:  # a bad option, argument or command (typer>=0.28)
        output.error(_usage_message(exc))
        return exc.exit_code
    except RoomRecoveryError as exc:
        output.error(str(exc))
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return 130
    return result if isinstance(result, int) else 0


def _usage_message(exc: typer.TyperException) -> str:
    """One line: what is wrong, and where to read the usage."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    path = context.command_path if context is not None else output.PROGRAM
    return f"{message} (see `{path} --help`)"
