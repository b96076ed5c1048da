"""The worker's load by jobs, not by the machine's CPU: for the demo agent and yours.

from room_recovery.agent import job_load
WorkerOptions(..., load_fnc=functools.partial(job_load, 8), load_threshold=1.0)
"""

from __future__ import annotations

from typing import Any


def job_load(max_jobs: int, server: Any) -> float:
    """The worker's load as the server sees it: its share of `max_jobs`, from 0 to 1.

    livekit-agents reports the machine's CPU use by default, and livekit-server sends no
    job to a worker whose reported load is at or above its `agents.target_load` (0.7),
    whatever the worker's own `load_threshold`: on a busy 2-core machine the person would
    wait for an agent that never comes. Jobs, not CPU, measure this agent's capacity.
    """
    return min(1.0, len(server.active_jobs) / max(max_jobs, 1))
