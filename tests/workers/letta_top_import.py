"""The guide's worker with one line moved: `from livekit_room_manager import RoomManager` at
the top of the file instead of inside the handler. The worker monitor then attaches when
the worker registers, before any job, and the worker links to the watchdog at once.

    python tests/workers/letta_top_import.py start      (LIVEKIT_* from the environment)
"""

import logging

from livekit.agents import AgentServer, JobContext, JobRequest, WorkerOptions, cli

from livekit_room_manager import RoomManager

logger = logging.getLogger("letta-voice-agent")


async def request_handler(job_request: JobRequest) -> None:
    room_name = job_request.room.name

    # Clean up stale participants before joining
    try:
        manager = RoomManager()
        await manager.ensure_clean_room(room_name)
    except Exception as e:
        logger.warning(f"Room cleanup failed: {e}")

    await job_request.accept()


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
            load_fnc=jobs_as_load,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
