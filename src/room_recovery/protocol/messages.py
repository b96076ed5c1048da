"""The data messages the page sends to the agent: one format, shared by both sides.

The page publishes them with `room.localParticipant.publishData(bytes, {reliable: true})`
and **no topic**; the bytes are UTF-8 JSON objects. The page's code mirrors this module.

``room_cleanup``: the person is leaving; the agent leaves and the room is deleted when
nobody else is left::

    {"type": "room_cleanup", "timestamp": "2025-01-31T12:00:00.000Z"}

    type       "room_cleanup"                                          required
    timestamp  ISO 8601 date and time (JavaScript `toISOString()`)     required
    room       the room's name; when present it must be the room the   optional
               message arrives in, or the message is ignored

``agent_selection``: which agent the person chose, sent right after connecting::

    {"type": "agent_selection", "agent_id": "demo", "agent_name": "demo-agent"}

    type        "agent_selection"                                      required
    agent_id    a non-empty string                                     required
    agent_name  a non-empty string (the name the worker registers)     required

Anything else (not UTF-8, not JSON, not an object, an unknown `type`, a missing or
mistyped field, more than `MAX_MESSAGE_BYTES`) is malformed: `parse_message` returns None
and says why at WARNING level. Receivers ignore such messages; they never raise.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

ROOM_CLEANUP = "room_cleanup"
AGENT_SELECTION = "agent_selection"
MESSAGE_TOPIC = ""  # the page sends without a topic
MAX_MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class RoomCleanup:
    """The person is leaving: the agent should leave, and the room go."""

    timestamp: datetime
    room: str | None = None

    def to_bytes(self) -> bytes:
        """The message as the page sends it."""
        body: dict[str, str] = {"type": ROOM_CLEANUP, "timestamp": _iso(self.timestamp)}
        if self.room is not None:
            body["room"] = self.room
        return json.dumps(body).encode()


@dataclass(frozen=True)
class AgentSelection:
    """The agent the person chose on the page."""

    agent_id: str
    agent_name: str

    def to_bytes(self) -> bytes:
        """The message as the page sends it."""
        body = {"type": AGENT_SELECTION, "agent_id": self.agent_id, "agent_name": self.agent_name}
        return json.dumps(body).encode()


Message = RoomCleanup | AgentSelection


class MalformedMessage(ValueError):
    """Why a data message is not one of ours (internal: `parse_message` returns None)."""


def room_cleanup(room: str | None = None, now: datetime | None = None) -> RoomCleanup:
    """A `room_cleanup` message stamped with `now` (default: the current UTC time)."""
    return RoomCleanup(timestamp=now or datetime.now(UTC), room=room)


def parse_message(data: bytes) -> Message | None:
    """The message in `data`, or None (logged as a warning) when it is malformed."""
    try:
        return decode_message(data)
    except MalformedMessage as exc:
        logger.warning(
            "Ignoring a malformed data message: %s",
            exc,
            extra={"size": len(data), "preview": data[:80].decode("utf-8", "replace")},
        )
        return None


def decode_message(data: bytes) -> Message:
    """The message in `data`. Raises MalformedMessage saying what is wrong with it."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"{len(data)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedMessage("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise MalformedMessage("JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedMessage(f"a JSON {type(body).__name__}, not an object")
    kind = body.get("type")
    if kind == ROOM_CLEANUP:
        room = body.get("room")
        if room is not None and not isinstance(room, str):
            raise MalformedMessage(f"room_cleanup: 'room' must be a string, got {room!r}")
        return RoomCleanup(timestamp=_timestamp(body.get("timestamp")), room=room)
    if kind == AGENT_SELECTION:
        return AgentSelection(
            agent_id=_text(body, "agent_id"), agent_name=_text(body, "agent_name")
        )
    raise MalformedMessage(f"unknown message type {kind!r}")


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MalformedMessage(
            f"room_cleanup: 'timestamp' must be an ISO 8601 string, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessage(f"room_cleanup: 'timestamp' {value!r} is not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(
            f"agent_selection: {field!r} must be a non-empty string, got {value!r}"
        )
    return value


def _iso(moment: datetime) -> str:
    """JavaScript's `toISOString()` form: UTC, milliseconds, a trailing Z."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# --- dispatch metadata: whom a job is for ------------------------------------------

PERSON_KEY = "person"


def dispatch_metadata(person: str) -> str:
    """The dispatch metadata naming the person a job is for (the token's RoomAgentDispatch)."""
    return json.dumps({PERSON_KEY: person})


def person_from_metadata(metadata: str) -> str | None:
    """The person named in a job's dispatch metadata, or None when there is none."""
    if not metadata:
        return None
    try:
        body = json.loads(metadata)
    except ValueError:
        return None
    person = body.get(PERSON_KEY) if isinstance(body, dict) else None
    return person if isinstance(person, str) and person else None
