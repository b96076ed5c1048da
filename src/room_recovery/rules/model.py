"""What the rules see of a room and its participants: plain data, no server types.

The manager turns LiveKit's `Room` and `ParticipantInfo` into these (`core.views`); every
rule in this package decides over them alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MAX_ROOM_NAME_BYTES = 256  # livekit-server's default limit.max_room_name_length
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # an agent's dispatch name


class Kind(StrEnum):
    """A participant's kind, as the server API reports it."""

    STANDARD = "standard"
    INGRESS = "ingress"
    EGRESS = "egress"
    SIP = "sip"
    AGENT = "agent"
    OTHER = "other"


class State(StrEnum):
    """A participant's connection state, as the server API reports it."""

    JOINING = "joining"
    JOINED = "joined"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class RoomView:
    """What the policy needs to know of a room."""

    name: str
    creation_time: float  # seconds since the epoch
    num_participants: int


@dataclass(frozen=True)
class ParticipantView:
    """What the policy needs to know of a participant."""

    identity: str
    kind: Kind
    state: State
    joined_at: float  # seconds since the epoch
    track_count: int
    heartbeat_at: float | None = None  # when its last heartbeat was sent (epoch s), if any
    sid: str = ""  # the participant's sid: one connection, never reused


@dataclass(frozen=True)
class Removal:
    """A participant to remove, and why (the reason reaches logs and reports)."""

    identity: str
    reason: str
    sid: str = ""  # the participant judged so: a removal never hits a later one of that identity


def room_name_problem(name: str) -> str | None:
    """Why LiveKit would refuse this room name, or None when it is acceptable."""
    if not name or not name.strip():
        return "a room name must not be empty"
    if len(name.encode()) > MAX_ROOM_NAME_BYTES:
        return f"a room name must be at most {MAX_ROOM_NAME_BYTES} bytes, got {len(name.encode())}"
    return None


AUTOMATIC = "auto:"  # `auto:LABEL`: an agent of LiveKit's automatic dispatch (no agent_name)


def agent_ref(spec: str) -> tuple[str, bool]:
    """`NAME` (dispatched by name) or `auto:LABEL` (automatic dispatch) as (name, automatic)."""
    if spec.startswith(AUTOMATIC):
        return spec.removeprefix(AUTOMATIC), True
    return spec, False


def valid_agent_name(name: str) -> bool:
    """Whether `name` can be an agent's dispatch name here (letters, digits, `-_.`, ≤ 64)."""
    return AGENT_NAME.fullmatch(name) is not None


def has_a_person(participants: Iterable[ParticipantView]) -> bool:
    """Whether anyone but an agent is in the room (people, phone callers, ingress)."""
    return any(p.kind is not Kind.AGENT for p in participants)


def is_person(participant: ParticipantView) -> bool:
    """Someone an agent serves: a standard participant or a phone caller, connected."""
    connected = participant.state in (State.JOINED, State.ACTIVE)
    return connected and participant.kind in (Kind.STANDARD, Kind.SIP)
