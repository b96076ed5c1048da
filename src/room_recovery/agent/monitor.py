"""The worker monitor: a dead agent is replaced within a second, with no code in the entrypoint.

It runs in the worker's own process (where the request hook runs), not in the job. The job
processes are that process's children, so it learns at once when one dies (livekit-agents'
process pool reports every exit); the server learns only ~20 s later. On a death it
replaces the agent in place (`core.recovery.replace_agent`: mark the room recovering,
remove the dead participant, dispatch the same agent again), provided a person is still
there. It also keeps the worker link to the watchdog (`protocol.links`), so that the death
of the *whole* worker, which no process of it can report, is seen by the watchdog the moment
the kernel closes the worker's socket.

It attaches itself, with no call from the user, by any of three routes:

* the worker logs "registered worker" (importing `livekit_room_manager` or
  `room_recovery.agent` installs a log handler that notices it and finds the worker);
* our `request_handler` gets its first job request (it knows the worker through it);
* `attach(server)` from code that holds the AgentServer (the demo agent does).

What it reads of livekit-agents beyond its documented API (the process pool's events and the
worker behind a JobRequest) is checked on attach; when it is not there, it logs one warning
and the watchdog's other signals (heartbeat, waiting person) still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import weakref
from datetime import timedelta
from types import FrameType
from typing import Any

import aiohttp
from livekit import api
from livekit.agents import AgentServer, JobRequest

from ..core.errors import OutOfScopeError, RoomRecoveryError
from ..core.manager import RoomManager
from ..core.recovery import replace_agent
from ..core.settings import Settings, load_settings
from ..core.views import participant_view
from ..protocol import links
from ..protocol.links import JobRecord
from ..rules.model import is_person
from .announce import announce_when_joined, announcing

logger = logging.getLogger(__name__)

MONITOR_SWITCH = "ROOM_RECOVERY_WORKER_MONITOR"  # "off": do not watch (benchmarks' baseline)
REGISTERED_MESSAGE = "registered worker"  # livekit-agents' log line on (re)registration
RECOVERY_TIMEOUT = 5.0  # bound on one in-place replacement
LINK_RETRY = (0.5, 1.0, 2.0, 5.0)  # seconds between attempts to reach the watchdog
LINK_PATIENCE = 4  # failed attempts (about 10 s) before a warning

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


def link_problem(url: str, exc: BaseException) -> str:
    """What went wrong with the link to the watchdog, said so that it can be fixed."""
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status == 401:
        return (
            f"the watchdog at {url} refused this worker's link: the worker's and the "
            "watchdog's LIVEKIT_API_KEY/LIVEKIT_API_SECRET differ; give both the same keys"
        )
    return f"cannot reach the watchdog at {url}: {exc or type(exc).__name__}"


class WorkerMonitor:
    """Watches one AgentServer's job processes and keeps its link to the watchdog."""

    def __init__(
        self, server: Any, settings: Settings | None = None, watchdog_url: str | None = None
    ) -> None:
        self.server = server
        self._settings = settings
        if watchdog_url is None:
            watchdog_url = os.environ.get(links.WATCHDOG_URL_VARIABLE, "")
        self.watchdog_url = watchdog_url.rstrip("/")
        self.jobs: dict[str, JobRecord] = {}
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announcing: dict[str, asyncio.Task[None]] = {}  # job id -> its announcement
        self._link: asyncio.Task[None] | None = None
        self.linked = asyncio.Event()

    # --- attaching ----------------------------------------------------------------------

    def start(self) -> bool:
        """Subscribe to the worker's process pool and open the link. False if it cannot."""
        pool = getattr(self.server, "_proc_pool", None)
        if pool is None or not hasattr(pool, "on"):
            logger.warning(
                "room-recovery cannot watch this worker's job processes (livekit-agents "
                "changed?): dead agents are found by the watchdog's slower signals only"
            )
            return False
        pool.on("process_job_launched", self._launched)
        pool.on("process_closed", self._closed)
        # a re-registration (after a server restart) brings a new worker id: say hello again
        self.server.on("worker_registered", lambda *_: self._send(self._hello()))
        for info in self._active_jobs():
            self.jobs[info.job.id] = record_of(info)
        if self.watchdog_url and self._link is None:
            self._link = asyncio.create_task(self._keep_link(), name="room-recovery-link")
        logger.info(
            "🩺 watching this worker's jobs%s",
            f"; linked to the watchdog at {self.watchdog_url}" if self.watchdog_url else "",
            extra={"watchdog": self.watchdog_url or None},
        )
        return True

    def _active_jobs(self) -> list[Any]:
        try:
            return list(self.server.active_jobs)
        except Exception:  # before run() there is no process pool yet
            return []

    # --- job processes ------------------------------------------------------------------

    def _launched(self, proc: Any) -> None:
        info = getattr(proc, "running_job", None)
        if info is None:
            return
        record = record_of(info)
        self.jobs[record.job_id] = record
        self._send(links.job_started(record))
        if announcing():
            task = self._spawn(self._announce(record))
            self._announcing[record.job_id] = task
            task.add_done_callback(lambda _: self._announcing.pop(record.job_id, None))

    def _closed(self, proc: Any) -> None:
        info = getattr(proc, "running_job", None)
        if info is None:
            return  # an idle process
        record = self.jobs.pop(info.job.id, None) or record_of(info)
        announcement = self._announcing.pop(record.job_id, None)
        if announcement is not None:
            announcement.cancel()
        exitcode = getattr(proc, "exitcode", 0)
        died = exitcode not in (0, None)
        self._send(links.job_ended(record, died))
        if died:
            logger.warning(
                "💀 the agent of room %s died (its job process exited with code %s); replacing it",
                record.room,
                exitcode,
                extra={"room": record.room, "job_id": record.job_id, "exitcode": exitcode},
            )
            self._spawn(self._replace(record))

    async def _replace(self, record: JobRecord) -> None:
        try:
            async with asyncio.timeout(RECOVERY_TIMEOUT):
                settings = self._settings or load_settings()
                async with RoomManager(settings=settings, request_timeout=2) as manager:
                    infos = await manager.list_participants(record.room)
                    views = [participant_view(i) for i in infos]
                    if not any(is_person(v) for v in views):
                        if any(v.identity == record.identity for v in views):
                            await manager.remove_participant(record.room, record.identity)
                        return  # nobody to serve: the room ends as it would have
                    await replace_agent(
                        manager,
                        record.room,
                        record.identity,
                        record.agent_name,
                        record.metadata,
                        cause="agent_died",
                    )
        except (RoomRecoveryError, TimeoutError, OSError) as exc:
            logger.warning(
                "could not replace the dead agent of room %s: %s (the watchdog, if any, will)",
                record.room,
                exc or type(exc).__name__,
                extra={"room": record.room},
            )

    async def _announce(self, record: JobRecord) -> None:
        """Have LiveKit show the job's agent to the room now (see `announce`)."""
        try:
            settings = self._settings or load_settings()
            async with RoomManager(settings=settings, request_timeout=2) as manager:
                await announce_when_joined(manager, record.room, record.identity)
        except OutOfScopeError:
            return  # not this deployment's room: never touched
        except (RoomRecoveryError, OSError) as exc:
            logger.warning(
                "could not announce the agent of room %s: %s (the room sees it within 3 s)",
                record.room,
                exc or type(exc).__name__,
                extra={"room": record.room, "job_id": record.job_id},
            )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the link to the watchdog ----------------------------------------------------------

    def _hello(self) -> str:
        worker = str(getattr(self.server, "id", "") or "")
        agent_name = str(getattr(self.server, "_agent_name", "") or "")
        return links.hello(worker, agent_name, list(self.jobs.values()))

    def _send(self, message: str) -> None:
        if self.linked.is_set():
            self._outbox.put_nowait(message)

    def _token(self, settings: Settings) -> str:
        token = api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        token = token.with_identity("room-recovery-worker").with_ttl(timedelta(minutes=1))
        return token.with_grants(api.VideoGrants(agent=True)).to_jwt()

    async def _keep_link(self) -> None:
        failures = 0
        url = f"{self.watchdog_url}{links.LINK_PATH}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, connect=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    settings = self._settings or load_settings()
                    headers = {"Authorization": f"Bearer {self._token(settings)}"}
                    connecting = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=3)
                    async with http.ws_connect(url, headers=headers, timeout=connecting) as ws:
                        failures = 0
                        await self._serve_link(ws)
                    logger.warning("the watchdog closed the link; reconnecting")
                except (aiohttp.ClientError, OSError, TimeoutError, RoomRecoveryError) as exc:
                    if failures in (0, LINK_PATIENCE):  # `up` starts the watchdog after us
                        logger.log(
                            logging.INFO if failures == 0 else logging.WARNING,
                            "%s (retrying; dead agents are still replaced by this worker)",
                            link_problem(url, exc),
                        )
                    failures += 1
                finally:
                    self.linked.clear()
                await asyncio.sleep(LINK_RETRY[min(failures, len(LINK_RETRY) - 1)])

    async def _serve_link(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._outbox = asyncio.Queue()
        await ws.send_str(self._hello())
        self.linked.set()
        logger.info("🔗 linked to the watchdog", extra={"jobs": len(self.jobs)})
        receive = asyncio.create_task(ws.receive())  # ends when the watchdog goes
        try:
            while not receive.done():
                send = asyncio.create_task(self._outbox.get())
                done, _ = await asyncio.wait({send, receive}, return_when=asyncio.FIRST_COMPLETED)
                if send in done:
                    await ws.send_str(send.result())
                else:
                    send.cancel()
        finally:
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receive


# --- finding the worker ---------------------------------------------------------------------


def attach(server: Any, settings: Settings | None = None) -> WorkerMonitor | None:
    """Watch `server` (an AgentServer), once; the running monitor if it already is."""
    if os.environ.get(MONITOR_SWITCH, "").lower() == "off":
        return None
    monitor = _monitors.get(server)
    if monitor is not None:
        monitor._settings = settings or monitor._settings
        return monitor
    monitor = WorkerMonitor(server, settings)
    if not monitor.start():
        return None
    _monitors[server] = monitor
    return monitor


def server_of_request(request: JobRequest) -> Any | None:
    """The AgentServer that made `request` (its accept callback is a closure over it)."""
    for cell in getattr(getattr(request, "_on_accept", None), "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            if isinstance(cell.cell_contents, AgentServer):
                return cell.cell_contents
    return None


def handle_registration(record: logging.LogRecord) -> None:
    """Called while livekit-agents logs "registered worker": find that worker and watch it."""
    if record.msg != REGISTERED_MESSAGE:
        return
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, AgentServer):
            try:
                attach(candidate)
            except Exception:  # never break the worker's logging
                logger.debug("could not attach the worker monitor", exc_info=True)
            return
        frame = frame.f_back


class _RegistrationHandler(logging.Handler):
    """Attaches the monitor when livekit-agents logs that its worker registered."""

    def emit(self, record: logging.LogRecord) -> None:
        handle_registration(record)


def install() -> None:
    """Attach to the worker of this process when it registers (idempotent)."""
    source = logging.getLogger("livekit.agents")
    if not any(isinstance(h, _RegistrationHandler) for h in source.handlers):
        source.addHandler(_RegistrationHandler(logging.INFO))
