"""A job's own link to the watchdog, for workers that run no monitor.

When the user's only room-recovery code runs in the entrypoint (the job process), the
worker's process never runs ours and cannot report the job's death. The job then links to
the watchdog itself (`protocol.links`, kind "job"): the kernel closes its socket the moment
the process dies, and the watchdog replaces its agent in place. A job that ends normally
says `job_ended` first (a shutdown callback), so only a death goes unannounced.

As the worker monitor does for its jobs (`announce`), the job also makes LiveKit show its
agent to the room at once: it sets one attribute on itself when it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from livekit import rtc
from livekit.agents import get_job_context

from ..core.link import LinkGroup, watchdog_urls
from ..core.settings import Settings
from ..protocol import links
from ..protocol.links import JobRecord
from . import adapter, monitor
from .announce import ANNOUNCED_ATTRIBUTE, announcing

logger = logging.getLogger(__name__)

_links: dict[str, LinkGroup] = {}  # job id -> its link (a job process runs one job)
_tasks: set[asyncio.Task[Any]] = set()


def watch(job: adapter.CurrentJob, settings: Settings | None = None) -> LinkGroup | None:
    """Link `job` to the watchdog (once); None when there is no watchdog to link to."""
    urls = watchdog_urls()
    if not urls or not monitor.enabled():
        return None
    if job.job_id in _links:
        return _links[job.job_id]
    record = JobRecord(job.job_id, job.room, job.identity, job.agent_name, job.metadata)
    worker = f"{job.worker_id}/{job.job_id}"

    def hello(link: str) -> str:
        return links.hello(worker, job.agent_name, [record], kind=links.JOB, link=link)

    client = _links[job.job_id] = LinkGroup(urls, hello, settings, name="job")
    if not client.start():
        return None

    async def ended(reason: str) -> None:
        await client.close(links.job_ended(record, died=False))
        _links.pop(job.job_id, None)

    adapter.on_job_shutdown(ended)
    room = get_job_context().room

    def connected() -> None:
        nonlocal record
        record = replace(record, sid=room.local_participant.sid)  # what the watchdog removes
        client.send(links.job_started(record))
        if announcing():
            _spawn(_announce(room))

    _when_connected(room, connected)
    logger.info(
        "🩺 this job links to the watchdog at %s",
        ", ".join(urls),
        extra={"room": job.room, "job_id": job.job_id},
    )
    return client


async def _announce(room: rtc.Room) -> None:
    """Set `ANNOUNCED_ATTRIBUTE` on the agent: LiveKit sends an attribute change at once,
    where a silent participant's join waits for its 3 s tick."""
    stamp = f"{time.time():.3f}"
    with contextlib.suppress(Exception):  # best effort: the room sees it within 3 s
        async with asyncio.timeout(1.0):
            await room.local_participant.set_attributes({ANNOUNCED_ATTRIBUTE: stamp})


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _when_connected(room: rtc.Room, then: Callable[[], None]) -> None:
    """Call `then()` once the job's room is connected (now, if it is)."""

    def changed(state: int) -> None:  # rtc 1.1 never emits its documented "connected"
        if state == rtc.ConnectionState.CONN_CONNECTED:
            room.off("connection_state_changed", changed)
            then()

    if room.isconnected():
        then()
    else:
        room.on("connection_state_changed", changed)
