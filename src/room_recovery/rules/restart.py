"""When the supervisor restarts a part that died: doubling backoff, and when to give up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts a part that died: backoff, and when to give up."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    crash_limit: int = 5  # crashes within `window` seconds before giving up
    window: float = 120.0


def restart_delay(recent_crashes: int, restart: RestartPolicy) -> float:
    """Seconds before the next start, doubling with each recent crash: 1, 2, 4 … max_delay."""
    exponent = max(0, recent_crashes - 1)
    return float(min(restart.max_delay, restart.first_delay * 2**exponent))


def recent_crashes(crash_times: Sequence[float], now: float, restart: RestartPolicy) -> int:
    """How many crashes fall within the policy's window."""
    return sum(1 for t in crash_times if now - t <= restart.window)


def should_give_up(crash_times: Sequence[float], now: float, restart: RestartPolicy) -> bool:
    """Whether a part crashed too often to be restarted again (it is then reported failed)."""
    return recent_crashes(crash_times, now, restart) >= restart.crash_limit
