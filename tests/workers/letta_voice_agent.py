"""The user's worker, wired as `ROOM_RECOVERY_GUIDE.md` says: LiveKit's automatic dispatch
(no agent_name), `cli.run_app`, and the guide's request-handler block pasted character for
character, its import *inside* the handler. Nothing else of room-recovery is in this file.
`tests/test_guide_worker.py` reads the block out of the guide and fails if this copy differs.

    python tests/workers/letta_voice_agent.py start      (LIVEKIT_* from the environment)

A few test-only settings differ from a user's, outside the guide's block: `port=0` (several
run at once); the load counted by jobs, not by the machine's CPU (`jobs_as_load`,
`load_threshold=1.0`): livekit-server sends no job to a worker that reports 70 % load, and
a busy 2-core test machine, running tests in parallel, would otherwise refuse jobs at
random (the README gives users the same advice, `job_load`, for small machines; the
limit is 12 jobs, `LETTA_JOBS_AT_LIMIT` sets another); and one
idle job process, where livekit-agents keeps one per CPU (`LETTA_IDLE_PROCESSES` sets it:
`bench/chaos.py` sets one per CPU, as a user's worker has it).
"""

import logging
import os

from livekit.agents import AgentServer, JobContext, JobRequest, WorkerOptions, cli

logger = logging.getLogger("letta-voice-agent")


async def request_handler(job_request: JobRequest):
    room_name = job_request.room.name

    # Clean up stale participants before joining
    try:
        from livekit_room_manager import RoomManager
        manager = RoomManager()
        await manager.ensure_clean_room(room_name)
    except Exception as e:
        logger.warning(f"Room cleanup failed: {e}")

    await job_request.accept()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()

    @ctx.room.on("data_received")
    def on_data(packet: object) -> None:
        logger.info("data received")


def jobs_as_load(server: AgentServer) -> float:
    # test-only: the load by jobs, not by the machine's CPU (see the module docstring);
    # livekit-server's limit (its agents.target_load, 0.7) is reached at 12 jobs
    at_limit = int(os.environ.get("LETTA_JOBS_AT_LIMIT", "12"))
    return 0.7 * min(1.0, len(server.active_jobs) / at_limit)


def idle_processes() -> int:
    # test-only: one idle job process, unless LETTA_IDLE_PROCESSES says otherwise
    return int(os.environ.get("LETTA_IDLE_PROCESSES", "1"))


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            request_fnc=request_handler,
            load_fnc=jobs_as_load,
            load_threshold=1.0,
            num_idle_processes=idle_processes(),
            port=0,
        )
    )
