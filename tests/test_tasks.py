"""Ending a part's tasks: cancel, wait, and never swallow the caller's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from room_recovery.core.tasks import cancel_and_wait


async def test_the_tasks_are_cancelled_and_over_when_it_returns() -> None:
    forever = asyncio.create_task(asyncio.Event().wait())
    await cancel_and_wait(forever, None)
    assert forever.cancelled()


async def test_an_error_a_task_raises_while_ending_is_not_hidden() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise OSError("socket already closed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(OSError, match="already closed"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_goes_through() -> None:
    stubborn_started = asyncio.Event()

    async def stubborn() -> None:
        stubborn_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # takes a moment to end

    child = asyncio.create_task(stubborn())
    await stubborn_started.wait()
    caller = asyncio.create_task(cancel_and_wait(child))
    await asyncio.sleep(0.01)
    caller.cancel()  # the caller is stopped while it waits for the child
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
