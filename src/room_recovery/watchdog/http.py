"""The watchdog's HTTP side: POST /webhook (verified), GET /metrics, GET /healthz, and the
worker links (`GET /api/workers`, a WebSocket, see `links`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..core.settings import Settings
from ..protocol.links import LINK_PATH
from .metrics import CONTENT_TYPE
from .service import Watchdog, WatchdogOptions

logger = logging.getLogger(__name__)


def create_app(watchdog: Watchdog) -> web.Application:
    """The watchdog's HTTP side: POST /webhook, GET /metrics, GET /healthz."""

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        event = watchdog.receive(body, request.headers.get("Authorization", ""))
        if event is None:
            return web.Response(status=401, text="webhook signature missing or invalid\n")
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=watchdog.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(_: web.Request) -> web.Response:
        health = watchdog.health()
        book = watchdog.book  # who acts, and how many rooms it looks at closely
        body = health.to_dict() | {
            "role": watchdog.leadership.role(),
            "rooms": {"close": book.close_count(), "quiet": book.quiet_count()},
        }
        return web.json_response(body, status=health.http_status)

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        async with watchdog:
            yield

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(LINK_PATH, watchdog.links.handle)
    app.cleanup_ctx.append(lifetime)
    return app


async def serve(settings: Settings, host: str, port: int, options: WatchdogOptions) -> None:
    """Run the watchdog and its HTTP side until cancelled."""
    runner = web.AppRunner(create_app(Watchdog(settings, options)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        logger.info("watchdog listening on http://%s:%d (webhook, metrics, healthz)", host, port)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
