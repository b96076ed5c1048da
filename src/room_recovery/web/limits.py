"""How many tokens one client may have: a rate, and a cap on rooms it keeps open. No I/O.

Every token names a new room and (for a named agent) dispatches an agent into it, so an
unbounded `/api/token` lets anyone who reaches the page start agents without end. Two
bounds, per client (its address as the page server sees it):

* a token bucket: `burst` tokens at once, refilled at `per_minute`. The page itself asks
  for at most 1 + max_retries (4 by default) per session;
* `open_rooms`: rooms minted for the client that may still be open. A room counts while
  it is young (a token just minted has no room yet) or LiveKit still lists it; the server
  asks LiveKit only when a client reaches the cap, so a normal client costs no call.

A refusal is a 429 whose message says which bound and when to try again (Retry-After).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field

YOUNG_ROOM = 30.0  # seconds a minted room counts as open even if LiveKit does not list it
MAX_CLIENTS = 4096  # beyond this many, clients with nothing to remember are forgotten


@dataclass(frozen=True)
class TokenLimits:
    """Per-client bounds of `/api/token`; `None` turns one off. The defaults leave room
    for a person who reloads the page a few times while old rooms wind down."""

    per_minute: float | None = 30.0
    burst: int = 10
    open_rooms: int | None = 10


@dataclass
class _Client:
    tokens: float
    updated: float
    rooms: deque[tuple[str, float]] = field(default_factory=deque)  # (room, minted at)


class Refused(Exception):
    """A token request over a bound (429); `retry_after` in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenBook:
    """What each client was given lately; `check` then `record` around each token."""

    def __init__(self, limits: TokenLimits, room_lifetime: float) -> None:
        self.limits = limits
        self.room_lifetime = room_lifetime  # older rooms are forgotten (the token expired)
        self._clients: dict[str, _Client] = {}

    def check_rate(self, client: str, now: float) -> None:
        """Take one token from the client's bucket, or raise Refused."""
        limits = self.limits
        if limits.per_minute is None:
            return
        state = self._client(client, now)
        rate = limits.per_minute / 60
        state.tokens = min(limits.burst, state.tokens + (now - state.updated) * rate)
        state.updated = now
        if state.tokens < 1:
            wait = math.ceil((1 - state.tokens) / rate)
            raise Refused(
                f"too many token requests from {client}: at most {limits.per_minute:g} a "
                f"minute (bursts of {limits.burst}); try again in {wait} s",
                wait,
            )
        state.tokens -= 1

    def rooms_to_verify(self, client: str, now: float) -> list[str] | None:
        """None when the client is under its room cap; else its older rooms, for the
        caller to ask LiveKit which still exist (`check_rooms`)."""
        cap = self.limits.open_rooms
        if cap is None:
            return None
        state = self._client(client, now)
        while state.rooms and now - state.rooms[0][1] > self.room_lifetime:
            state.rooms.popleft()
        if len(state.rooms) < cap:
            return None
        return [room for room, minted in state.rooms if now - minted > YOUNG_ROOM]

    def check_rooms(self, client: str, existing: Collection[str], now: float) -> None:
        """Forget the client's rooms that are gone; raise Refused if it is still at its cap."""
        cap = self.limits.open_rooms
        state = self._client(client, now)
        state.rooms = deque(
            (room, minted)
            for room, minted in state.rooms
            if now - minted <= YOUNG_ROOM or room in existing
        )
        if cap is not None and len(state.rooms) >= cap:
            raise Refused(
                f"{client} already has {len(state.rooms)} rooms open, the most allowed; "
                "leave one (close its page) and try again",
                math.ceil(YOUNG_ROOM),
            )

    def record(self, client: str, room: str, now: float) -> None:
        self._client(client, now).rooms.append((room, now))

    def _client(self, client: str, now: float) -> _Client:
        if len(self._clients) > MAX_CLIENTS:
            self._forget_idle(now)
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client(float(self.limits.burst), now)
        return state

    def _forget_idle(self, now: float) -> None:
        """Drop clients with a full bucket and no room in its lifetime: they are as new."""
        refill = (self.limits.per_minute or 0) / 60
        for client, state in list(self._clients.items()):
            full = state.tokens + (now - state.updated) * refill >= self.limits.burst
            recent = any(now - minted <= self.room_lifetime for _room, minted in state.rooms)
            if full and not recent:
                del self._clients[client]
