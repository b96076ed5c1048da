"""The watchdog: notices a person waiting without an agent and fixes it within seconds.

The spec leaves a waiting person to the page's 15 s timer and up to 45 s of retries. The
watchdog acts on the server side instead:

* LiveKit's webhooks (verified; anything unsigned or forged gets 401), worker links and a
  room listing every `sweep_interval` wake a room; a lost webhook delays, never prevents.
* Only rooms that may need something are looked at every `poll_interval` (`rules.attention`:
  someone waits, an agent's liveness is in doubt, a recovery is under way, or an event
  came a moment ago); quiet rooms cost nothing but a paced glance (`rooms.RoomBook`).
  `rules.watch.assess_room` decides: a person waiting past the grace gets an agent (a
  bounded number of times, then the room is marked failed so the page stops waiting);
  an agent whose heartbeat went silent is a ghost: removed, and replaced at once.
* Agent workers that run room-recovery's monitor keep a link open (`links.WorkerLinks`):
  agents their worker vouches for are never taken for ghosts, a job on its way blocks a
  second dispatch, and a worker whose link drops has its agents replaced at once.
* Stale rooms are cleaned a page at a time every `cleanup_interval`, and a room count
  above `room_alert_threshold` raises an alert in the log and the metrics.

Nothing outside ROOM_PREFIX is ever looked at or touched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from livekit import api

from ..core.defaults import DEMO_AGENT
from ..core.errors import RoomRecoveryError
from ..core.health import Health
from ..core.loops import LoopHealth, run_loop
from ..core.manager import RoomManager
from ..core.settings import Settings
from ..rules.attention import AttentionPolicy, next_page
from ..rules.liveness import HeartbeatTracker
from ..rules.replay import RecentIds
from ..rules.watch import WatchPolicy
from .journal import Journal
from .leader import CALL_TIMEOUT, Leadership, NotLeading
from .links import WorkerLinks
from .look import look_at_room
from .metrics import Metrics
from .parts import PartsCollector
from .rooms import RoomBook
from .workers import worker_ready, workers_lost

logger = logging.getLogger(__name__)
STOP_WAIT = 10.0  # seconds the watchdog waits for its loops and looks to stop


@dataclass(frozen=True)
class WatchdogOptions:
    """How the watchdog works; the defaults suit a small deployment."""

    agent_name: str = DEMO_AGENT  # dispatched when the room's own dispatch is unknown
    automatic: bool = False  # an automatic-dispatch worker serves rooms without a named one
    poll_interval: float = 0.25  # seconds between looks at each watched room
    sweep_interval: float = 5.0  # seconds between listings of every room
    cleanup_interval: float = 60.0  # seconds between stale cleanups
    room_alert_threshold: int = 100
    parts_status: Path | None = None  # `up`'s status.json: its parts' restarts, as metrics
    prometheus_url: str = ""  # a Prometheus with our alert rules: the view shows what fires
    concurrency: int = 8
    cleanup_page: int = 100  # rooms the stale cleanup examines per run, round-robin
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    attention: AttentionPolicy = field(default_factory=AttentionPolicy)


class Watchdog:
    """`async with Watchdog(settings, options)` runs its loops; webhooks come via `receive`."""

    def __init__(
        self, settings: Settings, options: WatchdogOptions, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.options = options
        self.metrics = metrics or Metrics()
        self.journal = Journal()  # the recent recoveries, for the operations view
        # one acting watchdog among many when REDIS_URL is set (`leader`): every call that
        # changes something is made only while its lease holds, and ends well before it ends
        self.leadership = Leadership(settings.redis_url, scope=settings.room_prefix)
        timeout = CALL_TIMEOUT if self.leadership.elected else 5.0
        self.manager = RoomManager(
            settings=settings, request_timeout=timeout, before_change=self.leadership.check_lease
        )
        verifier = api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret)
        self.receiver = api.WebhookReceiver(verifier)
        self._webhook_ids = RecentIds()  # a replayed webhook is ignored
        self.links = WorkerLinks(settings.livekit_api_key, settings.livekit_api_secret)
        self.links.on_lost = partial(workers_lost, self)
        self.links.on_ready = partial(worker_ready, self)
        self.links.on_job = self._wake
        self.metrics.leader.set_function(lambda: 1 if self.leadership.leading else 0)
        if self.leadership.elected:
            self.metrics.redis_up.set_function(lambda: 1 if self.leadership.reachable else 0)
        else:
            self.metrics.registry.unregister(self.metrics.redis_up)
        self.metrics.worker_links.set_function(self.links.count)
        self.metrics.linked_jobs.set_function(self.links.job_count)
        self.metrics.silent_links.set_function(self.links.silent_count)
        self.metrics.livekit_calls.set_function(lambda: self.manager.api_calls)
        self.metrics.room_alert_threshold.set(options.room_alert_threshold)
        if options.parts_status is not None:
            self.metrics.registry.register(PartsCollector(options.parts_status))
        self.heartbeats = HeartbeatTracker()
        self._lead: tuple[int | None, int] = (None, 0)  # the lead heartbeats were heard under
        self.book = RoomBook(options.attention, time.monotonic())
        self._listing: dict[str, api.Room] = {}  # the last room listing, by name
        self._cleaned_up_to = ""  # the cleanup's round-robin place among the room names
        self._tasks: list[asyncio.Task[None]] = []
        # the poll only starts looks (each runs on its own); a cleanup makes a few calls
        # per room, each bounded by the manager's request timeout
        call = self.manager.request_timeout
        self.loops = {
            "poll": LoopHealth("poll", options.poll_interval, call),
            "sweep": LoopHealth("sweep", options.sweep_interval, call),
            "cleanup": LoopHealth("cleanup", options.cleanup_interval, max(60, 4 * call)),
        }
        if self.leadership.elected:
            self.loops["leader"] = LoopHealth("leader", self.leadership.renew, call)
        self.metrics.watch_loops(self.loops.values())
        self.gate = asyncio.Semaphore(options.concurrency)
        self._last_error = 0.0
        self._alerting = False
        self._checks: set[asyncio.Task[bool]] = set()

    async def __aenter__(self) -> Watchdog:
        await self.manager.__aenter__()
        bodies = {"poll": self._poll, "sweep": self._sweep, "cleanup": self._cleanup}
        if self.leadership.elected:
            bodies["leader"] = self.leadership.step
        for name, body in bodies.items():
            # the sweep finds the rooms at once, and the election runs at once
            first = 0.0 if name in ("sweep", "leader") else None
            # run_loop outlives any error; a loop that stops anyway shows as stalled
            task = run_loop(self.loops[name], body, first_delay=first)
            self._tasks.append(asyncio.create_task(task, name=f"watchdog-{name}"))
        logger.info(
            "👀 watchdog started%s",
            " (it acts when elected leader through Redis)" if self.leadership.elected else "",
            extra={"prefix": self.settings.room_prefix, "agent": self.options.agent_name},
        )
        return self

    @property
    def listing(self) -> Mapping[str, api.Room]:
        """The rooms in scope at the last sweep, by name."""
        return self._listing

    @property
    def alerting(self) -> bool:
        """Whether the last sweep found more rooms than the alert threshold."""
        return self._alerting

    def health(self) -> Health:
        """The watchdog's loops and LiveKit's reachability, for /healthz, status and doctor."""
        return Health.of(self.loops.values(), time.monotonic())

    async def __aexit__(self, *exc_info: object) -> None:
        self.links.on_lost = self.links.on_ready = self.links.on_job = None  # links close
        tasks = [*self._tasks, *self._checks]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a task that ignores its cancellation is named, never waited on
            _done, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
            for task in stuck:
                logger.warning("watchdog: %s did not stop within %g s", task.get_name(), STOP_WAIT)
        self._tasks.clear()
        await self.leadership.close()
        await self.manager.close()

    # --- webhooks -----------------------------------------------------------------------

    def receive(self, body: bytes, authorization: str) -> api.WebhookEvent | None:
        """Verify and parse a webhook; None (and a log line) when it is unsigned or forged.
        A replay of one already received is returned as it is, and not acted on."""
        try:
            event = self.receiver.receive(body.decode("utf-8"), authorization)
        except Exception as exc:  # the SDK raises bare Exceptions for bad signatures
            self.metrics.webhooks_rejected.inc()
            logger.warning("rejected a webhook: %s", exc or type(exc).__name__)
            return None
        if event.id and not self._webhook_ids.first_time(event.id, time.monotonic()):
            self.metrics.webhooks.labels("replayed").inc()
            logger.info("ignored a replayed webhook %s (%s)", event.id, event.event)
            return event
        self.metrics.webhooks.labels(event.event or "unknown").inc()
        room = event.room.name
        if room and self.settings.in_scope(room):
            if event.event == "room_finished":
                self._forget(room)
            else:
                self._wake(room)
        return event

    def _wake(self, room: str) -> None:
        """Something happened in `room`: look at it now, then closely for a while."""
        if self.settings.in_scope(room):
            state = self.book.wake(room, time.monotonic())
            # a look under way misses it: the next poll's look sees it; a standby only notes
            if not state.busy() and self.leadership.leading:
                state.looking = self.spawn_check(room)

    # --- the loops ----------------------------------------------------------------------

    async def _poll(self) -> None:
        # each room's look runs on its own: a room whose calls stall is looked at again
        # when its look ends, and never delays the other rooms' next look
        if not self.leadership.leading:  # a standby keeps its book (sweep, webhooks) only
            return
        for name in self.book.due(time.monotonic()):
            self.book.rooms[name].looking = self.spawn_check(name)
        self.metrics.people_waiting.set(self.book.waiting_count())
        self.metrics.longest_wait.set(self.book.longest_wait(time.monotonic()))
        self.metrics.watched_rooms.labels("close").set(self.book.close_count())
        self.metrics.watched_rooms.labels("quiet").set(self.book.quiet_count())

    async def _sweep(self) -> None:
        rooms = await self.manager.list_rooms()  # LiveKit unreachable: the loop is failing
        now = time.monotonic()
        listing = {room.name: room for room in rooms}
        for name, room in listing.items():
            state = self.book.get(name)
            # a new room, or people came or went since the last listing: a lost webhook
            # delays a look by one sweep at most
            if state is None or state.listed not in (None, room.num_participants):
                state = self.book.wake(name, now)
            state.listed = room.num_participants
        for gone in set(self.book.rooms) - listing.keys():
            self._forget(gone)
        self._listing = listing
        self._alerting = self.metrics.count_rooms(
            len(listing), self.options.room_alert_threshold, self._alerting
        )
        self.metrics.count_participants(room.counts for room in self.book.rooms.values())

    async def _cleanup(self) -> None:
        if not self.leadership.leading:
            return
        await self.leadership.fence()
        # a page of rooms per run, round-robin: the calls per second stay bounded however
        # many rooms there are (the stale timeout is minutes; a room waits a few runs)
        page, self._cleaned_up_to = next_page(
            sorted(self._listing), self._cleaned_up_to, self.options.cleanup_page
        )
        report = await self.manager.cleanup_stale_rooms(
            rooms=[self._listing[name] for name in page]
        )
        self.metrics.cleanups.labels("room_deleted").inc(len(report.deleted))
        self.metrics.cleanups.labels("participant_removed").inc(len(report.removed))
        self.metrics.cleanups.labels("failed").inc(len(report.failed))

    def _forget(self, room: str) -> None:
        self.book.forget(room)
        self.heartbeats.forget_room(room)

    def recovered(self, room: str, cause: str, detail: str = "") -> None:
        """Count a recovery action by cause, and keep it for the operations view."""
        self.metrics.recoveries.labels(cause).inc()
        self.journal.add(room, cause, detail)

    def log_error(self, exc: Exception, room: str = "") -> None:
        """At most every 10 s, not four times a second; a bug (not ours) with its traceback."""
        now = time.monotonic()
        if now - self._last_error > 10:
            where = f" (room {room})" if room else ""
            bug = None if isinstance(exc, RoomRecoveryError) else exc
            logger.warning("watchdog%s: %s", where, exc or type(exc).__name__, exc_info=bug)
            self._last_error = now

    # --- one room -----------------------------------------------------------------------

    def note_lead(self) -> None:
        """A new lead (a new epoch: this watchdog took over, or leads again after Redis was
        away) hears every heartbeat afresh. What it heard before, as a standby or while
        Redis (LiveKit's bus too, on a cluster) was away, is no evidence of a death: a
        heartbeat frozen by an outage would otherwise be judged silent the moment it leads."""
        lead = (self.leadership.epoch, self.leadership.takeovers)  # epochs restart with Redis
        if lead != self._lead:
            self._lead = lead
            self.heartbeats = HeartbeatTracker()

    def spawn_check(self, room: str) -> asyncio.Task[bool]:
        self.note_lead()
        check = asyncio.create_task(self._check_quietly(room))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)
        return check

    async def _check_quietly(self, room: str) -> bool:
        """`check_room`, never raising: one room's trouble never stops the others'."""
        try:
            return await self.check_room(room)
        except NotLeading:
            return False  # superseded as it looked: the new leader acts
        except Exception as exc:  # LiveKit unreachable, or a bug
            self.log_error(exc, room)
        return False

    async def check_room(self, name: str) -> bool:
        """Look at one room and act on it (`look.look_at_room`). Whether a person waits."""
        return await look_at_room(self, name)
