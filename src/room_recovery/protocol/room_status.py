"""What room-recovery writes into a room's metadata, so pages know a room's fate.

The watchdog merges `{"room_recovery": {"status": ..., "reason": ...}}` into the room's
JSON metadata (other keys are kept); the page reads it and stops waiting at once when the
status is `failed`. The page gets these names from `/api/config` (`protocol.page`).
"""

from __future__ import annotations

import json

ROOM_STATUS_KEY = "room_recovery"  # the key of room-recovery's status in room metadata
STATUS_FAILED = "failed"  # the watchdog gave up on the room: no agent will come


def metadata_object(metadata: str) -> dict[str, object]:
    """A room's metadata as a JSON object; other metadata is kept under "metadata"."""
    if not metadata:
        return {}
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return {"metadata": metadata}
    return parsed if isinstance(parsed, dict) else {"metadata": parsed}


def with_status(metadata: str, status: dict[str, str]) -> str:
    """The room's metadata with room-recovery's `status` merged in, as JSON."""
    merged = metadata_object(metadata)
    merged[ROOM_STATUS_KEY] = status
    return json.dumps(merged)


STATUS_RECOVERING = "recovering"  # an agent is being replaced in this room: wait in it
RECOVERY_WAIT = 10.0  # seconds a page waits in a recovering room before it tries a new one


def recovering(cause: str, agent: str) -> dict[str, str]:
    """The status that tells pages to stay: a replacement for agent `agent` is on its way.

    It names the agent it replaces, so that a page whose agent leaves later, for another
    reason, does not take this old mark for a new recovery.
    """
    return {
        "status": STATUS_RECOVERING,
        "reason": cause,
        "agent": agent,
        "wait": f"{RECOVERY_WAIT:g}",
    }
