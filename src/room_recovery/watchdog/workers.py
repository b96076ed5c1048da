"""What the watchdog does when its worker links report (`links.WorkerLinks`).

A worker whose link drops died with its jobs: each of their agents is removed (by the sid
that joined before the death, never a person or a later agent) and replaced at once where
a person still waits. A worker that links (again) brings its agent back: people waiting
for that agent get it now rather than at their next retry, failed mark or not. Only the
leader acts (`leader.Leadership`): each action is fenced, each dispatch claims its room.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

from ..core.errors import NotLeading, RoomRecoveryError
from ..core.recovery import replace_agent
from ..protocol.links import JobRecord
from ..protocol.room_status import recovering
from ..rules.recovery import DeadAgent
from ..rules.watch import RoomHistory, dispatched
from .context import WatchdogContext


async def workers_lost(watchdog: WatchdogContext, jobs: list[JobRecord], died_at: float) -> None:
    """A worker died with these jobs: replace each agent at once, where a person waits.

    A standby does nothing: a worker links to every watchdog it is given, and the leader
    heard of the death on its own link (it could not act on it anyway: `gate` fences)."""
    if not watchdog.leadership.leading:
        return
    await asyncio.gather(*(replace_lost(watchdog, job, died_at) for job in jobs))


async def replace_lost(watchdog: WatchdogContext, job: JobRecord, died_at: float) -> None:
    """Remove the lost job's agent (of kind AGENT: the sid its link reported, else the
    participant of that identity that joined before `died_at`) and dispatch it again if
    a person is left without an agent."""
    if not watchdog.settings.in_scope(job.room):
        return
    state = watchdog.book.wake(job.room, time.monotonic())
    dead = DeadAgent.of_job(job.job_id, job.identity, job.sid, died_at)

    async def gate(action: str) -> bool:
        if action == "dispatch":  # all watchdogs together: one dispatch per claim
            return await watchdog.leadership.claim(job.room, watchdog.options.watch.dispatch_wait)
        await watchdog.leadership.fence()
        return True

    async with watchdog.gate, state.lock:
        try:
            outcome = await replace_agent(
                watchdog.manager,
                job.room,
                dead,
                job.agent_name,
                job.metadata,
                cause="worker_died",
                gate=gate,
                only_if_listed=True,  # a link may speak only of agents LiveKit shows
            )
        except NotLeading:
            return  # superseded: the new leader acts
        except RoomRecoveryError as exc:
            watchdog.log_error(exc)
            return
        watchdog.heartbeats.forget(job.room, job.identity)
        if outcome.removed:
            watchdog.recovered(job.room, "ghost_removed", f"{job.identity}: its worker was lost")
        if outcome.dispatched:
            now = time.monotonic()
            state.agent_name = job.agent_name
            state.replacing = job.identity
            history = RoomHistory(now, (now,), agent_died=True, last_dispatch=now)
            state.history = dispatched(history, outcome.dispatch_id)
            watchdog.recovered(job.room, "worker_died", f"{job.identity}'s worker was lost")
        elif not outcome.removed and outcome.serving is None:
            # its agent is not (or no longer) listed: nothing of the link's word is acted on,
            # but a person this room's own look finds waiting is served without the grace
            state.history = replace(state.history, agent_died=True)


async def worker_ready(watchdog: WatchdogContext, agent_name: str) -> None:
    """A worker for `agent_name` (re)registered: people waiting for that agent get it now,
    in their own room, whether their last dispatch was dropped or their room marked failed."""
    if not watchdog.leadership.leading:
        return
    now = time.monotonic()
    for name, state in list(watchdog.book.rooms.items()):
        if not state.waiting or state.agent_name not in (None, agent_name):
            continue
        state.ready_at = now
        if state.replacing is not None:  # the page waits again, for as long as before
            with contextlib.suppress(RoomRecoveryError):
                await watchdog.leadership.fence()
                mark = recovering("worker_died", state.replacing)
                await watchdog.manager.update_room_status(name, mark)
        if not state.busy():
            state.looking = watchdog.spawn_check(name)
