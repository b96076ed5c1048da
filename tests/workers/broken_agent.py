"""A worker that takes every job and never sends its agent: its entrypoint fails at once.
LiveKit counts the job as taken; the person waits on. (The watchdog's attempts count.)

    python tests/workers/broken_agent.py start      (LIVEKIT_* from the environment)
"""

from livekit.agents import AgentServer, JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    raise RuntimeError("this agent is broken on purpose")


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
