"""The alerts (alerts/room-recovery.rules.yml) and what feeds them, without I/O: the rules
ask only for metrics we export; the watchdog exports how long the longest wait is, whether
Redis answers, and `up`'s parts; the operations view reads Prometheus' answers.

`promtool check rules` and `promtool test rules` (alerts/room-recovery.test.yml, each alert
firing and staying quiet) run in ./test.sh; tests/test_prometheus.py runs them all against a
real Prometheus scraping a real system.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from room_recovery.core.errors import ConfigurationError
from room_recovery.core.settings import load_settings
from room_recovery.rules.attention import AttentionPolicy, RoomSignals
from room_recovery.rules.watch import RoomHistory
from room_recovery.system.livekit_server import free_port
from room_recovery.system.options import SystemOptions
from room_recovery.system.parts import plan_system
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog.alerts import NO_PROMETHEUS, PrometheusView, alert_lines, people_felt
from room_recovery.watchdog.leader import Leadership, RedisUnreachableError
from room_recovery.watchdog.parts import PartsCollector
from room_recovery.watchdog.rooms import RoomBook
from tests.support.metrics import exported_families

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "alerts" / "room-recovery.rules.yml"
METRIC_NAME = re.compile(r"room_recovery_[a-z_]+")


def exported_names() -> set[str]:
    """Every name Prometheus may see from a watchdog (with `up`'s parts) or a page server."""
    return set().union(*exported_families().values())


def rules() -> list[dict[str, object]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_every_alert_asks_only_for_metrics_we_export() -> None:
    exported = exported_names()
    for rule in rules():
        asked = set(METRIC_NAME.findall(str(rule["expr"])))
        assert asked and asked <= exported, (rule["alert"], asked - exported)


def test_the_issue_s_alerts_are_all_there_with_a_severity_and_a_summary() -> None:
    names = {str(rule["alert"]) for rule in rules()}
    assert {
        "RoomRecoveryPersonWaiting",
        "RoomRecoveryGaveUp",
        "RoomRecoveryNoLeader",
        "RoomRecoveryTwoLeaders",
        "RoomRecoveryRedisUnreachable",
        "RoomRecoveryLoopStalled",
        "RoomRecoveryTooManyRooms",
        "RoomRecoveryPartRestartLoop",
    } <= names
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "warning")  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]


# --- what the watchdog exports for them ----------------------------------------------------


def test_the_longest_wait_is_that_of_the_person_who_waited_longest() -> None:
    book = RoomBook(AttentionPolicy(), now=0.0)
    assert book.longest_wait(10.0) == 0.0
    for name, since in (("a", 4.0), ("b", 1.0), ("served", 0.5)):
        room = book.wake(name, 0.0)
        room.history = RoomHistory(waiting_since=since)
        room.waiting = name != "served"
        book.looked(name, RoomSignals(waiting=room.waiting), 0.0)
    assert book.longest_wait(10.0) == 9.0


def test_up_s_parts_are_exported_from_its_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    parts = {"agent": {"state": "restarting", "restarts": 4}, "web": {"state": "healthy"}}
    status.write_text(json.dumps({"parts": parts}))
    registry = CollectorRegistry()
    registry.register(PartsCollector(status))
    samples = {
        (s.name, s.labels["part"]): s.value for family in registry.collect() for s in family.samples
    }
    assert samples == {
        ("room_recovery_part_restarts_total", "agent"): 4.0,
        ("room_recovery_part_restarts_total", "web"): 0.0,
        ("room_recovery_part_up", "agent"): 0.0,
        ("room_recovery_part_up", "web"): 1.0,
    }
    status.write_text("{torn")
    assert [s for family in registry.collect() for s in family.samples] == []


def test_a_watchdog_without_redis_exports_no_redis_gauge() -> None:
    settings = load_settings(livekit_api_key="k", livekit_api_secret="s" * 40)
    text = Watchdog(settings, WatchdogOptions()).metrics.render().decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "room_recovery_redis_up" not in names and "room_recovery_leader" in names


