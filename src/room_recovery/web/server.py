"""The page's web server: the agent selector, its script, and a fresh room per attempt.

Layer 3 of the spec (`voice-agent-selector.html`). The page asks for a token for each
attempt; every token names a new room (`ROOM_PREFIX` + agent + new session id) and
dispatches the chosen agent through the token's room configuration, so a retry never
lands in the room a ghost is stuck in. The API secret never leaves this process.

Closing a tab gives the page no time to await anything: its `room_cleanup` message may not
get through. It also sends a beacon to `/api/leave`, with a key only this server can make
for that room and person (an HMAC, valid as long as the room), and the server deletes the
room, which ends the agent's job at once, instead of after the agent's grace period.

    GET  /                                the page (also /voice-agent-selector.html)
    GET  /static/{file}                   its scripts and style (web/static)
    GET  /vendor/livekit-client.esm.mjs   livekit-client from node_modules (./setup.sh
                                          runs `npm ci`; ROOM_RECOVERY_NODE_MODULES overrides)
    GET  /api/config                      the page's timeouts, the agents to choose from, and
                                          the protocol's names (`protocol.page`)
    POST /api/token                       {"agent": NAME} → {url, token, room, identity,
                                          expires_in, leave_key, outcome_key}; 400
                                          {"error": ...} if refused,
                                          429 over a client's bounds (`limits`), 401 when an
                                          `authorize` hook says no
    POST /api/leave                       {room, identity, leave_key}: the page's beacon when
                                          its tab closes; deletes the room if the person was
                                          alone in it with agents
    POST /api/outcome, GET /metrics       what people felt: each page's one report of its
                                          session, exported for Prometheus (`web.reports`)
    GET  /healthz                         200 {"status": "ok"}; 503 with the problem when
                                          LiveKit does not answer (probed at most every 5 s)

Run it with `await serve(settings, agents=["demo-agent"])`, or from the command line with
`room-recovery web` (its options are in `room_recovery.cli.services`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from ..core.defaults import LOCAL_HOST, WEB_PORT
from ..core.errors import ConfigurationError, RoomRecoveryError
from ..core.health import Health
from ..core.settings import Settings
from ..protocol.page import page_protocol
from .access import Authorize, LiveKitProbe, authorize_of, existing_rooms, limits_of
from .leaves import LeaveRetries, delete_if_left_alone
from .limits import Refused, TokenBook, TokenLimits, client_key
from .nodes import Nodes, check_node_url
from .policy import (
    DEFAULT_AGENT,
    AgentChoice,
    BadRequest,
    Forbidden,
    PageConfig,
    agent_from_body,
    check_room_name,
    content_security_policy,
    leave_from_body,
    mint_grant,
    new_session_id,
    parse_agents,
    room_name_for,
)
from .reports import add_reports, json_body

__all__ = ["create_app", "running", "serve"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
LIVEKIT_CLIENT_FILES = ("livekit-client.esm.mjs", "livekit-client.esm.mjs.map")
NODE_MODULES_ENV = "ROOM_RECOVERY_NODE_MODULES"
DEFAULT_HOST = LOCAL_HOST
DEFAULT_PORT = WEB_PORT
MAX_BODY_BYTES = 4096
SHUTDOWN_TIMEOUT = 2.0
_NO_CACHE = {"Cache-Control": "no-cache"}
_PAGE_PATHS = ("/", "/voice-agent-selector.html", "/index.html")
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def find_node_modules(settings: Settings) -> Path:
    """Where livekit-client is installed: ROOM_RECOVERY_NODE_MODULES, or the project's."""
    configured = settings.room_recovery_node_modules
    if configured:
        return Path(configured)
    for base in (PROJECT_ROOT, Path.cwd()):
        if (base / "node_modules" / "livekit-client").is_dir():
            return base / "node_modules"
    return PROJECT_ROOT / "node_modules"


# --- the application -------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    settings: Settings
    agents: tuple[AgentChoice, ...]
    page: PageConfig
    node_modules: Path
    probe: LiveKitProbe
    book: TokenBook
    authorize: Authorize | None
    nodes: Nodes
    leaves: LeaveRetries


