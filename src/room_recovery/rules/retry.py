"""When the page tries again: the spec's retries in fresh rooms, 1 s, 2 s, 3 s apart.

The page (`web/static/app.js`) waits `retry_delay(n)` before its n-th retry; the delays
are linear, as the spec's values are (it calls them exponential).
"""

from __future__ import annotations


def retry_delay(attempt: int, step: float = 1.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, 3 …): the spec's 1 s, 2 s, 3 s."""
    if attempt < 1:
        raise ValueError(f"retry attempts are counted from 1, got {attempt}")
    return step * attempt
