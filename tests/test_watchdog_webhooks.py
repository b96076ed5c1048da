"""The watchdog's HTTP side: webhooks are verified; forged or unsigned ones get 401."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from livekit import api

from room_recovery.core.settings import load_settings
from room_recovery.rules.replay import RecentIds
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running
from tests.support.livekit import ServerInfo


@pytest.fixture
async def watchdog_url(livekit_server: ServerInfo) -> AsyncIterator[str]:
    settings = load_settings(
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
        room_prefix="webhook-test-",
    )
    # `running` bounds the stop: aiohttp's own default waits a minute for open connections
    # (the server's webhook client keeps one), which once outlasted the test's timeout
    async with running(create_app(Watchdog(settings, WatchdogOptions())), "127.0.0.1", 0) as url:
        yield url


def signed(body: bytes, key: str, secret: str) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).to_jwt()


EVENT = json.dumps(
    {"event": "room_started", "room": {"name": "webhook-test-room"}, "id": "EV_1"}
).encode()


async def post(url: str, body: bytes, authorization: str | None) -> int:
    headers = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/webhook", data=body, headers=headers) as response,
    ):
        return response.status


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_webhook_signed_with_the_servers_secret_is_accepted(
    watchdog_url: str, livekit_server: ServerInfo
) -> None:
    auth = signed(EVENT, livekit_server.api_key, livekit_server.api_secret)
    assert await post(watchdog_url, EVENT, auth) == 200
    assert await metric(watchdog_url, "room_recovery_webhooks_total") == 1


async def test_a_replayed_webhook_is_taken_once_and_ignored_after(
    watchdog_url: str, livekit_server: ServerInfo
) -> None:
    # a captured `room_finished`, sent again, must not reset what the watchdog knows
    auth = signed(EVENT, livekit_server.api_key, livekit_server.api_secret)
    assert await post(watchdog_url, EVENT, auth) == 200
    assert await post(watchdog_url, EVENT, auth) == 200  # signed: no 401, but no effect
    assert await metric(watchdog_url, 'room_recovery_webhooks_total{event="room_started"}') == 1
    assert await metric(watchdog_url, 'room_recovery_webhooks_total{event="replayed"}') == 1


def test_ids_are_remembered_for_their_window_and_within_a_bound() -> None:
    seen = RecentIds(window=10, capacity=3)
    assert seen.first_time("EV_1", 0) and not seen.first_time("EV_1", 5)
    assert seen.first_time("EV_1", 11)  # its token has expired long since: not a replay
    for number in range(2, 6):
        assert seen.first_time(f"EV_{number}", 12)
    assert len(seen._seen) <= 3


async def test_an_unsigned_webhook_is_refused(watchdog_url: str) -> None:
    assert await post(watchdog_url, EVENT, None) == 401
    assert await metric(watchdog_url, "room_recovery_webhooks_rejected_total") == 1


async def test_a_webhook_forged_with_another_secret_is_refused(
    watchdog_url: str, livekit_server: ServerInfo
) -> None:
    forged = signed(EVENT, livekit_server.api_key, "x" * 40)
    assert await post(watchdog_url, EVENT, forged) == 401


async def test_a_signed_token_over_a_changed_body_is_refused(
    watchdog_url: str, livekit_server: ServerInfo
) -> None:
    auth = signed(EVENT, livekit_server.api_key, livekit_server.api_secret)
    tampered = EVENT.replace(b"webhook-test-room", b"webhook-test-evil")
    assert await post(watchdog_url, tampered, auth) == 401


async def test_metrics_and_health_answer(watchdog_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{watchdog_url}/healthz") as response:
            assert response.status == 200
            body = await response.json()
            assert body["role"] == "leader"  # without REDIS_URL the one watchdog acts
            assert set(body["rooms"]) == {"close", "quiet"}
        async with session.get(f"{watchdog_url}/metrics") as response:
            text = await response.text()
    for name in (
        "room_recovery_rooms",
        "room_recovery_people_waiting",
        "room_recovery_agent_join_seconds_bucket",
        "room_recovery_room_count_alert",
        'room_recovery_participants{kind="person"}',
        'room_recovery_loop_seconds_since_success{loop="sweep"}',
        'room_recovery_loop_failures{loop="cleanup"}',
        'room_recovery_watched_rooms{attention="quiet"}',
        "room_recovery_leader 1.0",
        "room_recovery_livekit_api_calls",
    ):
        assert name in text


async def test_the_operations_view_is_served_with_a_strict_policy_and_its_data_as_json(
    watchdog_url: str,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{watchdog_url}/") as response:
            assert response.status == 200
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "connect-src 'self'" in policy
            assert "unsafe" not in policy
            assert "/ops/ops.js" in await response.text()
        async with session.get(f"{watchdog_url}/ops/ops.js") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/javascript")
        async with session.get(f"{watchdog_url}/ops/../service.py") as response:
            assert response.status == 404
        async with session.get(f"{watchdog_url}/api/overview") as response:
            assert response.status == 200
            overview = await response.json()
    assert overview["rooms"]["threshold"] == WatchdogOptions().room_alert_threshold
    assert overview["room_list"] == [] and overview["recoveries"] == []
    assert [bucket["le"] for bucket in overview["time_to_agent"]][-1] is None  # +Inf
    assert set(overview["health"]["loops"]) >= {"poll", "sweep", "cleanup"}
