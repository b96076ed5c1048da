"""A part's output, copied to its rotated log file without ever blocking the part.

The copy reads in CHUNK-sized pieces: a line of any length (cut into MAX_LINE pieces)
never fills the part's pipe, and a dead part's pipe is drained for at most PIPE_DRAIN
seconds, in case something it started still holds it.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
from collections.abc import AsyncIterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3
CHUNK = 64 * 1024  # bytes read from a child's output at once
MAX_LINE = 64 * 1024  # a longer line is logged in pieces of this size
PIPE_DRAIN = 5.0  # seconds to finish copying a dead child's output (a grandchild may hold it)


def rotating_log(path: Path) -> logging.Logger:
    """A logger that writes raw lines to `path`, rotated at 5 MB, 3 backups kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part_logger = logging.getLogger(f"room_recovery.parts.{path.stem}")
    part_logger.propagate = False
    part_logger.setLevel(logging.INFO)
    for handler in list(part_logger.handlers):
        part_logger.removeHandler(handler)
        handler.close()
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    part_logger.addHandler(handler)
    return part_logger


async def output_lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """The stream's lines, read in chunks; a line longer than MAX_LINE comes in pieces."""
    pending = b""
    while chunk := await stream.read(CHUNK):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            for start in range(0, max(len(line), 1), MAX_LINE):
                yield line[start : start + MAX_LINE].decode(errors="replace")
        while len(pending) >= MAX_LINE:
            piece, pending = pending[:MAX_LINE], pending[MAX_LINE:]
            yield piece.decode(errors="replace")
    if pending:
        yield pending.decode(errors="replace")


async def drain_output(task: asyncio.Task[None] | None, name: str) -> None:
    """Let the copy of a dead part's output (`task`) finish, for at most PIPE_DRAIN seconds: a
    grandchild that inherited the pipe must not hold the supervisor."""
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), PIPE_DRAIN)
    except TimeoutError:
        task.cancel()
        logger.warning(
            "%s exited, but something it started still holds its output; not copying more",
            name,
            extra={"part": name},
        )
    except Exception:
        logger.exception("copying the output of %s failed", name)
    finally:
        await asyncio.gather(task, return_exceptions=True)
