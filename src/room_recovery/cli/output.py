"""What `room-recovery` shows: consoles, tables, JSON, the progress bar, one-line errors.

On a terminal there is colour, boxed tables and a progress bar. Piped, or with NO_COLOR
set, there are no escape codes at all: tables are plain columns with no trailing spaces,
lines are never wrapped, and JSON is exactly what `json.dumps` writes, as scripts expect.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..core.logs import JSON, TEXT, formatter, log_format

PROGRAM = "room-recovery"
_PIPED_WIDTH = 100_000  # piped lines are never wrapped: scripts read them whole
_LOG_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


@functools.cache
def console(*, stderr: bool = False) -> Console:
    """The console for stdout (or stderr).

    Rich finds out whether it writes to a terminal (FORCE_COLOR and TTY_COMPATIBLE can
    say so); NO_COLOR turns off every style, not only colours. Markup, emoji codes and
    highlighting are off: room names and messages are printed as they are.
    """
    made = Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        color_system=None if no_color() else "auto",
    )
    if not made.is_terminal:
        made.width = _PIPED_WIDTH
    return made


def no_color() -> bool:
    """Whether NO_COLOR asks for no styles at all (https://no-color.org)."""
    return os.environ.get("NO_COLOR", "") != ""


def on_terminal(*, stderr: bool = False) -> bool:
    return console(stderr=stderr).is_terminal


def line(text: str | Text = "") -> None:
    """Print a line to stdout: styled on a terminal, else exactly its plain text."""
    out = console()
    if out.is_terminal:
        out.print(text, soft_wrap=True)
    else:
        print(text.plain if isinstance(text, Text) else text, flush=True)


def print_json(data: Any, **dumps: Any) -> None:
    """Print `json.dumps(data, **dumps)` as it is: the shape scripts rely on."""
    print(json.dumps(data, **dumps), flush=True)


def error(message: str) -> None:
    """The one line an error gets on stderr: `room-recovery: <message>`."""
    err = console(stderr=True)
    if err.is_terminal:
        err.print(Text.assemble((f"{PROGRAM}: ", "bold red"), message), soft_wrap=True)
    else:
        print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def table(*headers: str, show_header: bool = True) -> Table:
    """A table with a box on a terminal, plain columns two spaces apart when piped."""
    if on_terminal():
        return Table(*headers, box=box.ROUNDED, show_header=show_header, header_style="bold")
    return Table(*headers, box=None, show_header=show_header, pad_edge=False)


def show(renderable: RenderableType, *, indent: int = 0) -> None:
    """Print a table (or any renderable) to stdout; piped, without trailing spaces."""
    out = console()
    if indent:
        renderable = Padding(renderable, (0, 0, 0, indent), expand=False)
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    for text in captured.get().splitlines():
        print(text.rstrip())


def age(seconds_since_epoch: float) -> str:
    """How long ago, briefly: 45s, 12m, 3h."""
    seconds = max(0, int(time.time() - seconds_since_epoch))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@contextlib.contextmanager
def progress(description: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while inside; yields `update(done, total)`.

    Shown only when `enabled` and stderr is a terminal; otherwise `update` does nothing.
    The bar goes away at the end, leaving what the command prints.
    """
    err = console(stderr=True)
    if not enabled or not err.is_terminal:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class _ConsoleHandler(logging.Handler):
    """Log lines through the stderr console, so that they print above a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = Text(self.format(record), style=_LOG_STYLES.get(record.levelname, ""))
            console(stderr=True).print(text, soft_wrap=True)
        except Exception:
            self.handleError(record)


def configure_logging(*, quiet: bool, as_json: bool = False) -> None:
    """Log to stderr, INFO and up (WARNING and up when `quiet`); the SDKs' INFO is noise.

    Every line has its time and its fields (`core.logs`): JSON lines with `as_json` or
    ROOM_RECOVERY_LOG_FORMAT=json (as under `up`), readable text otherwise.
    """
    form = JSON if as_json else log_format()
    handler: logging.Handler = (
        _ConsoleHandler()
        if form == TEXT and on_terminal(stderr=True)
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(formatter(form))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler])
    for noisy in ("livekit", "livekit.agents", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
