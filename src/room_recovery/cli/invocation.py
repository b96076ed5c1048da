"""One run of `room-recovery`: its global options, and what each command is given.

The global options (--url, --prefix, -q/--quiet, --json) may come before the command, where
the app's callback takes them, or after it (`room-recovery rooms --prefix voice-`): a
command declared with `command(app, help)` takes them too. Both land in the run's
`CommandLine` (the click context's `obj`, made by `main`); the ones after the command win.
Before the command runs, logging is set up and the settings are loaded, once, as `Run`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from ..core.settings import Settings, load_settings
from . import output

GLOBAL_PANEL = "Global options (before or after the command)"

Url = Annotated[
    str | None,
    typer.Option(
        "--url", help="LiveKit server URL (default: LIVEKIT_URL)", rich_help_panel=GLOBAL_PANEL
    ),
]
Prefix = Annotated[
    str | None,
    typer.Option(
        "--prefix",
        help="only rooms whose name starts with this (ROOM_PREFIX)",
        rich_help_panel=GLOBAL_PANEL,
    ),
]
Quiet = Annotated[
    bool,
    typer.Option(
        "-q",
        "--quiet",
        help="print only warnings and errors in the log",
        rich_help_panel=GLOBAL_PANEL,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="print JSON for machines", rich_help_panel=GLOBAL_PANEL)
]


@dataclass
class CommandLine:
    """The arguments of this run, and the global options parsed from them so far."""

    argv: list[str]
    url: str | None = None
    prefix: str | None = None
    quiet: bool = False
    json: bool = False

    def take(self, url: str | None, prefix: str | None, quiet: bool, as_json: bool) -> None:
        """Add the global options given at one place; a value given later wins."""
        self.url = url if url is not None else self.url
        self.prefix = prefix if prefix is not None else self.prefix
        self.quiet = self.quiet or quiet
        self.json = self.json or as_json


def command_line(ctx: typer.Context) -> CommandLine:
    """The run's CommandLine (`main` passes it as the context's `obj`)."""
    found = ctx.find_object(CommandLine)
    if found is None:  # the app was invoked without `main`
        found = ctx.find_root().obj = CommandLine([])
    return found


@dataclass(frozen=True)
class Run:
    """What a command is given: its global options, the settings, its click context."""

    argv: tuple[str, ...]  # as the user typed them (`up --detach` runs them again)
    json: bool
    quiet: bool
    settings: Settings
    context: typer.Context


Handler = Callable[..., int]

_GLOBAL_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("global_url", Url, None),
        ("global_prefix", Prefix, None),
        ("global_quiet", Quiet, False),
        ("global_json", Json, False),
    )
]
_CONTEXT = inspect.Parameter(
    "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
)


def command(
    app: typer.Typer, help: str, name: str | None = None, *, streams_logs: bool = False
) -> Callable[[Handler], Handler]:
    """Declare `handler(run: Run, **options) -> exit code` as a command of `app`.

    Typer sees the handler's own options (all but `run`), then the global options. The
    command's name is the handler's, with dashes (`clean_stale` is `clean-stale`). With
    --json, a command's log shows warnings and errors only, as JSON lines; one that
    `streams_logs` (`up`) keeps its INFO lines, as JSON lines.
    """

    def register(handler: Handler) -> Handler:
        own = list(inspect.signature(handler, eval_str=True).parameters.values())[1:]

        def with_global_options(
            ctx: typer.Context,
            global_url: str | None,
            global_prefix: str | None,
            global_quiet: bool,
            global_json: bool,
            **options: Any,
        ) -> int:
            given = command_line(ctx)
            given.take(global_url, global_prefix, global_quiet, global_json)
            quiet = given.quiet or (given.json and not streams_logs)
            output.configure_logging(quiet=quiet, as_json=given.json)
            settings = load_settings(livekit_url=given.url, room_prefix=given.prefix)
            run = Run(tuple(given.argv), given.json, given.quiet, settings, ctx)
            return handler(run, **options)

        with_global_options.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [_CONTEXT, *own, *_GLOBAL_PARAMETERS], return_annotation=int
        )
        with_global_options.__doc__ = handler.__doc__
        app.command(name or handler.__name__.replace("_", "-"), help=help)(with_global_options)
        return handler

    return register
