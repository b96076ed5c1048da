"""A worker wired exactly as the spec's users wire theirs (`letta_voice_agent.py`): LiveKit's
automatic dispatch (no agent_name), `cli.run_app`, and the spec's request-handler snippet as
its only room-recovery code. Its entrypoint knows nothing of room-recovery.

    python tests/workers/letta_voice_agent.py start      (LIVEKIT_* from the environment)

Two test-only settings differ from a verbatim copy: `port=0` (several run at once) and
`load_threshold=1.0` (a busy 2-core test machine must still get jobs; see the README).
"""

from __future__ import annotations

import logging

from livekit.agents import JobContext, JobRequest, WorkerOptions, cli

from livekit_room_manager import RoomManager

logger = logging.getLogger("letta-voice-agent")


async def request_handler(req: JobRequest) -> None:
    # the spec's snippet
    await RoomManager().ensure_clean_room(req.room.name)
    await req.accept()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()

    @ctx.room.on("data_received")
    def on_data(packet: object) -> None:
        logger.info("data received")


if __name__ == "__main__":
    cli.run_app(
        WorkerOptions(
            entrypoint_fnc=entrypoint,
            request_fnc=request_handler,
            load_threshold=1.0,
            num_idle_processes=1,
            port=0,
        )
    )
