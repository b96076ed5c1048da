"""A worker that takes every job and never sends its agent: its entrypoint fails at once.
LiveKit counts the job as taken; the person waits on. (The watchdog's attempts count.)

    python tests/workers/broken_agent.py start      (LIVEKIT_* from the environment)
"""

from livekit.agents import JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    raise RuntimeError("this agent is broken on purpose")


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
