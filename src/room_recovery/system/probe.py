"""One look at a part's health URL, and what it means for the supervisor.

A part is `healthy` when its URL answers 200. When it answers 503 with our health body
(`core.health`), its own verdict counts: "failing" (it runs, something it needs does not)
is shown but never restarted, since a restart would not fix LiveKit or the network;
"stalled" is. A part that does not answer at all (refused, or no answer within the
timeout: a hung or SIGSTOPped process) is `silent`, and restarted if it stays so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

from ..core.health import STALLED

HEALTHY = "healthy"
FAILING = "failing"
STALLED_PART = "stalled"
SILENT = "silent"


@dataclass(frozen=True)
class PartHealth:
    verdict: str  # healthy, failing, stalled, silent
    problem: str | None = None

    @property
    def healthy(self) -> bool:
        return self.verdict == HEALTHY

    @property
    def needs_restart(self) -> bool:
        """A restart is what fixes it: the part is stalled or does not answer."""
        return self.verdict in (STALLED_PART, SILENT)


async def check_health(session: aiohttp.ClientSession, url: str) -> PartHealth:
    """Ask `url` once (the session's timeout bounds it); never raises."""
    try:
        async with session.get(url) as response:
            if response.status == 200:
                return PartHealth(HEALTHY)
            text = await response.text()
    except TimeoutError:
        return PartHealth(SILENT, f"{url} did not answer in time")
    except (aiohttp.ClientError, OSError) as exc:
        return PartHealth(SILENT, f"{url} does not answer ({type(exc).__name__})")
    return _verdict(response.status, text)


def _verdict(status: int, text: str) -> PartHealth:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("problems"), list):
        problem = "; ".join(str(p) for p in body["problems"]) or f"HTTP {status}"
        verdict = STALLED_PART if body.get("status") == STALLED else FAILING
        return PartHealth(verdict, problem)
    return PartHealth(FAILING, f"HTTP {status}: {text.strip()[:200]}")
