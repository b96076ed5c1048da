"""Every metric family room-recovery exports: the watchdog's (`Metrics`, and `up`'s parts
from its status.json) and the page server's (`PageMetrics`), with every name Prometheus may
see for each (a counter's _total, a histogram's _bucket, _sum and _count)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from room_recovery.watchdog.metrics import Metrics
from room_recovery.watchdog.parts import PartsCollector
from room_recovery.web.outcomes import PageMetrics

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exported_families() -> dict[str, set[str]]:
    parts = CollectorRegistry()
    parts.register(PartsCollector(Path("/nonexistent")))
    families: dict[str, set[str]] = {}
    for registry in (Metrics().registry, PageMetrics(join_timeout=15).registry, parts):
        for family in registry.collect():
            names = {family.name, *(sample.name for sample in family.samples)}
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
            families[family.name] = names
    return families
