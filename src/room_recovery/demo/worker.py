"""The demo agent's worker: its AgentServer and health endpoint. No account, no network, no model.

It joins the room it is dispatched to (explicit dispatch by agent name, so the page can
choose among agents), publishes an audio track, greets the person (espeak-ng, or a tone
when espeak-ng is missing) and plays back what it hears. It runs with the pre-join cleanup
(`agent.hook`) and the graceful shutdown (`agent.guard`) of this package.

    python -m room_recovery.demo [--agent-name demo-agent] [--health-port 8083]

or `await run_worker(settings, DemoAgentOptions(...))` from Python. Its health endpoint,
`GET /health` on `--health-port`, answers 200 `{"registered": true, ...}` only while the
worker is registered with the server, 503 otherwise (livekit-agents' own `GET /` answers
"OK" even before registration).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from livekit.agents import AgentServer

from ..agent import monitor
from ..agent.hook import make_request_handler
from ..agent.load import job_load
from ..core.defaults import AGENT_HEALTH_PORT
from ..core.errors import RoomRecoveryError
from ..core.settings import Settings, load_settings
from .session import DemoAgentOptions, entrypoint, prewarm

logger = logging.getLogger(__name__)


@dataclass
class WorkerStatus:
    """What the health endpoint reports."""

    agent_name: str
    worker_id: str | None = None
    health_url: str | None = None
    server: AgentServer | None = None

    @property
    def registered(self) -> bool:
        # the SDK has no event for losing the connection; `_connecting` is set again while
        # it reconnects after a server restart, until the next `worker_registered`
        reconnecting = bool(getattr(self.server, "_connecting", False))
        failed = bool(getattr(self.server, "_connection_failed", False))
        return self.worker_id is not None and not reconnecting and not failed

    def to_dict(self) -> dict[str, Any]:
        active = len(self.server.active_jobs) if self.server and self.registered else 0
        return {
            "registered": self.registered,
            "agent_name": self.agent_name,
            "worker_id": self.worker_id,
            "active_jobs": active,
        }


def build_server(settings: Settings, options: DemoAgentOptions) -> AgentServer:
    """The demo agent's AgentServer (not started)."""
    server = AgentServer(
        ws_url=settings.ws_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        load_fnc=functools.partial(job_load, options.max_jobs),
        load_threshold=math.inf,  # the server counts the jobs (job_load)
        num_idle_processes=options.num_idle_processes,
        host="127.0.0.1",
        port=0,  # livekit-agents' own HTTP server: any free port
        setup_fnc=functools.partial(prewarm, options),
    )
    server.rtc_session(
        functools.partial(entrypoint, options),
        agent_name=options.agent_name,
        on_request=make_request_handler(
            settings, timeout=options.cleanup_timeout, clean=options.prejoin_cleanup
        ),
    )
    return server


@contextlib.asynccontextmanager
async def health_endpoint(status: WorkerStatus, host: str, port: int) -> AsyncIterator[str]:
    """Serve `GET /health` (and `GET /`) for `status`; yields its URL. Port 0 picks one."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response(status.to_dict(), status=200 if status.registered else 503)

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/", health)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}/health"
    finally:
        await runner.cleanup()


async def run_worker(
    settings: Settings | None = None,
    options: DemoAgentOptions | None = None,
    *,
    health_host: str = "127.0.0.1",
    health_port: int = AGENT_HEALTH_PORT,
    stop: asyncio.Event | None = None,
    on_registered: Callable[[WorkerStatus], None] | None = None,
) -> None:
    """Run the demo agent's worker until `stop` is set (or the task is cancelled).

    `on_registered` is called each time the worker registers with the server. Raises
    ConfigurationError for bad settings, and RoomRecoveryError when the worker gives up
    connecting to the server (after livekit-agents' 16 retries).
    """
    settings = settings or load_settings()
    options = options or DemoAgentOptions()
    # The demo uses no local model: do not load the VAD/turn weights into every process.
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    server = build_server(settings, options)
    status = WorkerStatus(options.agent_name, server=server)

    def registered(worker_id: str, _server_info: object) -> None:
        status.worker_id = worker_id
        monitor.attach(server, settings)  # usually attached already, at "registered worker"
        logger.info(
            "✅ Agent %s registered",
            options.agent_name,
            extra={
                "agent_name": options.agent_name,
                "worker_id": worker_id,
                "health": status.health_url,
            },
        )
        if on_registered is not None:
            on_registered(status)

    server.on("worker_registered", registered)
    stop = stop or asyncio.Event()
    async with health_endpoint(status, health_host, health_port) as url:
        status.health_url = url
        logger.info("Health endpoint at %s", url, extra={"health": url})
        running = asyncio.create_task(server.run(devmode=False, unregistered=False))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await server.aclose()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        if running.done() and not running.cancelled() and running.exception() is not None:
            raise RoomRecoveryError(f"agent worker stopped: {running.exception()}")
