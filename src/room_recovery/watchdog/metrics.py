"""Prometheus metrics of the watchdog, in a registry of their own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
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
        self.recoveries = Counter(
            "room_recovery_recoveries",
            "Recovery actions by cause: agent_missing, agent_died and worker_died (an agent "
            "was dispatched), ghost_removed, room_failed (gave up; the page is told)",
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

    def render(self) -> bytes:
        """The exposition text for a scrape."""
        return generate_latest(self.registry)
