"""Everything the page must agree on with the agents and the watchdog, as one JSON object.

The page's server sends it in `/api/config` under "protocol"; `web/static/protocol.js`
builds and reads messages and room status from it alone, so a name changed here changes
on both sides at once.
"""

from __future__ import annotations

from .agent_state import AGENT_STATE_ATTRIBUTE, AGENT_STATES
from .heartbeat import HEARTBEAT_ATTRIBUTE
from .messages import AGENT_SELECTION, MESSAGE_TOPIC, ROOM_CLEANUP
from .room_status import RECOVERY_WAIT, ROOM_STATUS_KEY, STATUS_FAILED, STATUS_RECOVERING


def page_protocol() -> dict[str, dict[str, str | float | list[str]]]:
    """The message types, room-status names and agent attributes, for the page."""
    return {
        "messages": {
            "room_cleanup": ROOM_CLEANUP,
            "agent_selection": AGENT_SELECTION,
            "topic": MESSAGE_TOPIC,
        },
        "room_status": {
            "key": ROOM_STATUS_KEY,
            "failed": STATUS_FAILED,
            "recovering": STATUS_RECOVERING,
            "recovery_wait": RECOVERY_WAIT,
        },
        "attributes": {
            "heartbeat": HEARTBEAT_ATTRIBUTE,
            "agent_state": AGENT_STATE_ATTRIBUTE,
            "agent_states": list(AGENT_STATES),
        },
    }
