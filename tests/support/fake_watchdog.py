"""A `WatchdogContext` over a `FakeTransport`, for one look at a room without a process.

The parts are the watchdog's own (RoomBook, HeartbeatTracker, WorkerLinks, Metrics); only
the leadership is a fake (`FakeLeadership`: no Redis, told whether it leads), and the
manager's calls go to the FakeTransport, whose `before_change` is the lease check.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from room_recovery.core.errors import NotLeading
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings
from room_recovery.rules.attention import AttentionPolicy
from room_recovery.rules.liveness import HeartbeatTracker
from room_recovery.rules.watch import WatchPolicy
from room_recovery.watchdog.context import Options
from room_recovery.watchdog.leader import Leadership
from room_recovery.watchdog.links import WorkerLinks
from room_recovery.watchdog.metrics import Metrics
from room_recovery.watchdog.rooms import RoomBook, WatchedRoom

from .fake_transport import FakeTransport, manager_on


@dataclass(frozen=True)
class FakeOptions:
    agent_name: str = "fallback-agent"
    automatic: bool = False
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    attention: AttentionPolicy = field(default_factory=AttentionPolicy)


class FakeLeadership(Leadership):
    """Leads until told otherwise: `fenced` (Redis says another leads: `fence` raises) or
    `lease_ran_out` (on this watchdog's own clock: `check_lease`, before each call)."""

    def __init__(self) -> None:
        super().__init__("")
        self.fenced = False
        self.lease_ran_out = False
        self.claimed: list[str] = []
        self.claim_taken = False  # another watchdog claimed the room a moment ago

    def check_lease(self) -> None:
        if self.lease_ran_out or self.fenced:
            raise NotLeading("the lease ran out (FakeLeadership)")

    async def fence(self) -> None:
        if self.fenced:
            raise NotLeading("another watchdog leads (FakeLeadership)")

    async def claim(self, room: str, seconds: float) -> bool:
        await self.fence()
        self.claimed.append(room)
        return not self.claim_taken


class FakeWatchdog:
    """What `look_at_room` uses of the watchdog; `recoveries` records `recovered` calls."""

    def __init__(self, transport: FakeTransport, options: FakeOptions | None = None) -> None:
        self.lead = FakeLeadership()
        self.leadership: Leadership = self.lead
        transport.before_change = self.lead.check_lease  # as `service.Watchdog` wires it
        self.transport = transport
        self.settings: Settings = transport.settings
        self.manager: RoomManager = manager_on(transport)
        self._options = options or FakeOptions()
        self.links = WorkerLinks("key", "secret")
        self.book = RoomBook(self._options.attention, time.monotonic())
        self.heartbeats = HeartbeatTracker()
        self.metrics = Metrics()
        self.gate = asyncio.Semaphore(4)
        self.recoveries: list[tuple[str, str, str]] = []
        self.errors: list[Exception] = []

    @property
    def options(self) -> Options:
        return self._options

    def watch(self, room: str) -> WatchedRoom:
        """Start watching `room` (as a webhook would); its state between looks."""
        return self.book.wake(room, time.monotonic())

    def log_error(self, exc: Exception, room: str = "") -> None:
        self.errors.append(exc)

    def recovered(self, room: str, cause: str, detail: str = "") -> None:
        self.recoveries.append((room, cause, detail))

    def spawn_check(self, room: str) -> asyncio.Task[bool]:
        raise AssertionError("a look spawns no other look")
