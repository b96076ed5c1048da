"""The watchdog's end of the worker links (`protocol.links`): who is alive, who just died.

Each agent worker that runs room-recovery's monitor (and each job that links on its own)
holds a WebSocket open to `GET /api/workers` and reports its jobs. From that the watchdog
knows, without asking the server:

* which agents are alive (`vouched`): their worker says their process runs and answers
  its pings, so a silent heartbeat means a stall, not a death, and they are never removed;
* which rooms have an agent on its way: a vouched identity that has not joined the room
  yet, so dispatching another would make two;
* that a whole worker died (`on_lost` is called with its jobs and the moment of death) the
  moment its socket closes: the kernel's word that the process is gone;
* that a link went silent (`LINK_STALL` without a word or a pong): the worker is stopped or
  unreachable, which proves nothing. It no longer vouches, so its agents are judged by
  their own signals (heartbeat, the server), and nothing of it is replaced; once it answers
  again it vouches again. If its socket closes later, its agents count as dead from the
  moment it went silent, so an agent that joined since (a replacement) is never taken
  for one of its own;
* that a worker for an agent name is (again) there (`on_ready`), so a person waiting for it
  gets it at once instead of at the next retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WebSocketError, WSMsgType, web

from ..protocol import links
from ..protocol.links import JobRecord, MalformedLinkMessage
from ..rules.model import room_name_problem
from ..rules.recovery import DeadAgent

logger = logging.getLogger(__name__)

LostHandler = Callable[[list[JobRecord], float], Awaitable[None]]  # jobs, died at (epoch s)
ReadyHandler = Callable[[str], Awaitable[None]]
JobHandler = Callable[[str], object]  # called with the room of a job that started or ended
DEATH_MEMORY = 600.0  # seconds a reported death is kept for a room nobody looks at
REMEMBERED_JOBS = 10_000  # job ids that worker links reported, for the job links' losses
MAX_MESSAGE = 4 * 1024 * 1024  # bytes in one link message (a hello of many jobs)


@dataclass
class WorkerLink:
    """One connected worker (or job): its id, the agent it serves, and its running jobs."""

    link_id: str = ""  # as its credential names it: every hello must say the same
    worker: str = ""
    agent_name: str | None = None  # None until its hello arrives
    kind: str = links.WORKER
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    heard_at: float = field(default_factory=time.monotonic)  # its last word or pong
    silent_since: float | None = None  # epoch s when it went silent, while it is


class WorkerLinks:
    """Every open worker link, and what they say about rooms."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._open: dict[int, WorkerLink] = {}
        self._rooms: dict[str, dict[str, JobRecord]] = {}  # room → job id → job, all links
        self._silent: set[str] = set()  # job ids of silent links: they vouch for nothing
        self._replacing: dict[str, float] = {}  # room -> until when its worker replaces
        self._died: dict[str, dict[str, DeadAgent]] = {}  # room -> identity -> its death
        self._worker_jobs: OrderedDict[str, None] = OrderedDict()  # reported by workers
        self._gone: OrderedDict[str, None] = OrderedDict()  # workers whose link closed
        self.on_lost: LostHandler | None = None
        self.on_ready: ReadyHandler | None = None
        self.on_job: JobHandler | None = None
        self.lost_workers = 0
        self.stalls = 0

    # --- what the links say ------------------------------------------------------------

    def vouched(self, room: str) -> set[str]:
        """Identities in `room` whose worker says their job process runs, and answers."""
        jobs = self._rooms.get(room, {})
        return {job.identity for job_id, job in jobs.items() if job_id not in self._silent}

    def replacing(self, room: str) -> bool:
        """Whether a worker said the agent of `room` died and is replacing it in place (its
        monitor does, `agent.monitor`): for `REPLACING_HOLD` seconds, or until the
        replacement's job starts, a dispatch of ours would make a second agent."""
        until = self._replacing.get(room)
        if until is not None and until <= time.monotonic():
            del self._replacing[room]
            return False
        return until is not None

    def died(self, room: str) -> list[DeadAgent]:
        """The agents of `room` whose job process died, or whose worker died with them, as
        the links said (the kernel's word): each names its sid, or its own identity and the
        moment of death."""
        return list(self._died.get(room, {}).values())

    def forget_died(self, room: str, listed: set[str]) -> None:
        """Forget the deaths in `room` of agents no longer listed there (`listed`: the
        identities LiveKit lists)."""
        known = self._died.get(room)
        if known is None:
            return
        for identity in set(known) - listed:
            del known[identity]
        if not known:
            del self._died[room]

    def _record_death(self, job: JobRecord, died_at: float) -> None:
        """Remember that `job`'s agent died (see `died`); deaths older than `DEATH_MEMORY`
        in rooms never looked at again are forgotten here."""
        for room in [r for r, known in self._died.items() if _all_older(known, died_at)]:
            del self._died[room]
        dead = DeadAgent.of_job(job.job_id, job.identity, job.sid, died_at)
        self._died.setdefault(job.room, {})[job.identity] = dead

    def count(self) -> int:
        """Open links."""
        return len(self._open)

    def job_count(self) -> int:
        """Jobs the open links report running."""
        return sum(len(jobs) for jobs in self._rooms.values())

    def silent_count(self) -> int:
        """Open links that answer nothing now."""
        return sum(1 for link in self._open.values() if link.silent_since is not None)

    # --- the endpoint ------------------------------------------------------------------

    def link_of(self, request: web.Request) -> str:
        """The link id the request's token was made for; LinkRefused if it is not valid."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        return links.verify_link_token(token, self._api_key, self._api_secret)

    async def handle_alive(self, request: web.Request) -> web.Response:
        """`GET /api/alive?room=NAME`: the agents of a room its workers vouch for now.

        Asked by a pre-join cleanup before it removes an agent on its own judgement; the
        same link token as a worker link, so only a holder of the API secret may ask."""
        try:
            self.link_of(request)
        except links.LinkRefused as exc:
            return web.Response(status=401, text=f"refused: {exc}\n")
        room = request.query.get("room", "")
        problem = room_name_problem(room)
        if problem is not None:
            return web.Response(status=400, text=f"room: {problem}\n")
        return web.json_response({"room": room, "alive": sorted(self.vouched(room))})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/workers`: a worker's link, for as long as the worker lives."""
        try:
            link_id = self.link_of(request)
        except links.LinkRefused as exc:
            logger.info("refused a worker link: %s", exc, extra={"peer": request.remote})
            return web.Response(status=401, text=f"refused: {exc}\n")
        # our own pings: aiohttp's heartbeat would close the socket of a worker that is
        # only stopped, and a closed socket is what must mean "dead"
        ws = web.WebSocketResponse(autoping=False, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        link = WorkerLink(link_id=link_id)
        self._open[id(ws)] = link
        pinger = asyncio.create_task(self._ping(ws, link), name="worker-link-ping")
        broken = False  # it broke the protocol (an oversized frame...): no proof of death
        try:
            async for message in ws:  # ends when the worker's socket closes
                self._heard(link)
                if message.type is WSMsgType.PING:
                    await ws.pong(message.data)
                if message.type is WSMsgType.ERROR:
                    broken = isinstance(message.data, WebSocketError)
                    logger.warning("closing a worker link: %s", message.data)
                if message.type is not WSMsgType.TEXT:
                    continue
                try:
                    await self._apply(link, links.decode(message.data))
                except MalformedLinkMessage as exc:
                    logger.warning("ignored a worker link message: %s", exc)
        except asyncio.CancelledError:
            self._forget(link)  # the watchdog is stopping, not the worker
            raise
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            del self._open[id(ws)]
            if broken:
                self._forget(link)  # its agents are judged by their own signals again
            else:
                await self._closed(link)
        return ws

    async def _ping(self, ws: web.WebSocketResponse, link: WorkerLink) -> None:
        while not ws.closed:
            await asyncio.sleep(links.LINK_PING)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.ping()
            silence = time.monotonic() - link.heard_at
            if silence > links.LINK_STALL and link.silent_since is None:
                link.silent_since = time.time() - silence
                self._silent.update(link.jobs)
                self.stalls += 1
                logger.warning(
                    "⏸️ worker %s has not answered for %.0fs: stopped or unreachable, not "
                    "dead; its agents are judged by their own signals until it answers",
                    link.worker or "(unnamed)",
                    silence,
                    extra={"worker": link.worker, "jobs": len(link.jobs)},
                )
                self._wake_rooms(link)

    def _heard(self, link: WorkerLink) -> None:
        link.heard_at = time.monotonic()
        if link.silent_since is None:
            return
        link.silent_since = None
        self._silent.difference_update(link.jobs)
        logger.info(
            "▶️ worker %s answers again; it vouches for its agents again",
            link.worker or "(unnamed)",
            extra={"worker": link.worker},
        )
        self._wake_rooms(link)

    def _wake_rooms(self, link: WorkerLink) -> None:
        if self.on_job is not None:
            for room in {job.room for job in link.jobs.values()}:
                self.on_job(room)

    def _keep(self, link: WorkerLink, job: JobRecord) -> None:
        link.jobs[job.job_id] = job
        self._rooms.setdefault(job.room, {})[job.job_id] = job
        if link.kind == links.WORKER:
            self._worker_jobs[job.job_id] = None
            while len(self._worker_jobs) > REMEMBERED_JOBS:
                self._worker_jobs.popitem(last=False)

    def _drop(self, link: WorkerLink, job_id: str) -> None:
        job = link.jobs.pop(job_id, None)
        if job is None:
            return
        self._silent.discard(job_id)
        room = self._rooms.get(job.room, {})
        room.pop(job_id, None)
        if not room:
            self._rooms.pop(job.room, None)

    def _forget(self, link: WorkerLink) -> list[JobRecord]:
        """Take every job of `link` out of the index; returns them."""
        jobs = list(link.jobs.values())
        for job in jobs:
            self._drop(link, job.job_id)
        return jobs

    async def _apply(self, link: WorkerLink, message: dict[str, object]) -> None:
        kind = message["type"]
        if kind == links.HELLO and message.get("link") != link.link_id:
            raise MalformedLinkMessage("a hello must name the link its token was made for")
        if link.agent_name is None and kind != links.HELLO:
            raise MalformedLinkMessage(f"a {kind} before the link's hello")
        if kind == links.HELLO:
            listed = message.get("jobs")
            jobs = [
                JobRecord.from_dict(job) for job in (listed if isinstance(listed, list) else [])
            ]
            link.worker = str(message.get("worker", ""))
            link.agent_name = str(message.get("agent_name", ""))
            link.kind = links.JOB if message.get("kind") == links.JOB else links.WORKER
            self._gone.pop(link.worker, None)  # linked again: it was the link, not the worker
            self._forget(link)
            for job in jobs:
                self._keep(link, job)
            logger.info(
                "🔗 %s %s linked (agent %r, %d job(s))",
                link.kind,
                link.worker,
                link.agent_name,
                len(link.jobs),
                extra={"worker": link.worker, "agent_name": link.agent_name},
            )
            fresh = message.get("registered", True) is not False  # it just registered
            if self.on_ready is not None and link.kind == links.WORKER and fresh:
                await self.on_ready(link.agent_name)
            return
        job = JobRecord.from_dict(message.get("job"))
        if kind == links.JOB_STARTED:
            self._keep(link, job)
            self._replacing.pop(job.room, None)  # the replacement is on its way: vouched
        else:
            self._drop(link, job.job_id)
            if message.get("died") is True:
                self._record_death(job, time.time())
                if link.kind == links.WORKER:  # its monitor replaces the agent in place
                    self._replacing[job.room] = time.monotonic() + links.REPLACING_HOLD
        if self.on_job is not None:
            self.on_job(job.room)

    def gone(self) -> set[str]:
        """The ids of workers whose link closed and never came back (the kernel's word that
        the process is gone): a job LiveKit still lists as theirs will bring no agent."""
        return set(self._gone)

    async def _closed(self, link: WorkerLink) -> None:
        jobs = self._forget(link)
        if link.kind == links.WORKER and link.worker:
            self._gone[link.worker] = None
            while len(self._gone) > REMEMBERED_JOBS:
                self._gone.popitem(last=False)
        if link.kind == links.JOB:  # a worker that links knows its own jobs better
            jobs = [job for job in jobs if job.job_id not in self._worker_jobs]
        if not jobs:
            return
        self.lost_workers += 1
        died_at = link.silent_since if link.silent_since is not None else time.time()
        for job in jobs:
            self._record_death(job, died_at)
        logger.warning(
            "💀 %s %s is gone with %d job(s): replacing their agents",
            link.kind,
            link.worker or "(unnamed)",
            len(jobs),
            extra={"worker": link.worker, "rooms": sorted({j.room for j in jobs})},
        )
        if self.on_lost is not None:
            await self.on_lost(jobs, died_at)


def _all_older(deaths: dict[str, DeadAgent], now: float) -> bool:
    return all(d.died_at is not None and now - d.died_at > DEATH_MEMORY for d in deaths.values())
