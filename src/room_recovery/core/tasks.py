"""Ending the tasks a part started: cancel, then wait until they are over."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel `tasks` and wait for each to end; their CancelledError is expected and dropped.

    A cancellation of the task that calls this is not dropped: it propagates as usual (a
    plain `suppress(CancelledError)` around the await would swallow it too). An exception
    a task raised while ending propagates.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
