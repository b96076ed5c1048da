"""Long-running loops never die unseen: their health, their logging, and the supervisor's
copy of a child's output. No server: plain data and in-process coroutines."""

from __future__ import annotations

import asyncio
import logging

import pytest

from room_recovery.core.errors import ServerUnreachableError
from room_recovery.core.health import Health, Verdict, _verdict
from room_recovery.core.loops import LOG_EVERY, STALE_INTERVALS, LoopHealth, run_loop
from room_recovery.system.part_output import MAX_LINE, output_lines
from tests.support.livekit import eventually

FAILING, HEALTHY, SILENT, STALLED = (
    Verdict.FAILING,
    Verdict.HEALTHY,
    Verdict.SILENT,
    Verdict.STALLED,
)

START = 1_000.0


def test_a_new_loop_is_neither_stalled_nor_failing() -> None:
    loop = LoopHealth("sweep", interval=5, budget=5, started=START)
    assert loop.stalled(START + 10) is None and loop.failing() is None


def test_a_loop_that_finishes_no_iteration_for_a_few_intervals_is_stalled() -> None:
    loop = LoopHealth("sweep", interval=5, budget=5, started=START)
    loop.succeeded(START + 5)
    allowed = STALE_INTERVALS * 5 + 5
    assert loop.stalled(START + 5 + allowed) is None
    reason = loop.stalled(START + 5 + allowed + 1)
    assert reason is not None and "sweep" in reason and "every 5 s" in reason


def test_a_loop_whose_iterations_fail_is_failing_with_the_error_but_not_stalled() -> None:
    loop = LoopHealth("sweep", interval=5, budget=5, started=START)
    for n in range(10):
        loop.failed("LiveKit server unreachable", START + 5 * n)
    assert loop.stalled(START + 50) is None
    assert loop.failing() == "the sweep loop failed 10 time(s) in a row: LiveKit server unreachable"
    loop.succeeded(START + 55)
    assert loop.failing() is None and loop.failures == 0


def test_a_failing_loop_is_logged_once_per_log_interval_with_the_count() -> None:
    loop = LoopHealth("poll", interval=0.25, budget=20, started=START)
    logged = [loop.failed("boom", START + 0.25 * n) for n in range(int(LOG_EVERY / 0.25) + 1)]
    assert logged[0] and logged[-1] and sum(logged) == 2
    assert loop.take_unlogged() == len(logged)


def test_health_is_stalled_before_failing_and_answers_503_for_either() -> None:
    stuck = LoopHealth("cleanup", interval=1, budget=1, started=START)
    broken = LoopHealth("sweep", interval=1, budget=1, started=START)
    broken.failed("refused", START + 59)
    health = Health.of([stuck, broken], START + 60)
    assert health.status == "stalled" and health.http_status == 503
    body = health.to_dict()
    assert len(body["problems"]) == 2  # type: ignore[arg-type]
    assert Health.of([], START).http_status == 200
    assert Health(failing=("LiveKit unreachable",)).status == "failing"


async def test_a_loop_survives_any_exception_and_records_its_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = LoopHealth("test", interval=0.01, budget=1)
    raised = [ServerUnreachableError("ws://x", "refused"), ExceptionGroup("g", [KeyError("k")])]
    succeeded = asyncio.Event()

    async def body() -> None:
        if raised:
            raise raised.pop(0)
        succeeded.set()

    with caplog.at_level(logging.WARNING, logger="room_recovery.core.loops"):
        task = asyncio.create_task(run_loop(loop, body, first_delay=0))
        try:
            await asyncio.wait_for(succeeded.wait(), 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert loop.last_ok is not None and loop.failures == 0
    # the first failure is logged (an expected error, no traceback); the next is counted
    assert "the test loop failed" in caplog.text and "refused" in caplog.text
    assert caplog.records[0].exc_info is None


async def test_an_iteration_that_hangs_is_cut_short_and_counted() -> None:
    loop = LoopHealth("test", interval=0.01, budget=0.05)
    hung = asyncio.Event()

    async def body() -> None:
        hung.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_loop(loop, body, first_delay=0))
    try:
        await asyncio.wait_for(hung.wait(), 5)

        async def counted() -> bool:
            return loop.failures > 0

        await eventually(counted, timeout=5, interval=0.01, what="the hung iteration to count")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert loop.last_error == "an iteration took longer than 0.05 s"


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (
            503,
            '{"status": "stalled", "problems": ["the poll loop has not finished"]}',
            STALLED,
        ),
        (503, '{"status": "failing", "problems": ["LiveKit unreachable"]}', FAILING),
        (503, "not registered", FAILING),
    ],
)
def test_a_part_is_restarted_only_when_stalled_or_silent(
    status: int, body: str, verdict: str
) -> None:
    health = _verdict(status, body)
    assert health.verdict == verdict
    assert health.needs_restart == (verdict == STALLED)
    assert health.problem


def test_silence_needs_a_restart_and_health_does_not() -> None:
    from room_recovery.core.health import PartHealth

    assert PartHealth(SILENT, "no answer").needs_restart
    assert not PartHealth(HEALTHY).needs_restart


async def test_a_child_s_megabyte_line_is_copied_in_pieces_and_nothing_is_lost() -> None:
    stream = asyncio.StreamReader()
    big = b"x" * (1024 * 1024)
    stream.feed_data(b"first\n" + big + b"\nlast")
    stream.feed_eof()
    lines = [line async for line in output_lines(stream)]
    assert lines[0] == "first" and lines[-1] == "last"
    pieces = lines[1:-1]
    assert all(len(piece) <= MAX_LINE for piece in pieces)
    assert sum(len(piece) for piece in pieces) == len(big)


async def test_a_loop_stops_when_cancelled_even_if_its_body_turns_that_into_an_error() -> None:
    # some libraries catch the cancellation of a call and raise their own error instead;
    # the loop must still stop, or whoever stops it waits forever
    health = LoopHealth("leader", interval=0.01, budget=5.0)
    entered = asyncio.Event()

    async def body() -> None:
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed while reading") from None

    task = asyncio.create_task(run_loop(health, body, first_delay=0))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    done, _pending = await asyncio.wait([task], timeout=5)
    assert task in done and task.cancelled()
