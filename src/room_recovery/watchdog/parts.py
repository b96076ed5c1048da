"""The parts `up` supervises, as metrics: read from its status.json at each scrape.

`up` runs the watchdog with `--parts-status STATE/status.json`; the watchdog then exports
`room_recovery_part_restarts_total{part}` (restarts since `up` started it) and
`room_recovery_part_up{part}` (1 while the part runs: healthy, or running with a
dependency failing). A part that restarts in a loop, or that the supervisor gave up on, is
thus seen by Prometheus and its alerts (alerts/room-recovery.rules.yml). Reading a small
file per scrape costs nothing while nobody scrapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

RUNNING_STATES = frozenset({"healthy", "failing"})  # `system.part.PartStatus` values


def read_parts(path: Path) -> dict[str, dict[str, object]]:
    """Each part's entry in `up`'s status.json; empty when the file is missing or torn."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    parts = status.get("parts") if isinstance(status, dict) else None
    if not isinstance(parts, dict):
        return {}
    return {str(name): entry for name, entry in parts.items() if isinstance(entry, dict)}


class PartsCollector(Collector):
    """Collects the parts' restarts and whether each runs, from status.json."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "room_recovery_part_restarts",
            "Restarts of each part `up` supervises, since `up` started it",
            labels=["part"],
        )
        running = GaugeMetricFamily(
            "room_recovery_part_up",
            "1 while a part `up` supervises runs (healthy, or running with a dependency "
            "failing); 0 while it starts, restarts, was given up or is stopped",
            labels=["part"],
        )
        for name, entry in sorted(read_parts(self.path).items()):
            count = entry.get("restarts")
            restarts.add_metric([name], float(count) if isinstance(count, int) else 0.0)
            running.add_metric([name], 1.0 if entry.get("state") in RUNNING_STATES else 0.0)
        yield restarts
        yield running
