"""What people felt: each page reports how its session went (`POST /api/outcome`), and the
page server exports it (`GET /metrics`, `room_recovery_page_*`).

A session is one press of Connect until the person leaves or the page gives up; its report
says how it ended (`Ended`), the seconds from Connect to the first agent, the new rooms it
tried and the recoveries it saw. The report carries the `outcome_key` of the session's last
grant (`policy.outcome_key`: an HMAC for that room and identity), so only a page this
server gave a token can report, once per grant: a replay, a forged key or a flood is
refused with a 4xx and one log line, and counted by reason. Labels come from fixed sets and
values are clamped, so the metrics' cardinality is bounded whatever a page sends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..core.settings import Settings
from ..rules.replay import RecentIds
from .limits import Refused, TokenBook, TokenLimits
from .policy import (
    MAX_FIELD_BYTES,
    OUTCOME_WINDOW,
    BadRequest,
    outcome_key,
    verify_room_key,
)

TIME_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
RETRY_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0)
MAX_SECONDS = 3600.0  # a time to agent beyond this is counted as this
MAX_COUNT = 100  # retries or recoveries beyond this are counted as this
REJECTIONS = ("malformed", "forbidden", "repeated", "rate")


class Ended(StrEnum):
    """How a session ended, as the person saw it."""

    AGENT = "agent"  # an agent came (whatever happened after)
    EXPLAINED = "explained"  # no agent came; the page explained what to do
    LEFT = "left"  # no agent came yet; the person left first


@dataclass(frozen=True)
class SessionOutcome:
    room: str
    identity: str
    ended: Ended
    time_to_agent: float | None  # seconds from Connect to the first agent; None: none came
    retries: int
    recoveries: int


def outcome_from_body(body: object, settings: Settings, now: float) -> SessionOutcome:
    """A page's report. Raises BadRequest naming what is wrong, or Forbidden for a key
    this server did not give for that room and identity, or one past its window."""
    if not isinstance(body, dict):
        raise BadRequest(
            "the body must be a JSON object with room, identity, outcome_key, outcome, "
            "time_to_agent, retries and recoveries"
        )
    texts = [body.get(name) for name in ("room", "identity", "outcome_key")]
    if not all(isinstance(text, str) and text for text in texts):
        raise BadRequest('"room", "identity" and "outcome_key" must be non-empty strings')
    room, identity, key = (str(text) for text in texts)
    if any(len(text.encode()) > MAX_FIELD_BYTES for text in (room, identity, key)):
        raise BadRequest(
            f'"room", "identity" and "outcome_key" are at most {MAX_FIELD_BYTES} bytes'
        )
    try:
        ended = Ended(str(body.get("outcome")))
    except ValueError:
        choices = ", ".join(repr(str(e)) for e in Ended)
        raise BadRequest(f'"outcome" must be one of {choices}') from None
    time_to_agent = body.get("time_to_agent")
    if ended is Ended.AGENT:
        if not _seconds(time_to_agent):
            raise BadRequest('"time_to_agent" must be the seconds to the agent (0 or more)')
    elif time_to_agent is not None:
        raise BadRequest('"time_to_agent" must be null when no agent came')
    counts = [body.get(name) for name in ("retries", "recoveries")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise BadRequest('"retries" and "recoveries" must be whole numbers, 0 or more')
    verify_room_key(
        key,
        lambda expires: outcome_key(settings, room, identity, expires),
        now,
        "outcome_key",
        f"this outcome_key has expired ({OUTCOME_WINDOW // 3600} h after its grant)",
    )
    seconds = None if ended is not Ended.AGENT else min(float(time_to_agent), MAX_SECONDS)  # type: ignore[arg-type]
    retries, recoveries = (min(int(c), MAX_COUNT) for c in counts)  # type: ignore[arg-type]
    return SessionOutcome(room, identity, ended, seconds, retries, recoveries)


def _seconds(value: object) -> bool:
    """Whether `value` is a finite JSON number, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value < math.inf


class PageMetrics:
    """The page server's metrics, in a registry of their own."""

    def __init__(self, join_timeout: float, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.sessions = Counter(
            "room_recovery_page_sessions",
            "Sessions as the pages reported them, by how they ended: agent (an agent came), "
            "explained (none came; the page said what to do), left (the person left first)",
            ["outcome"],
            registry=r,
        )
        self.time_to_agent = Histogram(
            "room_recovery_page_time_to_agent_seconds",
            "Seconds from the person's Connect to the first agent, across retries, as the "
            "page saw it",
            buckets=TIME_BUCKETS,
            registry=r,
        )
        self.retries = Histogram(
            "room_recovery_page_retries",
            "New rooms a session tried after its first",
            buckets=RETRY_BUCKETS,
            registry=r,
        )
        self.recoveries_seen = Counter(
            "room_recovery_page_recoveries_seen",
            "Times a page saw its agent drop out and waited in its room for another",
            registry=r,
        )
        self.rejected = Counter(
            "room_recovery_page_reports_rejected",
            "Session reports refused: malformed, forbidden (a key not ours, or expired), "
            "repeated (one per grant), rate (a client reporting too fast)",
            ["reason"],
            registry=r,
        )
        self.join_timeout = Gauge(
            "room_recovery_page_join_timeout_seconds",
            "The page's join timeout: how long a person waits for an agent in one room",
            registry=r,
        )
        self.join_timeout.set(join_timeout)
        for ended in Ended:
            self.sessions.labels(ended.value)
        for reason in REJECTIONS:
            self.rejected.labels(reason)

    def record(self, outcome: SessionOutcome) -> None:
        self.sessions.labels(outcome.ended.value).inc()
        if outcome.time_to_agent is not None:
            self.time_to_agent.observe(outcome.time_to_agent)
        self.retries.observe(outcome.retries)
        self.recoveries_seen.inc(outcome.recoveries)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ReportBook:
    """One report per grant, and a rate per client: the token limits' bucket (`TokenBook`,
    its rate only), since a page sends at most one report per token it got."""

    def __init__(self, limits: TokenLimits) -> None:
        self._reported = RecentIds(window=OUTCOME_WINDOW, capacity=100_000)
        self._rate = TokenBook(replace(limits, open_rooms=None, total_rooms=None))

    def check_rate(self, client: str, now: float) -> bool:
        """Take one report from `client`'s bucket; False when it is empty."""
        try:
            self._rate.check_rate(client, now)
        except Refused:
            return False
        return True

    def first(self, outcome: SessionOutcome, now: float) -> bool:
        """Whether this is the first report for its grant."""
        return self._reported.first_time(f"{outcome.room}\n{outcome.identity}", now)