STATE = web.AppKey("state", _State)


def create_app(
    settings: Settings,
    agents: Sequence[AgentChoice | str] = (DEFAULT_AGENT,),
    page_config: PageConfig | None = None,
    *,
    node_modules: Path | None = None,
    limits: TokenLimits | None = None,
    authorize: Authorize | None = None,
    nodes: Sequence[str] = (),
) -> web.Application:
    """The page's aiohttp application.

    `limits` bound the tokens one client gets (`web.limits`; default `TokenLimits()`).
    `authorize(request)`, when given, must return True before a token is minted: your
    application's own sign-in (see `header_secret` for the simplest).

    Raises ConfigurationError for bad agents, or when their room names would be too long.
    """
    choices = parse_agents(agents)
    for choice in choices:
        check_room_name(room_name_for(settings.room_prefix, choice.name, new_session_id()))
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[_security_headers, _json_errors]
    )
    app[STATE] = _State(
        settings,
        choices,
        page_config or PageConfig(),
        node_modules or find_node_modules(settings),
        LiveKitProbe(settings),
        TokenBook(limits or limits_of(settings)),
        authorize or authorize_of(settings),
        Nodes([settings.ws_url, *(check_node_url(url) for url in nodes)]),
        LeaveRetries(settings),
    )
    add_reports(app, settings, app[STATE].page.join_timeout, app[STATE].book.limits)
    app.cleanup_ctx.append(_check_nodes)
    app.cleanup_ctx.append(_retry_leaves)
    app.add_routes(
        [
            *(web.get(path, _page) for path in _PAGE_PATHS),
            web.get("/static/{name}", _static),
            web.get("/vendor/{name}", _vendor),
            web.get("/api/config", _config),
            web.post("/api/token", _token),
            web.post("/api/leave", _leave),
            web.get("/healthz", _healthz),
        ]
    )
    return app


async def _check_nodes(app: web.Application) -> AsyncIterator[None]:
    async with app[STATE].nodes.checking():
        yield


async def _retry_leaves(app: web.Application) -> AsyncIterator[None]:
    async with app[STATE].leaves.running():
        yield


@web.middleware
async def _security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """No MIME sniffing and no referrer on every answer; the page also gets its CSP."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_SECURITY_HEADERS)
        raise
    response.headers.update(_SECURITY_HEADERS)
    if request.path in _PAGE_PATHS:
        state = request.app[STATE]
        policy = content_security_policy(state.settings, state.nodes.origins)
        response.headers["Content-Security-Policy"] = policy
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """API errors as JSON {"error": ...}, so the page can show what went wrong."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        message = exc.text if exc.text and exc.content_type == "text/plain" else exc.reason
        return web.json_response({"error": message}, status=exc.status)


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)


_STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in _STATIC_FILES:  # only the page's own files, by name
        raise web.HTTPNotFound(text=f"no such file: /static/{name[:64]!r}")
    return web.FileResponse(STATIC_DIR / name, headers=_NO_CACHE | _content_type(name))


