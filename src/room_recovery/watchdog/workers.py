"""What the watchdog does when its worker links report (`links.WorkerLinks`).

A worker whose link drops died with its jobs: each of their agents is replaced at once
where a person still waits. A worker that links (again) brings its agent back: people
waiting for that agent get it now rather than at their next retry. Only the leader acts
(`leader.Leadership`): each action is fenced, each dispatch claims its room first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Protocol

from ..core.errors import RoomRecoveryError
from ..core.manager import RoomManager
from ..core.recovery import replace_agent
from ..core.settings import Settings
from ..core.views import participant_view
from ..protocol.links import JobRecord
from ..protocol.room_status import recovering
from ..rules.liveness import HeartbeatTracker
from ..rules.model import is_person
from ..rules.watch import RoomHistory, WatchPolicy
from .leader import Leadership
from .links import WorkerLinks
from .metrics import Metrics
from .rooms import RoomBook


class Options(Protocol):
    @property
    def watch(self) -> WatchPolicy: ...


class Watchdog(Protocol):
    """What these reactions use of the watchdog (`service.Watchdog`)."""

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


async def workers_lost(watchdog: Watchdog, jobs: list[JobRecord]) -> None:
    """A worker died with these jobs: replace each agent at once, where a person waits."""
    await asyncio.gather(*(replace_lost(watchdog, job) for job in jobs))


async def replace_lost(watchdog: Watchdog, job: JobRecord) -> None:
    if not watchdog.settings.in_scope(job.room):
        return
    state = watchdog.book.wake(job.room, time.monotonic())
    async with watchdog.gate, state.lock:
        try:
            await watchdog.leadership.fence()
            infos = await watchdog.manager.list_participants(job.room)
            if not any(is_person(participant_view(i)) for i in infos):
                return
            state.agent_name = job.agent_name
            state.replacing = job.identity
            # no other linked worker of that agent: a dispatch would be dropped; the room
            # gets its agent when one links (`worker_ready`)
            served = watchdog.links.serves(job.agent_name) is not False
            if served:
                wait = watchdog.options.watch.dispatch_wait
                served = await watchdog.leadership.claim(job.room, wait)
            now = time.monotonic()
            await replace_agent(
                watchdog.manager,
                job.room,
                job.identity,
                job.agent_name,
                job.metadata,
                cause="worker_died",
                dispatch=served,
            )
        except RoomRecoveryError as exc:
            watchdog.log_error(exc)
            return
        watchdog.heartbeats.forget(job.room, job.identity)
        state.history = RoomHistory(now, (now,) if served else (), False, agent_died=True)
        if served:  # else the dispatch, when a worker links, counts as agent_died
            watchdog.recovered(job.room, "worker_died", f"{job.identity}'s worker was lost")


async def worker_ready(watchdog: Watchdog, agent_name: str) -> None:
    """A worker for `agent_name` linked: people waiting for that agent get it now."""
    if not watchdog.leadership.leading:
        return
    for name, state in list(watchdog.book.rooms.items()):
        if state.agent_name != agent_name or state.history.waiting_since is None:
            continue
        if state.unserved and state.history.dispatches:
            # that dispatch was dropped (no worker then): it does not count
            state.history = replace(state.history, dispatches=state.history.dispatches[:-1])
        state.unserved = False
        if state.replacing is not None:  # the page waits again, for as long as before
            with contextlib.suppress(RoomRecoveryError):
                await watchdog.leadership.fence()
                mark = recovering("worker_died", state.replacing)
                await watchdog.manager.update_room_status(name, mark)
        watchdog.spawn_check(name)