async def test_redis_that_does_not_answer_reads_as_down_until_it_does() -> None:
    leadership = Leadership(f"redis://127.0.0.1:{free_port()}/0", "al")
    try:
        assert leadership.reachable
        with pytest.raises(RedisUnreachableError):
            await leadership.step()
        assert not leadership.reachable
    finally:
        await leadership.close()


async def test_redis_that_hangs_reads_as_down_once_a_lease_passed_without_an_answer() -> None:
    # a Redis that takes connections and never answers (stopped, or its host gone), while
    # the leader loop's own time limit cuts every call short
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # the connection stays open, unanswered

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    leadership = Leadership(f"redis://127.0.0.1:{port}/0", "al", lease=0.4, renew=0.1)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await leadership.step()
        assert leadership.reachable  # not yet: a lease has not passed
        await asyncio.sleep(0.45)
        assert not leadership.reachable
    finally:
        await leadership.close()
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


# --- what the operations view shows ---------------------------------------------------------


def test_alerts_are_listed_firing_first_with_their_summary_and_labels() -> None:
    body = {
        "data": {
            "alerts": [
                {"labels": {"alertname": "B", "severity": "warning"}, "state": "pending"},
                {
                    "labels": {"alertname": "A", "severity": "page", "part": "agent"},
                    "annotations": {"summary": "agent restarted 4 times"},
                    "state": "firing",
                    "activeAt": "2026-12-04T10:00:00Z",
                },
                "garbage",
            ]
        }
    }
    lines = alert_lines(body)
    assert [(line["name"], line["state"]) for line in lines] == [("A", "firing"), ("B", "pending")]
    assert lines[0]["summary"] == "agent restarted 4 times"
    assert lines[0]["labels"] == {"part": "agent"}
    assert alert_lines("not json") == [] and alert_lines({"data": {"alerts": 3}}) == []


def test_what_people_felt_is_read_from_the_queries() -> None:
    results: dict[str, object] = {
        "sessions": [
            {"metric": {"outcome": "agent"}, "value": [0, "12"]},
            {"metric": {"outcome": "explained"}, "value": [0, "1.0004"]},
        ],
        "p50": [{"metric": {}, "value": [0, "0.91"]}],
        "p95": [{"metric": {}, "value": [0, "NaN"]}],
        "retries": [],
    }
    felt = people_felt(results)
    assert felt["sessions"] == {"agent": 12.0, "explained": 1.0}
    assert (felt["p50"], felt["p95"], felt["retries"], felt["recoveries"]) == (
        0.91,
        None,
        None,
        None,
    )


async def test_without_prometheus_the_view_says_how_to_get_one() -> None:
    view = await PrometheusView("").read()
    assert view["configured"] is False and view["error"] == NO_PROMETHEUS


async def test_a_prometheus_that_does_not_answer_is_said_not_raised() -> None:
    view = await PrometheusView(f"http://127.0.0.1:{free_port()}").read()
    assert view["configured"] is True and "did not answer" in view["error"]
    assert view["alerts"] == [] and view["people"] is None


# --- up without prometheus ------------------------------------------------------------------


def test_up_prometheus_without_prometheus_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for where in ("room_recovery.system.prometheus", "room_recovery.system.parts"):
        monkeypatch.setattr(f"{where}.prometheus_binary", lambda: None)
    settings = load_settings(livekit_url="ws://127.0.0.1:7880")
    with pytest.raises(ConfigurationError, match=r"Debian's prometheus package; ./setup.sh"):
        plan_system(settings, SystemOptions(state_dir=tmp_path, prometheus=True))
    # a cluster runs without it, saying so, rather than not at all
    plan = plan_system(settings, SystemOptions(state_dir=tmp_path, nodes=2))
    assert not plan.prometheus and "prometheus" not in [part.name for part in plan.parts]
