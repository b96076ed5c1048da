"""The worker's load by jobs, not by the machine's CPU: for the demo agent and yours.

import functools, math
from room_recovery.agent import job_load
WorkerOptions(..., load_fnc=functools.partial(job_load, 8), load_threshold=math.inf)
"""

from __future__ import annotations

from typing import Any

# livekit-server's `agents.target_load`: it sends a job only to a worker whose reported
# load is below it (1.13: the job's affinity is `target_load - load`, and none is none)
LIVEKIT_TARGET_LOAD = 0.7


def job_load(max_jobs: int, server: Any, target_load: float = LIVEKIT_TARGET_LOAD) -> float:
    """The worker's load as the server sees it: 0 with no job, `target_load` at `max_jobs`.

    livekit-agents reports the machine's CPU use by default, and livekit-server sends no
    job to a worker whose reported load is at or above its `agents.target_load` (0.7),
    whatever the worker's own `load_threshold`: on a busy 2-core machine the person would
    wait for an agent that never comes. Jobs, not CPU, measure this agent's capacity, and
    the load reaches the server's limit at `max_jobs` jobs exactly (a plain share of
    `max_jobs` reached it at 6 of 8).

    Pair it with `load_threshold=math.inf`: the server then does the counting. A finite
    threshold lets livekit-agents refuse a job on its own estimate, and with no job running
    it counts a job still being accepted as `load_threshold / num_idle_processes`, so with
    1.0 and one idle process a second person who arrives meanwhile is refused and waits for
    a retry ("An agent within a second" in docs/benchmarks.md).
    """
    return target_load * min(1.0, len(server.active_jobs) / max(max_jobs, 1))
