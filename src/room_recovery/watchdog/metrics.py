"""Prometheus metrics of the watchdog, in a registry of their own (served at /metrics)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from livekit import api
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..core.loops import LoopHealth
from ..core.views import is_agent_info, participant_view
from ..rules.model import Kind, ParticipantView, is_person

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
PARTICIPANT_KINDS = ("person", "agent", "other")
# Every label value of the counters, exported as 0 from the start: a query over a counter
# that has not counted yet returns 0, not nothing (Prometheus' advice).
RECOVERY_CAUSES = (
    "agent_missing",
    "agent_died",
    "worker_died",
    "ghost_removed",
    "ghost_room",
    "room_failed",
)
CLEANUP_ACTIONS = ("room_deleted", "participant_removed", "failed")
JOIN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0)


class Metrics:
    """Every metric room-recovery exports; one instance per watchdog."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rooms = Gauge("room_recovery_rooms", "Rooms in scope (ROOM_PREFIX)", registry=r)
        self.participants = Gauge(
            "room_recovery_participants", "Participants in watched rooms", ["kind"], registry=r
        )
        self.people_waiting = Gauge(
            "room_recovery_people_waiting",
            "Rooms where a person is waiting without a live agent",
            registry=r,
        )
        self.longest_wait = Gauge(
            "room_recovery_longest_wait_seconds",
            "Seconds the person waiting longest without a live agent has waited (0: nobody)",
            registry=r,
        )
        self.recoveries = Counter(
            "room_recovery_recoveries",
            "Recovery actions by cause: agent_missing, agent_died and worker_died (an agent "
            "was dispatched), ghost_removed, ghost_room (a room whose people a dead node left "
            "behind, deleted), room_failed (gave up; the page is told)",
            ["cause"],
            registry=r,
        )
        self.cleanups = Counter(
            "room_recovery_cleanups",
            "Stale cleanup actions: room_deleted, participant_removed, failed (one room the "
            "cleanup could not handle; the others went on)",
            ["action"],
            registry=r,
        )
        self.agent_join_seconds = Histogram(
            "room_recovery_agent_join_seconds",
            "Seconds from a person's join to the first agent's join in the room",
            buckets=JOIN_BUCKETS,
            registry=r,
        )
        self.room_count_alert = Gauge(
            "room_recovery_room_count_alert",
            "1 while the number of rooms is above the alert threshold",
            registry=r,
        )
        self.room_alert_threshold = Gauge(
            "room_recovery_room_alert_threshold",
            "The room count above which room_recovery_room_count_alert is 1",
            registry=r,
        )
        self.webhooks = Counter(
            "room_recovery_webhooks", "Verified webhooks received", ["event"], registry=r
        )
        self.webhooks_rejected = Counter(
            "room_recovery_webhooks_rejected",
            "Webhooks refused: unsigned, forged or malformed",
            registry=r,
        )

        self.worker_links = Gauge(
            "room_recovery_worker_links", "Agent workers linked to the watchdog", registry=r
        )
        self.linked_jobs = Gauge(
            "room_recovery_linked_jobs", "Jobs the linked workers report running", registry=r
        )
        self.silent_links = Gauge(
            "room_recovery_worker_links_silent",
            "Linked workers that answer no ping (stopped or unreachable; not taken for dead)",
            registry=r,
        )

        self.watched_rooms = Gauge(
            "room_recovery_watched_rooms",
            "Rooms by attention: close (looked at every poll: someone waits, an agent's "
            "liveness is in doubt, a recovery is under way) and quiet (glanced at, paced)",
            ["attention"],
            registry=r,
        )
        self.leader = Gauge(
            "room_recovery_leader",
            "1 while this watchdog leads (acts); 0 while it stands by (REDIS_URL elects one)",
            registry=r,
        )
        self.redis_up = Gauge(
            "room_recovery_redis_up",
            "1 while Redis answered the watchdog's last election call, 0 while it does not "
            "(exported only when REDIS_URL elects a leader)",
            registry=r,
        )
        self.livekit_calls = Gauge(
            "room_recovery_livekit_api_calls",
            "LiveKit server API calls the watchdog made since it started (a counter)",
            registry=r,
        )

        self.loop_since_success = Gauge(
            "room_recovery_loop_seconds_since_success",
            "Seconds since each of the watchdog's loops (poll, sweep, cleanup) last succeeded",
            ["loop"],
            registry=r,
        )
        self.loop_failures = Gauge(
            "room_recovery_loop_failures",
            "Iterations of each loop that failed in a row (0 when the last one succeeded)",
            ["loop"],
            registry=r,
        )

        for cause in RECOVERY_CAUSES:
            self.recoveries.labels(cause)
        for action in CLEANUP_ACTIONS:
            self.cleanups.labels(action)

    def watch_loops(self, loops: Iterable[LoopHealth]) -> None:
        """Export each loop's time since success and failures in a row, read at scrape."""
        for kind in PARTICIPANT_KINDS:
            self.participants.labels(kind).set(0)
        for attention in ("close", "quiet"):
            self.watched_rooms.labels(attention).set(0)
        for loop in loops:
            self.loop_since_success.labels(loop.name).set_function(_since_success(loop))
            self.loop_failures.labels(loop.name).set_function(_failures(loop))

    def count_participants(self, rooms: Iterable[Mapping[str, int]]) -> None:
        """Set the participants by kind from each room's last counts (`count_kinds`)."""
        rooms = list(rooms)
        for kind in PARTICIPANT_KINDS:
            self.participants.labels(kind).set(sum(room.get(kind, 0) for room in rooms))

    def count_rooms(self, count: int, threshold: int, alerting: bool) -> bool:
        """Set the room count; warn once when it rises above `threshold`. Returns whether
        it is above (pass it back as `alerting` next time)."""
        self.rooms.set(count)
        self.room_alert_threshold.set(threshold)
        alert = count > threshold
        if alert and not alerting:
            logger.warning(
                "🚨 %d rooms are open, more than the alert threshold of %d: rooms may be "
                "accumulating (see `room-recovery doctor`)",
                count,
                threshold,
                extra={"rooms": count},
            )
        self.room_count_alert.set(1 if alert else 0)
        return alert

    def record_join(self, infos: Sequence[api.ParticipantInfo]) -> bool:
        """Observe the seconds from a room's first person to its first agent, once both are
        there. Returns whether it did (then the room needs no more)."""
        people = [i for i in infos if is_person(participant_view(i))]
        agents = [i for i in infos if is_agent_info(i)]
        if not (people and agents):
            return False
        first_person = min(p.joined_at_ms for p in people)
        first_agent = min(a.joined_at_ms for a in agents)
        if first_agent >= first_person:
            self.agent_join_seconds.observe((first_agent - first_person) / 1000)
        return True

    def join_distribution(self) -> list[tuple[float, int]]:
        """The time-to-agent histogram as (upper bound in seconds, joins in that bucket
        alone), the last bound infinite."""
        cumulative = [
            (float(sample.labels["le"]), int(sample.value))
            for family in self.agent_join_seconds.collect()
            for sample in family.samples
            if sample.name.endswith("_bucket")
        ]
        below = 0
        buckets = []
        for bound, count in cumulative:
            buckets.append((bound, count - below))
            below = count
        return buckets

    def render(self) -> bytes:
        """The exposition text for a scrape."""
        return generate_latest(self.registry)


def count_kinds(views: Iterable[ParticipantView]) -> dict[str, int]:
    """How many people, agents and others (egress, SIP...) are in a room."""
    counts = dict.fromkeys(PARTICIPANT_KINDS, 0)
    for view in views:
        kind = "person" if is_person(view) else "agent" if view.kind is Kind.AGENT else "other"
        counts[kind] += 1
    return counts


def _since_success(loop: LoopHealth) -> Callable[[], float]:
    return lambda: time.monotonic() - (loop.last_ok if loop.last_ok is not None else loop.started)


def _failures(loop: LoopHealth) -> Callable[[], float]:
    return lambda: float(loop.failures)
