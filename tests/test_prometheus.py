"""A real Prometheus (Debian's) watching a real cluster: `up --nodes 2` starts it, scraping
the watchdog, the page server and both livekit-server nodes, with our alert rules loaded.
After a recovery (a person waiting without an agent gets one) and a page's session report,
every PromQL expression of dashboards/room-recovery.json parses and returns data, no alert
fires on the healthy system, and the operations view reads Prometheus' answers. Then Redis
stops answering (SIGSTOP): the alert fires, and the operations view in Chromium shows it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import rtc

from tests.support.browser import artifact_name, chromium, pages_of
from tests.support.livekit import ServerInfo, eventually, participant
from tests.support.system import System, brought_down, free_port_triple, spare_port

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "room-recovery.json"
RANGE = "5m"  # what Grafana puts for $__range


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target, $__range filled in as Grafana would."""
    board = json.loads(DASHBOARD.read_text())
    panels = [p for top in board["panels"] for p in (top, *top.get("panels", []))]
    return [
        (panel["title"], target["expr"].replace("$__range", RANGE))
        for panel in panels
        for target in panel.get("targets", [])
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[System]:
    planned = System(tmp_path / "state", tmp_path, livekit_port=free_port_triple(nodes=2))
    with brought_down(planned) as under_test:
        yield under_test


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> dict[str, Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as answer:
        body: dict[str, Any] = await answer.json()
    return body


async def test_prometheus_scrapes_the_cluster_and_every_dashboard_query_returns_data(
    cluster: System, request: pytest.FixtureRequest
) -> None:
    prometheus_port = spare_port()
    result = cluster.up(
        "--nodes",
        "2",
        "--redis-port",
        str(spare_port()),
        "--prometheus-port",
        str(prometheus_port),
        "--prometheus-interval",
        "1",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    assert f"metrics: {prometheus}/alerts" in result.stdout
    assert list(cluster.status())[-1] == "prometheus"
    page = f"http://127.0.0.1:{cluster.web_port}"
    server = ServerInfo(cluster.url, "devkey", "secret")

    async with aiohttp.ClientSession() as http:
        # every part scraped once before anything happens: then a counter's first change
        # is an increase to Prometheus, not the start of its series
        targets: list[dict[str, Any]] = []

        async def all_up() -> bool:
            targets[:] = await _targets(http, prometheus)
            return len(targets) == 4 and all(t["health"] == "up" for t in targets)

        try:
            await eventually(all_up, timeout=30, interval=0.5, what="every target scraped")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {targets}") from None
        assert sorted(t["labels"]["job"] for t in targets) == [
            "livekit",
            "livekit",
            "room-recovery-page",
            "room-recovery-watchdog",
        ]

        # a recovery: a person alone in a room nobody dispatched an agent to gets one
        async with participant(server, "prom-recovery", "person-1") as room:
            await eventually(
                lambda: _has_agent(room), timeout=30, what="an agent for the waiting person"
            )
        # a page's session: a grant, then its one report (as the page sends it)
        async with http.post(f"{page}/api/token", json={"agent": "demo-agent"}) as answer:
            grant = await answer.json()
        report = {
            "room": grant["room"],
            "identity": grant["identity"],
            "outcome_key": grant["outcome_key"],
            "outcome": "agent",
            "time_to_agent": 1.4,
            "retries": 1,
            "recoveries": 1,
        }
        async with http.post(f"{page}/api/outcome", json=report) as answer:
            assert answer.status == 204, await answer.text()

        # rates and increases need two scrapes after the events: wait for every query
        empty: list[str] = []

        async def every_query_has_data() -> bool:
            empty.clear()
            reported = await _values(
                http, prometheus, 'room_recovery_page_sessions_total{outcome="agent"}'
            )
            if sum(reported.values()) < 1:
                empty.append("(the session's report is not scraped yet)")
                return False
            for title, expr in dashboard_queries():
                body = await query(http, prometheus, expr)
                assert body["status"] == "success", (title, expr, body)
                if not body["data"]["result"]:
                    empty.append(f"{title}: {expr}")
            return not empty

        try:
            await eventually(every_query_has_data, timeout=45, interval=2, what="every query")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; these return no data:\n" + "\n".join(empty)) from None

        async with http.get(f"{prometheus}/api/v1/rules") as answer:
            groups = (await answer.json())["data"]["groups"]
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert "RoomRecoveryPersonWaiting" in loaded and len(loaded) >= 8
        assert all(rule["health"] == "ok" for rule in loaded.values())
        firing = [name for name, rule in loaded.items() if rule["state"] == "firing"]
        assert firing == [], f"alerts firing on a healthy system: {firing}"

        # the operations view reads Prometheus: its alerts, and what people felt
        async with http.get(f"http://127.0.0.1:{cluster.watch_port}/api/alerts") as answer:
            view = await answer.json()
        assert view["configured"] and view["error"] is None, view
        assert view["people"]["sessions"].get("agent", 0) > 0, view

        # Redis stops answering: the watchdog says so, and the alert fires within ~20 s
        redis_pid = cluster.pid_of("redis")
        os.kill(redis_pid, signal.SIGSTOP)
        try:

            async def redis_alert_fires() -> bool:
                async with http.get(f"{prometheus}/api/v1/alerts") as answer:
                    alerts = (await answer.json())["data"]["alerts"]
                return any(
                    a["labels"]["alertname"] == "RoomRecoveryRedisUnreachable"
                    and a["state"] == "firing"
                    for a in alerts
                )

            await eventually(redis_alert_fires, timeout=40, interval=1, what="the Redis alert")
            async with (
                chromium() as browser,
                pages_of(browser, artifact_name(request.node.name)) as open_page,
            ):
                page = await open_page(f"http://127.0.0.1:{cluster.watch_port}/", ready=False)
                shown = page.locator('#alerts li[data-alert="RoomRecoveryRedisUnreachable"]')
                await shown.wait_for(timeout=15_000)
                text = await shown.inner_text()
                assert "firing" in text and "cannot reach Redis" in text, text
                assert await page.locator("#people dd").first.inner_text() != "0"
        finally:
            os.kill(redis_pid, signal.SIGCONT)


async def _has_agent(room: rtc.Room) -> bool:
    agent = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    return any(p.kind == agent for p in room.remote_participants.values())


async def _targets(http: aiohttp.ClientSession, prometheus: str) -> list[dict[str, Any]]:
    async with http.get(f"{prometheus}/api/v1/targets") as answer:
        targets: list[dict[str, Any]] = (await answer.json())["data"]["activeTargets"]
    return targets


async def _values(http: aiohttp.ClientSession, prometheus: str, expr: str) -> dict[str, float]:
    """Each series of `expr` now, by its labels."""
    body = await query(http, prometheus, expr)
    return {
        json.dumps(sample["metric"], sort_keys=True): float(sample["value"][1])
        for sample in body["data"]["result"]
    }