async def _vendor(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in LIVEKIT_CLIENT_FILES:
        raise web.HTTPNotFound(text=f"no such file: /vendor/{name[:64]!r}")
    path = request.app[STATE].node_modules / "livekit-client" / "dist" / name
    if not path.is_file():
        logger.error(
            "livekit-client is not installed at %s: run ./setup.sh (it runs npm ci)",
            path,
            extra={"path": str(path)},
        )
        raise web.HTTPInternalServerError(
            text=f"livekit-client is not installed ({path} is missing): run ./setup.sh, "
            "which runs `npm ci` in the project"
        )
    return web.FileResponse(path, headers=_NO_CACHE | _content_type(name))


def _content_type(name: str) -> dict[str, str]:
    # Module scripts need a JavaScript type; `mimetypes` does not know .mjs everywhere.
    types = {
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".html": "text/html",
        ".map": "application/json",
    }
    suffix = Path(name).suffix
    return {"Content-Type": f"{types[suffix]}; charset=utf-8"} if suffix in types else {}


async def _config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    agents = [agent.to_dict() for agent in state.agents]
    body = state.page.to_dict() | {"agents": agents, "protocol": page_protocol()}
    return web.json_response(body, headers=_NO_CACHE)


async def _token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    client = client_key(request.remote or "")
    if state.authorize is not None and not await state.authorize(request):
        logger.info("Refused a token request: not signed in", extra={"peer": client})
        message = "sign in first: this page server gives tokens only to signed-in people"
        return web.json_response({"error": message}, status=401)
    try:
        agent = agent_from_body(await json_body(request), state.agents)
    except BadRequest as exc:
        logger.info("Refused a token request: %s", exc, extra={"peer": client})
        return web.json_response({"error": str(exc)}, status=400)
    now = time.monotonic()
    try:
        state.book.check_rate(client, now)
        to_verify = state.book.rooms_to_verify(client, now)
        if to_verify is not None:
            existing = await existing_rooms(state.settings, to_verify)
            state.book.check_rooms(client, existing, now, asked=to_verify)
    except Refused as exc:
        logger.warning("Refused a token request: %s", exc, extra={"peer": client})
        headers = {"Retry-After": str(exc.retry_after)}
        return web.json_response({"error": str(exc)}, status=429, headers=headers)
    grant = replace(mint_grant(state.settings, agent, state.page.token_ttl), url=state.nodes.pick())
    state.book.record(client, grant.room, now)
    logger.info(
        "🎟️ Token for room %s (agent %s)",
        grant.room,
        agent.name,
        extra={"room": grant.room, "identity": grant.identity, "agent_name": agent.name},
    )
    return web.json_response(grant.to_dict(), headers={"Cache-Control": "no-store"})


async def _leave(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    try:
        room, identity = leave_from_body(await json_body(request), settings, time.time())
    except BadRequest as exc:
        status = 403 if isinstance(exc, Forbidden) else 400
        logger.info("Refused a leave beacon: %s", exc, extra={"peer": request.remote})
        return web.json_response({"error": str(exc)}, status=status)
    fields = {"room": room, "identity": identity}
    try:
        deleted = await delete_if_left_alone(settings, room, identity)
    except RoomRecoveryError as exc:
        kept = request.app[STATE].leaves.keep(room, identity)
        logger.warning(
            "Could not clean up room %s after its page closed: %s%s",
            room,
            exc,
            "; trying again in the background" if kept else "; too many leaves kept already",
            extra=fields,
        )
        return web.json_response({"error": str(exc), "retrying": kept}, status=502)
    if deleted:
        logger.info("👋 %s closed the page; deleted room %s", identity, room, extra=fields)
    return web.json_response({"deleted": deleted})


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    problem = await state.probe.problem()
    health = Health.of(state.nodes.loops, time.monotonic(), failing=(problem,) if problem else ())
    return web.json_response(health.to_dict(), status=health.http_status, headers=_NO_CACHE)


# --- running it ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    app: web.Application, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> AsyncIterator[str]:
    """Serve `app` while inside; yields its base URL (port 0 picks a free port)."""
    # requests are short: a stop need not wait aiohttp's default minute for them
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from None
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


async def serve(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents: Sequence[AgentChoice | str] = (DEFAULT_AGENT,),
    page_config: PageConfig | None = None,
    stop: asyncio.Event | None = None,
    nodes: Sequence[str] = (),
) -> None:
    """Serve the page until `stop` is set; without `stop`, until SIGINT or SIGTERM.

    Raises ConfigurationError for bad agents or settings, or when the port is taken.
    """
    app = create_app(settings, agents, page_config, nodes=nodes)
    own_stop = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if own_stop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with running(app, host, port) as url:
            state = app[STATE]
            logger.info(
                "🌐 Page at %s/ (agents: %s)",
                url,
                ", ".join(a.name for a in state.agents),
                extra={"url": url, "livekit_url": settings.livekit_url},
            )
            if not (state.node_modules / "livekit-client").is_dir():
                missing = "livekit-client is missing in %s: the page cannot connect; run ./setup.sh"
                logger.warning(missing, state.node_modules)
            await stop.wait()
    finally:
        if own_stop:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
