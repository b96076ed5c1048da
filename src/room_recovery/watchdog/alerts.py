"""What Prometheus says, for the operations view (`GET /api/alerts`): the alerts that fire
or are pending (alerts/room-recovery.rules.yml), and what people felt, as their pages
reported it to the page server (`room_recovery_page_*`).

The watchdog asks Prometheus only when a view asks it, and at most once per `CACHE_SECONDS`
however many views are open; each question is bounded by `QUERY_TIMEOUT`. Without a
Prometheus (`--prometheus`), the view says how to get one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
QUERY_TIMEOUT = 2.0
PEOPLE_WINDOW = "1h"
# What people felt, over the last hour, from the page servers' beacons.
PEOPLE_QUERIES = {
    "sessions": f"sum by (outcome) (increase(room_recovery_page_sessions_total[{PEOPLE_WINDOW}]))",
    "p50": "histogram_quantile(0.5, sum by (le) "
    f"(increase(room_recovery_page_time_to_agent_seconds_bucket[{PEOPLE_WINDOW}])))",
    "p95": "histogram_quantile(0.95, sum by (le) "
    f"(increase(room_recovery_page_time_to_agent_seconds_bucket[{PEOPLE_WINDOW}])))",
    "retries": f"sum(increase(room_recovery_page_retries_sum[{PEOPLE_WINDOW}]))",
    "recoveries": f"sum(increase(room_recovery_page_recoveries_seen_total[{PEOPLE_WINDOW}]))",
}
NO_PROMETHEUS = (
    "no Prometheus configured: start one with `room-recovery up --prometheus`, or run the "
    "watchdog with --prometheus URL of one that loads alerts/room-recovery.rules.yml"
)


def alert_lines(body: object) -> list[dict[str, Any]]:
    """Prometheus' `/api/v1/alerts` answer as the view's lines: firing first, then pending,
    each with its name, severity, since when, summary and distinguishing labels."""
    alerts = body.get("data", {}).get("alerts", []) if isinstance(body, dict) else []
    lines = []
    for alert in alerts if isinstance(alerts, list) else []:
        if not isinstance(alert, dict):
            continue
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        extra = {k: v for k, v in labels.items() if k not in ("alertname", "severity", "job")}
        lines.append(
            {
                "name": str(labels.get("alertname", "?")),
                "severity": str(labels.get("severity", "")),
                "state": str(alert.get("state", "")),
                "since": alert.get("activeAt"),
                "summary": str(annotations.get("summary", "")),
                "labels": extra,
            }
        )
    order = {"firing": 0, "pending": 1}
    return sorted(lines, key=lambda line: (order.get(line["state"], 2), line["name"]))


def people_felt(results: dict[str, object]) -> dict[str, Any]:
    """The people queries' answers (`PEOPLE_QUERIES`, by key) as plain numbers."""
    sessions: dict[str, float] = {}
    for sample in _samples(results.get("sessions")):
        outcome = sample.get("metric", {}).get("outcome", "?")
        sessions[outcome] = round(_value(sample), 1)
    felt: dict[str, Any] = {"window": PEOPLE_WINDOW, "sessions": sessions}
    for key in ("p50", "p95", "retries", "recoveries"):
        values = [_value(sample) for sample in _samples(results.get(key))]
        finite = [value for value in values if math.isfinite(value)]
        felt[key] = round(finite[0], 2) if finite else None
    return felt


def _samples(result: object) -> list[dict[str, Any]]:
    return [s for s in result if isinstance(s, dict)] if isinstance(result, list) else []


def _value(sample: dict[str, Any]) -> float:
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


@dataclass
class PrometheusView:
    """Asks Prometheus for the view, at most once per `CACHE_SECONDS`."""

    url: str
    _last: dict[str, Any] | None = None
    _at: float = -math.inf
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def read(self) -> dict[str, Any]:
        if not self.url:
            return {"configured": False, "error": NO_PROMETHEUS, "alerts": [], "people": None}
        async with self._lock:
            if self._last is None or time.monotonic() - self._at >= CACHE_SECONDS:
                self._last = await self._ask()
                self._at = time.monotonic()
            return self._last

    async def _ask(self) -> dict[str, Any]:
        view: dict[str, Any] = {"configured": True, "url": self.url, "error": None}
        timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                view["alerts"] = alert_lines(await _get(session, f"{self.url}/api/v1/alerts"))
                results = {}
                for key, query in PEOPLE_QUERIES.items():
                    body = await _get(session, f"{self.url}/api/v1/query", {"query": query})
                    results[key] = body.get("data", {}).get("result")
                view["people"] = people_felt(results)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            message = f"Prometheus at {self.url} did not answer: {exc or type(exc).__name__}"
            logger.info("operations view: %s", message)
            view |= {"error": message, "alerts": [], "people": None}
        return view


async def _get(
    session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None
) -> dict[str, Any]:
    async with session.get(url, params=params) as response:
        response.raise_for_status()
        body = await response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body
