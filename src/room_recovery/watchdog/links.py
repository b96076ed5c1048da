"""The watchdog's end of the worker links (`protocol.links`): who is alive, who just died.

Each agent worker that runs room-recovery's monitor holds a WebSocket open to
`GET /api/workers` and reports its jobs. From that the watchdog knows, without asking the
server:

* which agents are alive (`vouched`): their worker says their process runs, so a silent
  heartbeat means a stall, not a death, and they are never removed;
* which rooms have an agent on its way: a vouched identity that has not joined the room
  yet, so dispatching another would make two;
* that a whole worker died (`on_lost` is called with its jobs) the moment its socket closes;
* that a worker for an agent name is (again) there (`on_ready`), so a person waiting for it
  gets it at once instead of at the next retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from livekit import api

from ..protocol import links
from ..protocol.links import JobRecord, MalformedLinkMessage

logger = logging.getLogger(__name__)

LostHandler = Callable[[list[JobRecord]], Awaitable[None]]
ReadyHandler = Callable[[str], Awaitable[None]]
JobHandler = Callable[[str], object]  # called with the room of a job that started or ended


@dataclass
class WorkerLink:
    """One connected worker: its id, the agent it serves, and its running jobs."""

    worker: str = ""
    agent_name: str | None = None  # None until its hello arrives
    jobs: dict[str, JobRecord] = field(default_factory=dict)


class WorkerLinks:
    """Every open worker link, and what they say about rooms."""

    def __init__(self, verifier: api.TokenVerifier) -> None:
        self._verifier = verifier
        self._open: dict[int, WorkerLink] = {}
        self._rooms: dict[str, dict[str, JobRecord]] = {}  # room → job id → job, all links
        self._known: set[str] = set()  # agent names whose workers have linked at some time
        self.on_lost: LostHandler | None = None
        self.on_ready: ReadyHandler | None = None
        self.on_job: JobHandler | None = None
        self.lost_workers = 0

    # --- what the links say ------------------------------------------------------------

    def vouched(self, room: str) -> set[str]:
        """Identities in `room` whose worker says their job process runs."""
        return {job.identity for job in self._rooms.get(room, {}).values()}

    def count(self) -> int:
        """Open links."""
        return len(self._open)

    def job_count(self) -> int:
        """Jobs the open links report running."""
        return sum(len(jobs) for jobs in self._rooms.values())

    def serves(self, agent_name: str) -> bool | None:
        """Whether a linked worker serves `agent_name` now. None when no worker of that agent
        has ever linked: its workers may run without a link, so nothing is known."""
        if any(link.agent_name == agent_name for link in self._open.values()):
            return True
        return False if agent_name in self._known else None

    # --- the endpoint ------------------------------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        try:
            claims = self._verifier.verify(token)
        except Exception:  # the SDK raises bare Exceptions for bad tokens
            return False
        return bool(claims.video and claims.video.agent)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/workers`: a worker's link, for as long as the worker lives."""
        if not self.authorized(request):
            return web.Response(
                status=401, text="a worker link needs a token signed with the API secret\n"
            )
        ws = web.WebSocketResponse(heartbeat=links.LINK_HEARTBEAT)
        await ws.prepare(request)
        link = WorkerLink()
        self._open[id(ws)] = link
        try:
            async for message in ws:  # ends when the worker's socket closes
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
            del self._open[id(ws)]
            await self._closed(link)
        return ws

    def _keep(self, link: WorkerLink, job: JobRecord) -> None:
        link.jobs[job.job_id] = job
        self._rooms.setdefault(job.room, {})[job.job_id] = job

    def _drop(self, link: WorkerLink, job_id: str) -> None:
        job = link.jobs.pop(job_id, None)
        if job is None:
            return
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
        if kind == links.HELLO:
            jobs = message.get("jobs")
            link.worker = str(message.get("worker", ""))
            link.agent_name = str(message.get("agent_name", ""))
            self._known.add(link.agent_name)
            self._forget(link)
            for job in map(JobRecord.from_dict, jobs if isinstance(jobs, list) else []):
                self._keep(link, job)
            logger.info(
                "🔗 worker %s linked (agent %r, %d job(s))",
                link.worker,
                link.agent_name,
                len(link.jobs),
                extra={"worker": link.worker, "agent_name": link.agent_name},
            )
            if self.on_ready is not None:
                await self.on_ready(link.agent_name)
            return
        job = JobRecord.from_dict(message.get("job"))
        if kind == links.JOB_STARTED:
            self._keep(link, job)
        else:
            self._drop(link, job.job_id)
        if self.on_job is not None:
            self.on_job(job.room)

    async def _closed(self, link: WorkerLink) -> None:
        jobs = self._forget(link)
        if not jobs:
            return
        self.lost_workers += 1
        logger.warning(
            "💀 worker %s is gone with %d job(s): replacing their agents",
            link.worker or "(unnamed)",
            len(jobs),
            extra={"worker": link.worker, "rooms": sorted({j.room for j in jobs})},
        )
        if self.on_lost is not None:
            await self.on_lost(jobs)
