"""What runs inside an agent worker: the pre-join hook, the session guard, the heartbeat.

Needs livekit-agents: `pip install 'room-recovery[agent]'`.

    from room_recovery.agent import request_handler, guard_session, job_load
"""

from ..core.extras import AGENT_MODULES, require_extra

require_extra("agent", *AGENT_MODULES, what="room_recovery.agent")

from .guard import GuardOptions, SessionGuard, guard_session  # noqa: E402
from .hook import make_request_handler, request_handler  # noqa: E402
from .load import job_load  # noqa: E402

__all__ = [
    "GuardOptions",
    "SessionGuard",
    "guard_session",
    "job_load",
    "make_request_handler",
    "request_handler",
]
