"""An agent written the way the spec's users write theirs (`letta_voice_agent.py`):
`WorkerOptions` and `cli.run_app`, with the pre-join cleanup adopted by one import and one
argument, and the graceful shutdown by one line in the entrypoint.

    python tests/support/legacy_agent.py start      (LIVEKIT_* and AGENT_NAME from the env)
"""

from __future__ import annotations

import functools
import os

from livekit.agents import JobContext, WorkerOptions, cli

from room_recovery.agent import job_load
from room_recovery.agent_hook import request_handler
from room_recovery.session_guard import guard_session


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    guard_session(ctx)


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            request_fnc=request_handler,
            agent_name=os.environ["AGENT_NAME"],
            # a busy 2-core test machine must still get jobs: load by jobs, not by CPU
            load_fnc=functools.partial(job_load, 8),
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
