"""Are room-recovery's own services well? Their `/healthz` says (`core.health`).

A watchdog whose loops stopped, or a page server that cannot reach LiveKit, answers 503 with
the reason; this check repeats it with what to do. A service that does not answer is a
failure when `up` runs it, and skipped when nothing says it should run.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from ..core.health import Verdict, check_health
from .outcome import Check, Outcome

NAME = "room-recovery's services are healthy"
WATCHDOG = "watchdog"  # the service whose health URL's "/" is the operations view


async def services_healthy(
    http: aiohttp.ClientSession, urls: Mapping[str, str], expected: bool
) -> Check:
    """Ask each service's health URL; `expected`: they run under `up` and must answer."""
    well: list[str] = []
    problems: list[str] = []
    missing: list[str] = []
    for service, url in urls.items():
        health = await check_health(http, url)
        if health.healthy:
            well.append(service)
        elif health.verdict is Verdict.SILENT:
            missing.append(f"{service} ({url})")
        else:
            problems.append(f"{service}: {health.problem}")
    if problems or (missing and expected):
        detail = "; ".join([*problems, *(f"{m} does not answer" for m in missing)])
        return Check(
            NAME,
            Outcome.FAIL,
            detail,
            "see `room-recovery status` and `room-recovery logs watch web`; the supervisor "
            "restarts a service that stays stalled or silent",
        )
    if not well:
        return Check(NAME, Outcome.SKIPPED, "not checked: no watchdog or page server runs here")
    return Check(NAME, Outcome.OK, ", ".join(well) + " healthy" + _ops_view(urls, well))


def _ops_view(urls: Mapping[str, str], well: list[str]) -> str:
    """Where the watchdog's operations view is, when the watchdog answered."""
    url = urls.get(WATCHDOG)
    if WATCHDOG not in well or url is None:
        return ""
    return f"; operations view: {url.removesuffix('healthz')}"
