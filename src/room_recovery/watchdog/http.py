"""The watchdog's HTTP side: POST /webhook (verified), GET /metrics, GET /healthz, the
operations view (GET /, its files under /ops/, its data at GET /api/overview, and what
Prometheus says at GET /api/alerts), and the worker links (`GET /api/workers`, a
WebSocket, see `links`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from ..core.settings import Settings
from ..protocol.links import ALIVE_PATH, LINK_PATH
from .alerts import PrometheusView
from .metrics import CONTENT_TYPE
from .overview import overview
from .service import Watchdog, WatchdogOptions

logger = logging.getLogger(__name__)

OPS_DIR = Path(__file__).resolve().parent / "static"
OPS_FILES = {"ops.js": "text/javascript", "ops.css": "text/css"}
# The view loads only its own files and talks only to the watchdog.
OPS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
NO_CACHE = {"Cache-Control": "no-cache"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.prepared:  # a worker link's WebSocket: its headers went long ago
        return response
    response.headers.update(SECURITY_HEADERS)
    if request.path == "/":
        response.headers["Content-Security-Policy"] = OPS_POLICY
    return response


def create_app(watchdog: Watchdog) -> web.Application:
    """The watchdog's HTTP side: webhook, metrics, healthz, the operations view, links."""

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

    async def view(_: web.Request) -> web.FileResponse:
        return web.FileResponse(OPS_DIR / "ops.html", headers=NO_CACHE)

    async def view_file(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if name not in OPS_FILES:
            raise web.HTTPNotFound(text=f"no such file: /ops/{name[:64]!r}")
        headers = NO_CACHE | {"Content-Type": f"{OPS_FILES[name]}; charset=utf-8"}
        return web.FileResponse(OPS_DIR / name, headers=headers)

    async def view_data(_: web.Request) -> web.Response:
        return web.json_response(overview(watchdog), headers={"Cache-Control": "no-store"})

    prometheus = PrometheusView(watchdog.options.prometheus_url)

    async def alerts(_: web.Request) -> web.Response:
        return web.json_response(await prometheus.read(), headers={"Cache-Control": "no-store"})

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        async with watchdog:
            yield

    app = web.Application(middlewares=[_security_headers])
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", view)
    app.router.add_get("/ops/{name}", view_file)
    app.router.add_get("/api/overview", view_data)
    app.router.add_get("/api/alerts", alerts)
    app.router.add_get(LINK_PATH, watchdog.links.handle)
    app.router.add_get(ALIVE_PATH, watchdog.links.handle_alive)
    app.cleanup_ctx.append(lifetime)
    return app


async def serve(settings: Settings, host: str, port: int, options: WatchdogOptions) -> None:
    """Run the watchdog and its HTTP side until cancelled."""
    runner = web.AppRunner(create_app(Watchdog(settings, options)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        logger.info(
            "watchdog listening on http://%s:%d (operations view at /, webhook, metrics, healthz)",
            host,
            port,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
