"""Does your own worker take jobs? livekit-agents' `/worker` says what load it reports.

A worker started with `start` serves `GET /worker` on 8081. livekit-server sends no new job
to a worker whose load is at its `load_threshold` (0.7 by default in production), and by
default the load is the machine's CPU: on a busy small machine the worker silently gets
no agents. This check reads the reported load and says what to change.
"""

from __future__ import annotations

import aiohttp

from ..core.defaults import WORKER_HTTP_PORT, local_url
from .outcome import Check, Outcome, skipped

DEFAULT_WORKER_URL = local_url(WORKER_HTTP_PORT, "/worker")
DEFAULT_LOAD_THRESHOLD = 0.7  # livekit-agents' production default


NAME = "your worker's load lets it take jobs"


async def worker_takes_jobs(http: aiohttp.ClientSession, url: str) -> Check:
    """The load your worker reports at `url`, against livekit-agents' default threshold."""
    try:
        async with http.get(url) as response:
            body = await response.json(content_type=None)
        load = float(body.get("worker_load", 0.0))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError, AttributeError):
        return skipped(NAME, f"no livekit-agents worker answers at {url}")
    return load_verdict(load, str(body.get("agent_name") or ""))


def load_verdict(load: float, agent_name: str) -> Check:
    """Whether a worker reporting `load` gets jobs at livekit-agents' default threshold."""
    name = NAME
    agent = agent_name or "(automatic dispatch)"
    if load < DEFAULT_LOAD_THRESHOLD:
        return Check(name, Outcome.OK, f"worker {agent} reports load {load:.2f}")
    return Check(
        name,
        Outcome.FAIL,
        f"worker {agent} reports load {load:.2f}, at or above livekit-agents' default "
        f"load_threshold {DEFAULT_LOAD_THRESHOLD}: unless you raised it, LiveKit sends this "
        "worker no new jobs (its load is the machine's CPU by default)",
        "count jobs instead of CPU: load_fnc=functools.partial(job_load, 8) with "
        "`from room_recovery.agent import job_load`, and load_threshold=math.inf",
    )
