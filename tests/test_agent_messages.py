"""The data-message format shared by the page and the agent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from room_recovery.protocol.messages import (
    AgentSelection,
    RoomCleanup,
    parse_message,
    room_cleanup,
)


def test_the_pages_room_cleanup_is_understood() -> None:
    message = parse_message(b'{"type": "room_cleanup", "timestamp": "2025-01-31T12:00:00.000Z"}')
    assert message == RoomCleanup(timestamp=datetime(2025, 1, 31, 12, tzinfo=UTC))


def test_the_pages_agent_selection_is_understood() -> None:
    body = {"type": "agent_selection", "agent_id": "demo", "agent_name": "demo-agent"}
    assert parse_message(json.dumps(body).encode()) == AgentSelection("demo", "demo-agent")


def test_a_room_cleanup_may_name_its_room() -> None:
    message = parse_message(room_cleanup(room="voice-1").to_bytes())
    assert isinstance(message, RoomCleanup) and message.room == "voice-1"


def test_room_cleanup_is_written_as_javascript_writes_dates() -> None:
    moment = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    body = json.loads(room_cleanup(now=moment).to_bytes())
    assert body == {"type": "room_cleanup", "timestamp": "2025-01-31T12:00:00.123Z"}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff",
        b"{",
        b"[]",
        b"null",
        b'{"type": "room_cleanup"}',
        b'{"type": "room_cleanup", "timestamp": "soon"}',
        b'{"type": "room_cleanup", "timestamp": "2025-01-31T12:00:00Z", "room": 1}',
        b'{"type": "agent_selection", "agent_id": "x"}',
        b'{"type": "unknown"}',
        b'{"no": "type"}',
        b" " * 5000,
        b"[" * 4000,
    ],
)
def test_malformed_messages_are_ignored_with_a_warning(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_message(payload) is None
    assert "Ignoring a malformed data message" in caplog.text
