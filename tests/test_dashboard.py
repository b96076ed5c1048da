"""The Grafana dashboard (dashboards/room-recovery.json) queries only metrics the watchdog
and the page server export, and shows every one of them: a metric renamed or added fails
here, not in Grafana. (tests/test_prometheus.py runs every query against a real Prometheus.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.metrics import exported_families

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "room-recovery.json"
METRIC_NAME = re.compile(r"room_recovery_[a-z_]+")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Metric families left off the dashboard on purpose, each with the reason.
NOT_ON_THE_DASHBOARD: dict[str, str] = {}

Panel = dict[str, Any]


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> Iterator[Panel]:
    """Every panel, those inside rows included."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets() -> Iterator[tuple[Panel, dict[str, Any]]]:
    for panel in panels():
        for target in panel.get("targets", []):
            yield panel, target


def queried_names() -> set[str]:
    return {name for _, target in targets() for name in METRIC_NAME.findall(target["expr"])}


def exported_names() -> dict[str, set[str]]:
    """Each metric family's name, with every name Prometheus may see for it."""
    return exported_families()


def test_the_dashboard_is_valid_json_with_its_title_and_uid() -> None:
    assert dashboard()["title"] == "room-recovery"
    assert dashboard()["uid"] == "room-recovery"
    assert dashboard()["schemaVersion"] == 39


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = set().union(*exported_names().values())
    queried = queried_names()
    assert queried, "no target expr names a room_recovery_ metric"
    assert queried <= exported, f"not exported by Metrics: {sorted(queried - exported)}"


def test_every_exported_metric_has_a_panel() -> None:
    queried = queried_names()
    missing = [
        family
        for family, names in exported_names().items()
        if family not in NOT_ON_THE_DASHBOARD and not names & queried
    ]
    assert not missing, f"no panel queries {missing}: add one, or a reason to NOT_ON_THE_DASHBOARD"


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"


def test_panels_fit_the_24_column_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels():
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


def test_every_query_goes_to_the_templated_prometheus_datasource() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel, target in targets():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert target["datasource"] == DATASOURCE, f"{panel['title']}: {target['refId']}"
