"""What the watchdog's reactions use of it (`service.Watchdog`), named as a Protocol.

`look` (one room's look) and `workers` (what the worker links report) act through it, so
that they need not import `service`, which imports them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..core.manager import RoomManager
from ..core.settings import Settings
from ..rules.attention import AttentionPolicy
from ..rules.liveness import HeartbeatTracker
from ..rules.watch import WatchPolicy
from .leader import Leadership
from .links import WorkerLinks
from .metrics import Metrics
from .rooms import RoomBook


class Options(Protocol):
    @property
    def agent_name(self) -> str: ...
    @property
    def automatic(self) -> bool: ...
    @property
    def watch(self) -> WatchPolicy: ...
    @property
    def attention(self) -> AttentionPolicy: ...


class WatchdogContext(Protocol):
    """The watchdog's parts and the few calls its reactions make."""

    settings: Settings
    manager: RoomManager
    links: WorkerLinks
    leadership: Leadership
    book: RoomBook
    heartbeats: HeartbeatTracker
    metrics: Metrics
    gate: asyncio.Semaphore

    @property
    def options(self) -> Options: ...

    def log_error(self, exc: Exception, room: str = "") -> None: ...

    def recovered(self, room: str, cause: str, detail: str = "") -> None: ...

    def spawn_check(self, room: str) -> asyncio.Task[bool]: ...
