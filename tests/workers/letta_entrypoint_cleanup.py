"""The guide's worker with its cleanup moved from the request handler to the entrypoint: the
handler only accepts, and the entrypoint imports `livekit_room_manager` and calls
`ensure_clean_room` before connecting. That code runs in the job's own process, out of
the worker's reach: the job then links to the watchdog itself.

    python tests/workers/letta_entrypoint_cleanup.py start      (LIVEKIT_* from the environment)
"""

import logging

from livekit.agents import AgentServer, JobContext, WorkerOptions, cli

logger = logging.getLogger("letta-voice-agent")


async def entrypoint(ctx: JobContext) -> None:
    # Clean up stale participants before joining
    try:
        from livekit_room_manager import RoomManager

        manager = RoomManager()
        await manager.ensure_clean_room(ctx.room.name)
    except Exception as e:
        logger.warning(f"Room cleanup failed: {e}")

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
