"""LiveKit's server types turned into the plain data the rules decide over."""

from __future__ import annotations

from livekit import api

from ..protocol.heartbeat import heartbeat_of, heartbeat_time
from ..rules.model import Kind, ParticipantView, State

_KINDS = {
    api.ParticipantInfo.Kind.STANDARD: Kind.STANDARD,
    api.ParticipantInfo.Kind.INGRESS: Kind.INGRESS,
    api.ParticipantInfo.Kind.EGRESS: Kind.EGRESS,
    api.ParticipantInfo.Kind.SIP: Kind.SIP,
    api.ParticipantInfo.Kind.AGENT: Kind.AGENT,
}
_STATES = {
    api.ParticipantInfo.State.JOINING: State.JOINING,
    api.ParticipantInfo.State.JOINED: State.JOINED,
    api.ParticipantInfo.State.ACTIVE: State.ACTIVE,
    api.ParticipantInfo.State.DISCONNECTED: State.DISCONNECTED,
}


def participant_view(info: api.ParticipantInfo) -> ParticipantView:
    """The rules' view of a server ParticipantInfo."""
    joined_at = info.joined_at_ms / 1000 if info.joined_at_ms else float(info.joined_at)
    return ParticipantView(
        identity=info.identity,
        kind=_KINDS.get(info.kind, Kind.OTHER),
        state=_STATES.get(info.state, State.DISCONNECTED),
        joined_at=joined_at,
        track_count=len(info.tracks),
        heartbeat_at=heartbeat_time(heartbeat_of(info.attributes)),
    )


def is_agent_info(info: api.ParticipantInfo) -> bool:
    """Whether a server ParticipantInfo is an agent (by kind, never by identity)."""
    return bool(info.kind == api.ParticipantInfo.Kind.AGENT)
