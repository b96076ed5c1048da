"""How many tokens one client may have: a rate, and caps on the rooms kept open. No I/O.

Every token names a new room and (for a named agent) dispatches an agent into it, so an
unbounded `/api/token` lets anyone who reaches the page start agents without end. Bounds:

* per client, a token bucket: `burst` tokens at once, refilled at `per_minute`. The page
  itself asks for at most 1 + max_retries (4 by default) per session;
* per client, `open_rooms`: rooms minted for the client that may still be open;
* for the whole page server, `total_rooms`: rooms minted for anyone that may still be open.

A room counts while it is young (a token just minted has no room yet) or LiveKit still
lists it, however long that is: a client that stays connected keeps its rooms counted. The
server asks LiveKit only when a cap is reached, so a normal client costs no call.

A client is its address; IPv6 addresses count by their /64 (one host commonly holds a
whole /64, and rotating addresses within it must not buy new rooms). The book remembers at
most `MAX_CLIENTS` clients without a room; each request costs a bounded amount of work
however many clients came before (the least recently seen idle ones are forgotten first).

A refusal is a 429 whose message says which bound and when to try again (Retry-After).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass, field

YOUNG_ROOM = 30.0  # seconds a minted room counts as open even if LiveKit does not list it
MAX_CLIENTS = 4096  # clients without an open room remembered, least recently seen forgotten
EVICT_PER_REQUEST = 8  # at most this many forgotten per request: a bounded cost


def client_key(address: str) -> str:
    """Whom a request counts against: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class TokenLimits:
    """Bounds of `/api/token`; `None` turns one off. The defaults leave room for a person
    who reloads the page a few times while old rooms wind down."""

    per_minute: float | None = 30.0
    burst: int = 10
    open_rooms: int | None = 10
    total_rooms: int | None = 1000


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
    """What each client was given lately; `check_rate`, then the rooms, then `record`.

    `room_lifetime` is accepted for older callers and not used: a room is forgotten only
    once LiveKit no longer lists it.
    """

    def __init__(self, limits: TokenLimits, room_lifetime: float | None = None) -> None:
        self.limits = limits
        self._clients: OrderedDict[str, _Client] = OrderedDict()  # least recently seen first
        self._owners: dict[str, tuple[str, float]] = {}  # room counted -> (client, minted at)

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
        """None when the client and the server are under their room caps; else the rooms
        past their young age (the client's, or everyone's at the server's cap), for the
        caller to ask LiveKit which still exist (`check_rooms`)."""
        cap, total = self.limits.open_rooms, self.limits.total_rooms
        state = self._client(client, now)
        if total is not None and len(self._owners) >= total:  # at most `total` rooms
            return [room for room, (_, minted) in self._owners.items() if now - minted > YOUNG_ROOM]
        if cap is None or len(state.rooms) < cap:
            return None
        return [room for room, minted in state.rooms if now - minted > YOUNG_ROOM]

    def check_rooms(
        self,
        client: str,
        existing: Collection[str],
        now: float,
        asked: Collection[str] | None = None,
    ) -> None:
        """Forget the rooms asked about (`asked`, by default the client's old ones) that
        LiveKit no longer lists (not in `existing`); raise Refused if the client, or the
        whole server, is still at its cap."""
        state = self._client(client, now)
        if asked is None:
            asked = [room for room, minted in state.rooms if now - minted > YOUNG_ROOM]
        for room in set(asked) - set(existing):
            owner, _minted = self._owners.pop(room, ("", 0.0))
            holder = self._clients.get(owner)
            if holder is not None:
                holder.rooms = deque(entry for entry in holder.rooms if entry[0] != room)
        cap, total = self.limits.open_rooms, self.limits.total_rooms
        if cap is not None and len(state.rooms) >= cap:
            raise Refused(
                f"{client} already has {len(state.rooms)} rooms open, the most allowed; "
                "leave one (close its page) and try again",
                math.ceil(YOUNG_ROOM),
            )
        if total is not None and len(self._owners) >= total:
            raise Refused(
                f"this page server has {len(self._owners)} rooms open, the most it allows "
                "(ROOM_RECOVERY_TOKEN_TOTAL_ROOMS); try again in a moment",
                math.ceil(YOUNG_ROOM),
            )

    def record(self, client: str, room: str, now: float) -> None:
        self._client(client, now).rooms.append((room, now))
        self._owners[room] = (client, now)

    def _client(self, client: str, now: float) -> _Client:
        state = self._clients.get(client)
        if state is None:
            self._evict()
            state = self._clients[client] = _Client(float(self.limits.burst), now)
        else:
            self._clients.move_to_end(client)
        return state

    def _evict(self) -> None:
        """Forget a few of the least recently seen clients without a room, when there are
        too many: a forgotten client starts afresh, with a full bucket."""
        looked = 0
        while len(self._clients) >= MAX_CLIENTS and looked < EVICT_PER_REQUEST:
            name, state = next(iter(self._clients.items()))
            looked += 1
            if state.rooms:
                self._clients.move_to_end(name)  # its rooms keep it counted
            else:
                del self._clients[name]
