"""The worker monitor: a dead agent is replaced within a second, with no code in the entrypoint.

It runs in the worker's own process (where the request hook runs), not in the job. The job
processes are that process's children, so it learns at once when one dies (livekit-agents'
process pool reports every exit); the server learns only ~20 s later. On a death it
replaces the agent in place (`core.recovery.replace_agent`: mark the room recovering,
remove the dead participant, dispatch the same agent again), provided a person is still
there and no other agent serves them. It also keeps the worker link to the watchdog
(`agent.link`), so that the death of the *whole* worker, which no process of it can report,
is seen by the watchdog the moment the kernel closes the worker's socket.

Near LiveKit's load limit it ends the jobs whose rooms have no person left (`rules.shedding`):
after a node dies, agents reconnecting alone to abandoned rooms would otherwise fill the
worker, and LiveKit would silently drop new people's dispatches.

It attaches itself, with no call from the user (see `agent.attach`): when the worker
registers, when `livekit_room_manager` is imported inside a request handler (the guide's
code), when our `request_handler` gets a job request, or by `attach(server)` from code that
holds the AgentServer (the demo agent does). What it reads of livekit-agents' internals is
in `agent.adapter`; when that is missing, it logs one warning and the watchdog's other
signals (heartbeat, waiting person) still work.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import replace
from typing import Any

from ..core.errors import OutOfScopeError, RoomRecoveryError
from ..core.link import LinkGroup, split_urls, watchdog_urls
from ..core.manager import RoomManager
from ..core.recovery import replace_agent
from ..core.settings import Settings, process_settings
from ..protocol import links
from ..protocol.links import JobRecord
from ..rules.recovery import Claim, DeadAgent, serves
from ..rules.shedding import SHED_MIN_AGE, audits
from . import adapter
from .announce import announce_when_joined, announcing
from .shedding import RoomLooks

logger = logging.getLogger(__name__)

RECOVERY_TIMEOUT = 5.0  # bound on one in-place replacement
SHED_EVERY = 2.0  # how often the worker's load is read (no call to LiveKit below SHED_LOAD)
SHED_LOOKS = 12  # jobs looked at most at once, near the limit

_monitors: weakref.WeakKeyDictionary[Any, WorkerMonitor] = weakref.WeakKeyDictionary()


def record_of(info: Any) -> JobRecord:
    """The JobRecord of a livekit-agents RunningJobInfo."""
    return JobRecord(
        job_id=info.job.id,
        room=info.job.room.name,
        identity=info.accept_arguments.identity,
        agent_name=info.job.agent_name,
        metadata=info.job.metadata,
    )


def enabled() -> bool:
    """False when ROOM_RECOVERY_WORKER_MONITOR=off (the benchmarks' baseline)."""
    return process_settings().room_recovery_worker_monitor


class WorkerMonitor:
    """Watches one AgentServer's job processes and keeps its link to the watchdog."""

    def __init__(
        self,
        server: Any,
        settings: Settings | None = None,
        watchdog: str | None = None,
        *,
        registered: bool = False,
    ) -> None:
        self.server = server
        # registrations of the worker, and how many of them each link's hello has told
        self._registrations = 1 if registered else 0
        self._told: dict[str, int] = {}
        self._settings = settings
        self.watchdog_urls = watchdog_urls() if watchdog is None else split_urls(watchdog)
        self.jobs: dict[str, JobRecord] = {}
        self.claims: dict[str, Claim] = {}  # room -> the job of this worker that serves it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announcing: dict[str, asyncio.Task[None]] = {}  # job id -> its announcement
        self._launched_at: dict[str, float] = {}  # job id -> monotonic, for `rules.shedding`
        self.looks = RoomLooks(lambda: self.settings)  # what it saw of its jobs' rooms
        self._shed: set[str] = set()  # jobs this monitor ended: their exit is no death
        self.link: LinkGroup | None = None
        if self.watchdog_urls:
            self.link = LinkGroup(self.watchdog_urls, self._hello, settings)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = process_settings()  # read once per process, shared
        return self._settings

    # --- attaching ----------------------------------------------------------------------

    def start(self) -> bool:
        """Subscribe to the worker's process pool and open the link. False if it cannot."""
        pool = adapter.process_pool(self.server)
        if pool is None:
            logger.warning(
                "room-recovery cannot watch this worker's job processes (livekit-agents %s: "
                "%s): dead agents are found by the watchdog's slower signals only",
                adapter.installed_version(),
                "; ".join(adapter.problems()) or "no process pool yet",
            )
            return False
        pool.on("process_job_launched", self._launched)
        pool.on("process_closed", self._closed)
        # a re-registration (after a server restart) brings a new worker id: say hello again
        self.server.on("worker_registered", self._registered)
        for info in self._active_jobs():
            self.jobs[info.job.id] = record_of(info)
            self._launched_at[info.job.id] = time.monotonic()
        if self.link is not None:
            self.link.start()
        self._spawn(self._shed_loop())
        logger.info(
            "🩺 watching this worker's jobs%s",
            f"; linked to the watchdog at {', '.join(self.watchdog_urls)}"
            if self.watchdog_urls
            else "",
            extra={"watchdog": ", ".join(self.watchdog_urls) or None, "jobs": len(self.jobs)},
        )
        return True

    def _active_jobs(self) -> list[Any]:
        try:
            return list(self.server.active_jobs)
        except Exception:  # before run() there is no process pool yet
            return []

    # --- one agent per room ------------------------------------------------------------

    async def admit(self, room: str, job_id: str) -> Claim | None:
        """Whether this worker may take job `job_id` for `room`: None if so (the job now
        claims the room), else the claim of the job of this worker that already serves it
        (`rules.recovery.serves`). Two dispatches to one room (LiveKit's own again after a
        node restart while the first agent reconnects, or a recovery's beside another) then
        give one agent, whoever made them. When the room cannot be listed, the job is taken:
        a person must never be left without an agent for our doubt."""
        now = time.monotonic()
        self._forget_lapsed(now)
        claim = self.claims.get(room)
        verdict = serves(claim, now)
        if verdict is None and claim is not None:
            self.claims[room] = Claim(job_id, now)  # a request meanwhile waits on this one
            verdict = await self._still_serves(room, claim)
            if verdict:
                self.claims[room] = claim
        if verdict and claim is not None:
            return claim
        self.claims[room] = Claim(job_id, now)
        return None

    async def _still_serves(self, room: str, claim: Claim) -> bool:
        listed = await self.looks.listing(room)
        return listed is not None and bool(serves(claim, time.monotonic(), listed))

    def _forget_lapsed(self, now: float) -> None:
        """Forget claims of jobs that were accepted but never launched (no assignment came):
        they serve nobody, and a long-lived worker must not keep them."""
        lapsed = [room for room, claim in self.claims.items() if serves(claim, now) is False]
        for room in lapsed:
            del self.claims[room]

    def _claim_launched(self, record: JobRecord) -> None:
        claim = self.claims.get(record.room)
        if claim is None or claim.job_id == record.job_id:  # else a duplicate, let through
            at = claim.at if claim is not None else time.monotonic()
            self.claims[record.room] = Claim(record.job_id, at, True, record.identity)

    def _release(self, record: JobRecord) -> None:
        claim = self.claims.get(record.room)
        if claim is not None and claim.job_id == record.job_id:
            del self.claims[record.room]

    # --- job processes ------------------------------------------------------------------

    def _launched(self, proc: Any) -> None:
        info = getattr(proc, "running_job", None)
        if info is None:
            return
        record = record_of(info)
        if (timeline := adapter.dispatch_timeline(info)) is not None:
            hook, assignment, process = timeline
            logger.info(
                "🚀 Job %s of room %s launched: request hook %.3f s, LiveKit's assignment "
                "%.3f s, a process %.3f s",
                *(record.job_id, record.room, hook, assignment, process),
                extra={"room": record.room, "job_id": record.job_id, "timeline": timeline},
            )
        self.jobs[record.job_id] = record
        self._launched_at[record.job_id] = time.monotonic()
        self._claim_launched(record)
        self._send(links.job_started(record))
        if announcing():
            task = self._spawn(self._announce(record))
            self._announcing[record.job_id] = task
            task.add_done_callback(lambda _: self._announcing.pop(record.job_id, None))

    def _closed(self, proc: Any) -> None:
        info = getattr(proc, "running_job", None)
        if info is None:
            return  # an idle process
        died_at = time.time()
        record = self.jobs.pop(info.job.id, None) or record_of(info)
        self._launched_at.pop(record.job_id, None)
        self.looks.forget(record.job_id)
        shed = record.job_id in self._shed
        self._shed.discard(record.job_id)
        self._release(record)
        announcement = self._announcing.pop(record.job_id, None)
        if announcement is not None:
            announcement.cancel()
        exitcode = getattr(proc, "exitcode", 0)
        died = exitcode not in (0, None) and not shed
        if shed:
            self._spawn(self._report_load(record))
        self._send(links.job_ended(record, died))
        if died:
            logger.warning(
                "💀 the agent of room %s died (its job process exited with code %s); replacing it",
                record.room,
                exitcode,
                extra={"room": record.room, "job_id": record.job_id, "exitcode": exitcode},
            )
            self._spawn(
                self._replace(
                    record, DeadAgent.of_job(record.job_id, record.identity, record.sid, died_at)
                )
            )

    async def _replace(self, record: JobRecord, dead: DeadAgent) -> None:
        try:
            async with asyncio.timeout(RECOVERY_TIMEOUT):
                async with RoomManager(settings=self.settings, request_timeout=2) as manager:
                    await replace_agent(
                        manager,
                        record.room,
                        dead,
                        record.agent_name,
                        record.metadata,
                        cause="agent_died",
                    )
        except OutOfScopeError:
            return  # not this deployment's room: never touched
        except (RoomRecoveryError, TimeoutError, OSError) as exc:
            logger.warning(
                "could not replace the dead agent of room %s: %s (the watchdog, if any, will)",
                record.room,
                exc or type(exc).__name__,
                extra={"room": record.room},
            )

    # --- jobs that serve nobody, near the load limit --------------------------------------

    async def _shed_loop(self) -> None:
        while True:
            await asyncio.sleep(SHED_EVERY)
            try:
                await self.shed_orphans()
            except Exception:  # never let the loop die: log it, look again next time
                logger.exception("could not look for jobs that serve nobody")

    async def shed_orphans(self) -> list[str]:
        """Near LiveKit's load limit, end the jobs that serve nobody (`agent.shedding`,
        `rules.shedding`): the ids of the jobs ended."""
        load = adapter.worker_load(self.server)
        if not audits(load):
            self.looks.forget()
            return []
        now = time.monotonic()
        old = [
            record
            for job_id, record in self.jobs.items()
            if job_id not in self._shed and now - self._launched_at.get(job_id, now) >= SHED_MIN_AGE
        ][:SHED_LOOKS]
        reasons = await asyncio.gather(*(self.looks.serves_nobody(record) for record in old))
        ended = []
        for record, why in zip(old, reasons, strict=True):
            if why is not None and record.job_id in self.jobs:
                self._end(record, load, why)
                ended.append(record.job_id)
        return ended

    def _end(self, record: JobRecord, load: float | None, why: str) -> None:
        self._shed.add(record.job_id)
        logger.info(
            "🍂 Ending job %s of room %s: %s, and this worker is near LiveKit's load limit "
            "(load %.2f), where new people's dispatches are dropped",
            record.job_id,
            record.room,
            why,
            load or 0.0,
            extra={"room": record.room, "job_id": record.job_id, "load": load},
        )
        self._spawn(self._close_job(record.job_id))

    async def _report_load(self, record: JobRecord) -> None:
        """Tell LiveKit the freed room now: new people's dispatches are taken at once."""
        try:
            load = await adapter.report_load(self.server)
        except Exception as exc:  # the worker's socket closing: its own report will do
            logger.warning("could not tell LiveKit this worker's load: %s", exc or type(exc))
            return
        told = "told LiveKit" if load is not None else "LiveKit hears it within 2.5 s"
        logger.info(
            "🍂 Job %s of room %s ended; this worker's load is now %s, %s",
            record.job_id,
            record.room,
            "unknown" if load is None else f"{load:.2f}",
            told,
            extra={"room": record.room, "job_id": record.job_id, "load": load},
        )

    async def _close_job(self, job_id: str) -> None:
        if not await adapter.end_job(self.server, job_id):
            self._shed.discard(job_id)  # it had ended meanwhile

    async def _announce(self, record: JobRecord) -> None:
        """Have LiveKit show the job's agent to the room now (see `announce`)."""
        try:
            async with RoomManager(settings=self.settings, request_timeout=2) as manager:
                sid = await announce_when_joined(manager, record.room, record.identity)
        except OutOfScopeError:
            return  # not this deployment's room: never touched
        except (RoomRecoveryError, OSError) as exc:
            logger.warning(
                "could not announce the agent of room %s: %s (the room sees it within 3 s)",
                record.room,
                exc or type(exc).__name__,
                extra={"room": record.room, "job_id": record.job_id},
            )
            return
        if sid and record.job_id in self.jobs:
            known = self.jobs[record.job_id] = replace(record, sid=sid)
            self._send(links.job_started(known))  # the watchdog removes only that sid

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the link to the watchdog ----------------------------------------------------------

    def _registered(self, *_: object) -> None:
        self._registrations += 1
        if self.link is not None:  # a link not up says it in its own hello when it links
            self.link.hello_again()

    def _hello(self, link: str) -> str:
        """The hello on link `link`: it says the worker has just registered until that
        link has said so once (each watchdog must hear it: any one may be the leader)."""
        worker, name = adapter.worker_id(self.server), adapter.registered_name(self.server)
        fresh = self._told.get(link, 0) < self._registrations
        self._told[link] = self._registrations
        jobs = list(self.jobs.values())
        return links.hello(worker, name, jobs, registered=fresh, link=link)

    def _send(self, message: str) -> None:
        if self.link is not None:
            self.link.send(message)


def attach(
    server: Any, settings: Settings | None = None, *, registered: bool = False
) -> WorkerMonitor | None:
    """Watch `server` (an AgentServer), once; the running monitor if it already is.

    `registered`: it is attached because the worker has just registered (so the watchdog
    may send it people who waited while no worker was there)."""
    if not enabled():
        return None
    monitor = _monitors.get(server)
    if monitor is not None:
        monitor._settings = settings or monitor._settings
        return monitor
    monitor = WorkerMonitor(server, settings, registered=registered)
    if not monitor.start():
        return None
    _monitors[server] = monitor
    return monitor


def attached(server: Any) -> WorkerMonitor | None:
    """The monitor watching `server`, if one is."""
    return _monitors.get(server)


def install() -> None:
    """Attach to the worker of this process whenever it registers (idempotent)."""
    adapter.on_registration(_attach_registered)


def _attach_registered(server: Any) -> None:
    attach(server, registered=True)
