"""Who gets a token, and whether LiveKit answers: the page server's checks that call out.

* `header_secret` / `authorize_of`: an optional sign-in your application does first;
* `limits_of`: the per-client bounds (`limits`) from the settings;
* `existing_rooms`: which of a client's rooms LiveKit still lists, asked only at its cap;
* `LiveKitProbe`: LiveKit's reachability for `/healthz`, asked at most every 5 s.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from ..core.errors import ConfigurationError, RoomRecoveryError
from ..core.manager import RoomManager
from ..core.settings import Settings
from .limits import TokenLimits

logger = logging.getLogger(__name__)

PROBE_EVERY = 5.0  # seconds between /healthz's calls to LiveKit
ANSWER_WITHIN = 1.0  # seconds /healthz waits for one (the supervisor's health check: 2 s)
CALL_TIMEOUT = 5.0  # seconds for the calls made while answering one request


class LiveKitProbe:
    """Whether LiveKit answers, asked at most every PROBE_EVERY seconds (one call at a
    time, however many health checks come). A health check waits for an answer at most
    ANSWER_WITHIN: a LiveKit that hangs (its Redis stopped, say) makes the page server
    say "failing" at once, never so slowly that its own supervisor takes it for stalled
    and restarts a page server that is fine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._checked = -PROBE_EVERY
        self._problem: str | None = None
        self._asking: asyncio.Task[None] | None = None

    async def problem(self) -> str | None:
        if self._asking is None and time.monotonic() - self._checked >= PROBE_EVERY:
            self._asking = asyncio.create_task(self._ask_and_keep(), name="livekit-probe")
        if self._asking is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._asking), ANSWER_WITHIN)
            except TimeoutError:
                return (
                    f"LiveKit has not answered the health probe within {ANSWER_WITHIN:g} s "
                    f"(still asking; the last answer: {self._problem or 'fine'})"
                )
        return self._problem

    async def _ask_and_keep(self) -> None:
        try:
            self._problem = await self._ask()
        finally:
            self._checked = time.monotonic()
            self._asking = None

    async def _ask(self) -> str | None:
        probe_room = f"{self.settings.room_prefix}healthz-probe"
        try:
            async with RoomManager(settings=self.settings, request_timeout=2) as manager:
                await manager.get_room_info(probe_room)
        except RoomRecoveryError as exc:
            return str(exc)
        return None


Authorize = Callable[[web.Request], Awaitable[bool]]


def header_secret(name: str, value: str) -> Authorize:
    """An `authorize` hook: the request must carry header `name` with `value` (which your
    application's own front end or proxy adds once it has signed the person in)."""
    if not name or not value:
        raise ConfigurationError(
            f"the token sign-in header needs a name and a value (got name {name!r}); set "
            "both, e.g. ROOM_RECOVERY_TOKEN_AUTH_HEADER=X-App-Auth and "
            "ROOM_RECOVERY_TOKEN_AUTH=<a long random value your proxy adds>"
        )
    expected = value.encode()

    async def authorize(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get(name, "").encode(), expected)

    return authorize


def limits_of(settings: Settings) -> TokenLimits:
    """ROOM_RECOVERY_TOKEN_RATE, _ROOMS and _TOTAL_ROOMS (0 turns one off)."""
    rate, rooms = settings.room_recovery_token_rate, settings.room_recovery_token_rooms
    total = settings.room_recovery_token_total_rooms
    return TokenLimits(per_minute=rate or None, open_rooms=rooms or None, total_rooms=total or None)


def authorize_of(settings: Settings) -> Authorize | None:
    """ROOM_RECOVERY_TOKEN_AUTH_HEADER with ROOM_RECOVERY_TOKEN_AUTH, when either is set."""
    name, value = settings.room_recovery_token_auth_header, settings.room_recovery_token_auth
    if not name and not value:
        return None
    return header_secret(name, value)


async def existing_rooms(settings: Settings, rooms: Sequence[str]) -> set[str]:
    """Which of these rooms LiveKit still lists; when it cannot say, none (the person's
    join then fails with its own clear error, rather than a wrong 429)."""
    if not rooms:
        return set()
    try:
        async with RoomManager(settings=settings, request_timeout=CALL_TIMEOUT) as manager:
            listed = await manager.rooms_named(rooms)
    except RoomRecoveryError as exc:
        logger.warning("Could not count a client's open rooms: %s", exc)
        return set()
    return {room.name for room in listed}
