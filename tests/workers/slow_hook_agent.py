"""`plain_agent.py` (LiveKit's automatic dispatch, no room-recovery code at all) with a
request hook that takes 2 s before it accepts, as a hook does on a busy machine (LiveKit
allows it 3 s). While its hook runs, LiveKit lists the room's dispatch with no job yet.

    python tests/workers/slow_hook_agent.py start      (LIVEKIT_* from the environment)
"""

import asyncio

from livekit.agents import JobRequest, WorkerOptions, cli
from plain_agent import entrypoint, jobs_as_load

HOOK_SECONDS = 2.0


async def request_handler(job_request: JobRequest) -> None:
    await asyncio.sleep(HOOK_SECONDS)
    await job_request.accept()


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            request_fnc=request_handler,
            load_fnc=jobs_as_load,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
