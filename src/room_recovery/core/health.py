"""What a service says at `/healthz`: ok, failing (with why), or stalled (restart it); and
how another process reads it (`check_health`).

The answer is JSON, `{"status": ..., "problems": [...], "loops": {...}}`, with HTTP 200 when
the status is "ok" and 503 otherwise, so a load balancer or the supervisor needs only the
code, and a person reading it (`status`, `doctor`) gets the reason:

* "stalled": one of the service's loops stopped finishing its iterations. The supervisor
  restarts a part that stays stalled (see `system.supervisor`).
* "failing": the service runs, but what it needs fails (LiveKit unreachable, a loop whose
  iterations fail). A restart would not help; the problems say what would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp

from .loops import LoopHealth, problems


class Status(StrEnum):
    """What a service says of itself at `/healthz`."""

    OK = "ok"
    FAILING = "failing"  # it runs, but what it needs fails: a restart would not help
    STALLED = "stalled"  # a loop stopped finishing its iterations: restart it


@dataclass(frozen=True)
class Health:
    """One service's health at one moment."""

    stalled: Sequence[str] = ()
    failing: Sequence[str] = ()
    loops: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def of(cls, loops: Iterable[LoopHealth], now: float, failing: Sequence[str] = ()) -> Health:
        """The health of these loops, with other `failing` reasons added."""
        loops = list(loops)
        stalled, loop_failures = problems(loops, now)
        return cls(
            tuple(stalled),
            (*failing, *loop_failures),
            {loop.name: loop.to_dict(now) for loop in loops},
        )

    @property
    def status(self) -> Status:
        if self.stalled:
            return Status.STALLED
        return Status.FAILING if self.failing else Status.OK

    @property
    def http_status(self) -> int:
        return 200 if self.status is Status.OK else 503

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "problems": [*self.stalled, *self.failing],
        }
        if self.loops:
            body["loops"] = self.loops
        return body


# --- reading another part's health ----------------------------------------------------
# A part is `healthy` when its URL answers 200. When it answers 503 with the body above,
# its own verdict counts: "failing" is shown but never restarted (a restart fixes neither
# LiveKit nor the network); "stalled" is. A part that does not answer at all (refused, or
# not within the timeout: hung or SIGSTOPped) is `silent`, and restarted if it stays so.


class Verdict(StrEnum):
    """What one look at another part's `/healthz` found."""

    HEALTHY = "healthy"  # it answered 200
    FAILING = Status.FAILING.value  # it answered 503, failing: shown, never restarted
    STALLED = Status.STALLED.value  # it answered 503, stalled: restarted if it stays so
    SILENT = "silent"  # no answer (refused, hung, SIGSTOPped): restarted if it stays so


@dataclass(frozen=True)
class PartHealth:
    verdict: Verdict
    problem: str | None = None

    @property
    def healthy(self) -> bool:
        return self.verdict is Verdict.HEALTHY

    @property
    def needs_restart(self) -> bool:
        """A restart is what fixes it: the part is stalled or does not answer."""
        return self.verdict in (Verdict.STALLED, Verdict.SILENT)


async def check_health(session: aiohttp.ClientSession, url: str) -> PartHealth:
    """Ask `url` once (the session's timeout bounds it); never raises."""
    try:
        async with session.get(url) as response:
            if response.status == 200:
                return PartHealth(Verdict.HEALTHY)
            text = await response.text()
    except TimeoutError:
        return PartHealth(Verdict.SILENT, f"{url} did not answer in time")
    except (aiohttp.ClientError, OSError) as exc:
        return PartHealth(Verdict.SILENT, f"{url} does not answer ({type(exc).__name__})")
    return _verdict(response.status, text)


def _verdict(status: int, text: str) -> PartHealth:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("problems"), list):
        problem = "; ".join(str(p) for p in body["problems"]) or f"HTTP {status}"
        verdict = Verdict.STALLED if body.get("status") == Status.STALLED else Verdict.FAILING
        return PartHealth(verdict, problem)
    return PartHealth(Verdict.FAILING, f"HTTP {status}: {text.strip()[:200]}")
