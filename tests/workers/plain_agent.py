"""A worker with no room-recovery code at all: LiveKit's automatic dispatch, and an
entrypoint that only connects. What it gets is the watchdog alone (see the docs: a dead
agent is seen when LiveKit drops its ghost, about 20 s, and replaced then).

    python tests/workers/plain_agent.py start      (LIVEKIT_* from the environment)
"""

from livekit.agents import AgentServer, JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()


def jobs_as_load(server: AgentServer) -> float:
    # test-only: the load by jobs, not by the machine's CPU (see the module docstring)
    return min(1.0, len(server.active_jobs) / 8)


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            load_fnc=jobs_as_load,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
