"""Long-running loops that never die unseen, and the health they report.

`run_loop(health, body)` runs `body` every `health.interval` seconds for as long as its
task lives. An iteration that raises anything but cancellation is caught and counted, and
logged with the loop's name at most once every LOG_EVERY seconds (with how many failed
since); an iteration that outlives `health.budget` is cut short and counts as failed. The
next iteration runs as usual: a loop ends only when it is cancelled.

`LoopHealth` is what `/healthz`, `status` and `doctor` read. Its two verdicts differ in
what fixes them:

* `stalled`: no iteration has finished, well or badly, for STALE_INTERVALS intervals (plus
  its budget). The loop's task is gone or its event loop is blocked; a restart fixes it.
* `failing`: iterations finish, but the last one failed (LiveKit unreachable, a bug). It is
  reported with the error; restarting the process would not help.

Pure bookkeeping over monotonic times, except `run_loop`, which sleeps and logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .errors import RoomRecoveryError

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3  # a loop is stalled after this many intervals without an iteration
LOG_EVERY = 10.0  # seconds between log lines for a loop that keeps failing


@dataclass
class LoopHealth:
    """When one loop last ran and last succeeded; all times are `time.monotonic()`."""

    name: str
    interval: float
    budget: float  # the longest one iteration may take before it is cut short
    started: float = field(default_factory=time.monotonic)
    last_run: float | None = None  # an iteration finished, well or badly
    last_ok: float | None = None
    last_error: str | None = None  # of the last iteration, None if it succeeded
    failures: int = 0  # iterations failed in a row
    runs: int = 0  # iterations finished, well or badly
    _logged: float | None = None
    _unlogged: int = 0

    def succeeded(self, now: float) -> None:
        self.last_run = self.last_ok = now
        self.last_error = None
        self.failures = 0
        self.runs += 1

    def failed(self, error: str, now: float) -> bool:
        """Record a failed iteration; True when it should be logged now."""
        self.last_run = now
        self.last_error = error
        self.failures += 1
        self.runs += 1
        self._unlogged += 1
        if self._logged is None or now - self._logged >= LOG_EVERY:
            self._logged = now
            return True
        return False

    def take_unlogged(self) -> int:
        """Failures since the last log line (this one included), and start counting again."""
        count, self._unlogged = self._unlogged, 0
        return count

    def stalled(self, now: float) -> str | None:
        """Why this loop looks stuck (its task gone, its event loop blocked), or None."""
        since = self.last_run if self.last_run is not None else self.started
        allowed = STALE_INTERVALS * self.interval + self.budget
        if now - since <= allowed:
            return None
        return (
            f"the {self.name} loop has not finished an iteration for {now - since:.0f} s "
            f"(it runs every {self.interval:g} s)"
        )

    def failing(self) -> str | None:
        """The last iteration's error, or None if it succeeded (or none has finished)."""
        if self.last_error is None:
            return None
        return f"the {self.name} loop failed {self.failures} time(s) in a row: {self.last_error}"

    def to_dict(self, now: float) -> dict[str, object]:
        def ago(moment: float | None) -> float | None:
            return None if moment is None else round(now - moment, 1)

        return {
            "interval": self.interval,
            "last_run_ago": ago(self.last_run),
            "last_ok_ago": ago(self.last_ok),
            "failures": self.failures,
            "last_error": self.last_error,
            "stalled": self.stalled(now) is not None,
        }


def problems(loops: Iterable[LoopHealth], now: float) -> tuple[list[str], list[str]]:
    """(stalled, failing): the reasons, one per loop, for a health answer."""
    stalled = [reason for loop in loops if (reason := loop.stalled(now))]
    failing = [reason for loop in loops if (reason := loop.failing())]
    return stalled, failing


async def run_loop(
    health: LoopHealth,
    body: Callable[[], Awaitable[None]],
    *,
    first_delay: float | None = None,
) -> None:
    """Run `body` every `health.interval` seconds until cancelled; never raise otherwise.

    The first iteration runs after `first_delay` (default: one interval).
    """
    await asyncio.sleep(health.interval if first_delay is None else first_delay)
    while True:
        try:
            async with asyncio.timeout(health.budget):
                await body()
        except TimeoutError:
            _record_failure(health, f"an iteration took longer than {health.budget:g} s")
        except Exception as exc:  # a loop must outlive any error in it
            if _stopping():  # a library turned our cancellation into its own error
                raise asyncio.CancelledError from exc
            _record_failure(health, _describe(exc), exc)
        else:
            health.succeeded(time.monotonic())
        await asyncio.sleep(health.interval)


def _stopping() -> bool:
    """Whether this task was asked to stop (cancelled), whatever its body made of that."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _record_failure(health: LoopHealth, error: str, exc: BaseException | None = None) -> None:
    if not health.failed(error, time.monotonic()):
        return
    count = health.take_unlogged()
    unexpected = exc is not None and not _is_ours(exc)
    logger.warning(
        "the %s loop failed (%d time(s) in the last %gs); it keeps running: %s",
        health.name,
        count,
        LOG_EVERY,
        error,
        extra={"loop": health.name, "failures": health.failures},
        exc_info=exc if unexpected else None,  # a bug gets its traceback, once per LOG_EVERY
    )


def _is_ours(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_ours(inner) for inner in exc.exceptions)
    return isinstance(exc, RoomRecoveryError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions[:3])
    return str(exc) or type(exc).__name__
