"""A worker with an agent_name (explicit dispatch) that uses room-recovery's pre-join hook
but not the session guard: no heartbeat, no goodbye handling. Its entrypoint only connects.

    python tests/workers/named_agent.py start      (LIVEKIT_* and AGENT_NAME from the env)

As in `letta_voice_agent.py`, `port=0` and the load by jobs are the test-only changes.
"""

from __future__ import annotations

import os

from livekit.agents import AgentServer, JobContext, WorkerOptions, cli

from room_recovery.agent import request_handler


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()


def jobs_as_load(server: AgentServer) -> float:
    # test-only: the load by jobs, not by the machine's CPU (see the module docstring)
    return min(1.0, len(server.active_jobs) / 8)


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            request_fnc=request_handler,
            agent_name=os.environ["AGENT_NAME"],
            load_fnc=jobs_as_load,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
