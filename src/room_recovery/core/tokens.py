"""Tokens for people: one room, a limited life, and the agent to dispatch when it opens.

The page's server mints these (`web`), and so do the benchmarks. The secret signs them
here and never leaves the process.
"""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from ..protocol.messages import dispatch_metadata
from .settings import Settings

# A token is used once, to join one room; livekit-client refreshes it over the open
# connection afterwards. Ten minutes covers a slow join; a leaked token is soon worthless.
DEFAULT_TOKEN_TTL = 600.0  # seconds


def person_token(
    settings: Settings,
    room: str,
    identity: str,
    agent_name: str | None = None,
    *,
    ttl: float = DEFAULT_TOKEN_TTL,
    name: str | None = None,
) -> str:
    """A JWT that lets `identity` join `room` only, for `ttl` seconds.

    With `agent_name`, the token dispatches that agent when its join creates the room
    (LiveKit ignores a token's dispatch for a room that already exists), and the dispatch
    metadata names the person, so the agent's pre-join cleanup keeps them.
    """
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl))
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
    )
    if name is not None:
        token = token.with_name(name)
    if agent_name is not None:
        dispatch = api.RoomAgentDispatch(
            agent_name=agent_name, metadata=dispatch_metadata(identity)
        )
        token = token.with_room_config(api.RoomConfiguration(agents=[dispatch]))
    return token.to_jwt()
