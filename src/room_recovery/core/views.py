"""LiveKit's server types turned into the plain data the rules decide over."""

from __future__ import annotations

from livekit import api

from ..protocol.heartbeat import heartbeat_of, heartbeat_time
from ..rules.model import Kind, ParticipantView, State
from ..rules.watch import DispatchFate, DispatchView

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
        sid=info.sid,
    )


def is_agent_info(info: api.ParticipantInfo) -> bool:
    """Whether a server ParticipantInfo is an agent (by kind, never by identity)."""
    return bool(info.kind == api.ParticipantInfo.Kind.AGENT)


_STARTING = {api.JobStatus.JS_PENDING, api.JobStatus.JS_RUNNING}


def dispatch_fate(dispatches: list[api.AgentDispatch], dispatch_id: str) -> DispatchFate:
    """What became of one dispatch: taken by a worker (a job exists), and still starting.

    A dispatch that is no longer listed (the room was recreated) was taken by nobody.
    LiveKit's job states never change when a job dies (livekit/agents#1472): "starting"
    is only ever a reason to wait a bounded time, never proof of life.
    """
    for dispatch in dispatches:
        if dispatch.id == dispatch_id:
            jobs = list(dispatch.state.jobs)
            starting = any(job.state.status in _STARTING for job in jobs)
            return DispatchFate(taken=bool(jobs), starting=starting)
    return DispatchFate(taken=False)


def dispatch_views(dispatches: list[api.AgentDispatch]) -> list[DispatchView]:
    """The rules' view of a room's dispatches (`rules.watch.dispatch_on_its_way`)."""
    return [
        DispatchView(
            created_at=d.state.created_at / 1e9,
            jobs=len(d.state.jobs),
            starting=tuple(
                (
                    (job.state.started_at or d.state.created_at) / 1e9,
                    job.state.worker_id,
                )
                for job in d.state.jobs
                if job.state.status in _STARTING
            ),
        )
        for d in dispatches
    ]
