"""The page server's side of what people felt: the pages' session reports and the metrics.

    POST /api/outcome   {room, identity, outcome_key, outcome, time_to_agent, retries,
                        recoveries}: a page's one report of its session (`web.outcomes`);
                        204, or 400 / 403 / 409 / 429 with {"error": ...} and one log line
    GET  /metrics       Prometheus' text: `room_recovery_page_*`. It answers this machine
                        and the networks in ROOM_RECOVERY_METRICS_FROM only (403 for others):
                        what people felt is the operator's to read, not the world's.

`json_body` reads a JSON request body for every route of the page server.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from .limits import TokenLimits, client_key
from .outcomes import PageMetrics, ReportBook, outcome_from_body
from .policy import BadRequest, Forbidden

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


async def json_body(request: web.Request) -> object:
    """The request's JSON body. Raises BadRequest saying what is wrong with it."""
    if request.content_type != "application/json":
        raise BadRequest(
            f"send JSON (Content-Type: application/json), not {request.content_type!r}"
        )
    try:
        return json.loads(await request.text())
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON ({str(exc)[:100]})") from None
    except RecursionError:
        raise BadRequest("the body is JSON nested too deeply") from None


def metrics_networks(settings: Settings) -> tuple[Network, ...]:
    """Loopback, and ROOM_RECOVERY_METRICS_FROM's networks. Raises ConfigurationError."""
    networks = list(LOOPBACK)
    for text in filter(None, (t.strip() for t in settings.room_recovery_metrics_from.split(","))):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"ROOM_RECOVERY_METRICS_FROM: {text!r} is not a network; write addresses "
                "or networks separated by commas, for example 10.0.0.0/8,192.168.1.5"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class Reports:
    settings: Settings
    metrics: PageMetrics
    book: ReportBook
    readers: tuple[Network, ...]  # who may read /metrics


REPORTS = web.AppKey("reports", Reports)


def add_reports(
    app: web.Application, settings: Settings, join_timeout: float, limits: TokenLimits
) -> None:
    """Serve /api/outcome and /metrics on `app`. Raises ConfigurationError."""
    app[REPORTS] = Reports(
        settings, PageMetrics(join_timeout), ReportBook(limits), metrics_networks(settings)
    )
    app.add_routes([web.post("/api/outcome", _outcome), web.get("/metrics", _metrics)])


async def _outcome(request: web.Request) -> web.Response:
    reports = request.app[REPORTS]
    client = client_key(request.remote or "")
    now = time.time()

    def refuse(status: int, reason: str, message: str) -> web.Response:
        reports.metrics.rejected.labels(reason).inc()
        logger.info("Refused a session report: %s", message, extra={"peer": client})
        return web.json_response({"error": message}, status=status)

    if not reports.book.check_rate(client, time.monotonic()):
        return refuse(429, "rate", "too many session reports from this address; try again later")
    try:
        outcome = outcome_from_body(await json_body(request), reports.settings, now)
    except Forbidden as exc:
        return refuse(403, "forbidden", str(exc))
    except BadRequest as exc:
        return refuse(400, "malformed", str(exc))
    if not reports.book.first(outcome, now):
        return refuse(409, "repeated", "this session was already reported")
    reports.metrics.record(outcome)
    logger.info(
        "📊 %s's session ended: %s after %d retries",
        outcome.identity,
        outcome.ended.value,
        outcome.retries,
        extra={"room": outcome.room, "identity": outcome.identity, "outcome": outcome.ended},
    )
    return web.Response(status=204)


def may_read_metrics(remote: str, readers: tuple[Network, ...]) -> bool:
    """Whether a peer at address `remote` may read /metrics."""
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in network for network in readers)


async def _metrics(request: web.Request) -> web.Response:
    reports = request.app[REPORTS]
    if not may_read_metrics(request.remote or "", reports.readers):
        message = (
            "/metrics answers this machine only; add the scraper's network to "
            "ROOM_RECOVERY_METRICS_FROM to let it read them\n"
        )
        return web.Response(status=403, text=message)
    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    return web.Response(body=reports.metrics.render(), headers=headers)
