"""Every peer may be hostile: each entry point answers bad input with a 4xx and one line.

The page server's routes and the watchdog's (HTTP and the worker link), table-driven over
the inputs a careless or hostile client sends: wrong types, non-ASCII and over-long fields,
deep or huge JSON, unknown messages, forged or foreign credentials. Never a 500, never a
traceback, never a link dropped (which would get a worker's agents replaced). The parsers
behind them are also checked against arbitrary input (hypothesis).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit import api

from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol import links
from room_recovery.protocol.links import JobRecord, MalformedLinkMessage
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog import create_app as watchdog_app
from room_recovery.web import create_app as page_app
from room_recovery.web import running
from room_recovery.web.policy import BadRequest, leave_from_body, leave_key
from tests.support.livekit import ServerInfo, eventually, participant

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"agent": ' + DEEP + "}"
HUGE = json.dumps({"agent": "x" * 100_000})
JSON = {"Content-Type": "application/json"}


def page_settings(server: ServerInfo) -> Settings:
    return load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix="ep-",
    )


@pytest.fixture(scope="module")
async def page(livekit_server: ServerInfo) -> AsyncIterator[str]:
    async with running(
        page_app(page_settings(livekit_server), ["demo-agent"]), "127.0.0.1", 0
    ) as url:
        yield url


@pytest.fixture(scope="module")
async def watchdog(livekit_server: ServerInfo) -> AsyncIterator[tuple[Watchdog, str]]:
    dog = Watchdog(page_settings(livekit_server), WatchdogOptions(sweep_interval=30))
    async with running(watchdog_app(dog), "127.0.0.1", 0) as url:
        yield dog, url


async def answer(
    method: str, url: str, body: str | bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, data=body, headers=headers or {}) as response:
            return response.status, await response.text()


def one_line_4xx(status: int, text: str) -> None:
    assert 400 <= status < 500, (status, text[:300])
    assert "Traceback" not in text
    assert text.strip().count("\n") == 0, text[:300]
    assert len(text) < 1000


a_leave_key = "9999999999." + "0" * 64
PAGE_CASES = [
    ("POST", "/api/token", "not json", JSON),
    ("POST", "/api/token", '{"agent": "demo-agent"}', {"Content-Type": "text/plain"}),
    ("POST", "/api/token", DEEP_OBJECT, JSON),
    ("POST", "/api/token", DEEP, JSON),
    ("POST", "/api/token", HUGE, JSON),
    ("POST", "/api/token", '["demo-agent"]', JSON),
    ("POST", "/api/token", '{"agent": 7}', JSON),
    ("POST", "/api/token", json.dumps({"agent": "é" * 3000}), JSON),
    ("POST", "/api/token", '{"agent": "no-such-agent"}', JSON),
    ("POST", "/api/token", b"\xff\xfe\x00garbage", JSON),
    ("POST", "/api/leave", DEEP, JSON),
    ("POST", "/api/leave", '{"room": "ep-r", "identity": "u"}', JSON),
    (
        "POST",
        "/api/leave",
        json.dumps({"room": "ep-r", "identity": "u", "leave_key": "123.é"}),
        JSON,
    ),
    (
        "POST",
        "/api/leave",
        json.dumps({"room": "ep-r", "identity": "u", "leave_key": "²³.x"}),
        JSON,
    ),
    (
        "POST",
        "/api/leave",
        json.dumps({"room": "ep-r", "identity": "u", "leave_key": "1" * 100}),
        JSON,
    ),
    (
        "POST",
        "/api/leave",
        json.dumps({"room": "é" * 200, "identity": "u", "leave_key": a_leave_key}),
        JSON,
    ),
    (
        "POST",
        "/api/leave",
        json.dumps({"room": "ep-r", "identity": "u", "leave_key": a_leave_key}),
        JSON,
    ),
    ("POST", "/api/leave", json.dumps({"room": 1, "identity": [], "leave_key": {}}), JSON),
    ("POST", "/api/outcome", DEEP, JSON),
    ("POST", "/api/outcome", b"\xff\xfe\x00garbage", JSON),
    ("POST", "/api/outcome", '{"room": "ep-r", "identity": "u"}', JSON),
    (
        "POST",
        "/api/outcome",
        json.dumps(
            {
                "room": "ep-r",
                "identity": "u",
                "outcome_key": a_leave_key,
                "outcome": "agent",
                "time_to_agent": 1,
                "retries": 0,
                "recoveries": 0,
            }
        ),
        JSON,
    ),
    ("GET", "/static/%00", None, None),
    ("GET", "/static/..%2F..%2Fpyproject.toml", None, None),
    ("GET", "/static/" + "a" * 5000, None, None),
    ("GET", "/vendor/%00evil.js", None, None),
    ("GET", "/no/such/page", None, None),
    ("PUT", "/api/token", "{}", JSON),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), PAGE_CASES)
async def test_the_page_server_answers_bad_input_with_a_4xx_and_one_line(
    page: str, method: str, path: str, body: str | None, headers: dict[str, str] | None
) -> None:
    status, text = await answer(method, page + path, body, headers)
    one_line_4xx(status, text)


WATCHDOG_CASES = [
    ("POST", "/webhook", "{}", {"Authorization": "forged"}),
    ("POST", "/webhook", DEEP, {"Authorization": "x"}),
    ("POST", "/webhook", b"\xff\xfe", {}),
    ("GET", "/ops/%00", None, None),
    ("GET", "/ops/" + "a" * 5000, None, None),
    ("GET", "/api/workers", None, None),
    ("GET", "/api/workers", None, {"Authorization": "Bearer " + "x" * 5000}),
    ("GET", "/api/workers", None, {"Authorization": "Bearer é"}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), WATCHDOG_CASES)
async def test_the_watchdog_answers_bad_input_with_a_4xx_and_one_line(
    watchdog: tuple[Watchdog, str],
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str] | None,
) -> None:
    _dog, url = watchdog
    status, text = await answer(method, url + path, body, headers)
    one_line_4xx(status, text)


# --- the worker link's credential --------------------------------------------------------


def livekit_agent_token(server: ServerInfo) -> str:
    """What every agent job process holds: a LiveKit token with the agent grant."""
    token = api.AccessToken(server.api_key, server.api_secret).with_identity("agent-x")
    return token.with_grants(api.VideoGrants(agent=True)).with_ttl(timedelta(hours=1)).to_jwt()


async def test_a_livekit_token_or_an_expired_link_token_opens_no_link(
    livekit_server: ServerInfo, watchdog: tuple[Watchdog, str]
) -> None:
    _dog, url = watchdog
    key, secret = livekit_server.api_key, livekit_server.api_secret
    expired = links.link_token(key, secret, "link-1", now=time.time() - 3600)
    other_key = links.link_token(key, "another-secret-entirely-" * 2, "link-1")
    for token in (livekit_agent_token(livekit_server), expired, other_key):
        status, text = await answer(
            "GET", url + links.LINK_PATH, None, {"Authorization": f"Bearer {token}"}
        )
        one_line_4xx(status, text)
        assert status == 401


def test_a_link_token_is_no_livekit_credential(livekit_server: ServerInfo) -> None:
    token = links.link_token(livekit_server.api_key, livekit_server.api_secret, "link-1")
    verifier = api.TokenVerifier(livekit_server.api_key, livekit_server.api_secret)
    with pytest.raises(Exception):  # noqa: B017 (the SDK raises bare Exceptions)
        verifier.verify(token)


def test_a_link_across_machines_without_tls_is_refused() -> None:
    assert links.needs_tls("http://10.0.0.5:8082")
    assert links.needs_tls("ws://watchdog.example:8082")
    assert not links.needs_tls("https://watchdog.example")
    assert not links.needs_tls("http://127.0.0.1:8082")
    assert not links.needs_tls("http://localhost:8082")


async def test_garbage_on_a_link_is_ignored_and_the_link_stays(
    livekit_server: ServerInfo, watchdog: tuple[Watchdog, str]
) -> None:
    dog, url = watchdog
    token = links.link_token(livekit_server.api_key, livekit_server.api_secret, "link-g")
    lost_before = dog.links.lost_workers
    job = {"job_id": "AJ_1", "room": "ep-room", "identity": "agent-ep-room"}
    garbage: list[str] = [
        DEEP,
        "not json",
        json.dumps({"type": "shutdown-everything"}),
        json.dumps({"type": "job_started", "job": job}),  # before its hello
        json.dumps({"type": "hello", "link": "another-link", "jobs": []}),
        json.dumps({"type": "hello", "link": "link-g", "jobs": [{"job_id": 1}]}),
        json.dumps({"type": "hello", "link": "link-g", "jobs": "all"}),
        json.dumps({"type": "hello", "link": "link-g", "worker": "w" * 10_000, "jobs": []}),
    ]
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.ws_connect(url + links.LINK_PATH, headers=headers) as ws:
            for message in garbage:
                await ws.send_str(message)
            await ws.send_str(links.hello("w-1", "", [], link="link-g"))

            async def linked() -> bool:
                return any(link.worker == "w-1" for link in dog.links._open.values())

            await eventually(linked, timeout=5, what="the valid hello after the garbage")
            assert not ws.closed
    await asyncio.sleep(0.1)
    assert dog.links.lost_workers == lost_before  # it had no jobs: nothing to replace


# --- the parsers, against anything ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
leave_fields = st.fixed_dictionaries(
    {"room": st.text(max_size=300), "identity": st.text(max_size=300), "leave_key": st.text()}
)
SETTINGS = load_settings(livekit_api_key="k", livekit_api_secret="s" * 40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, leave_fields))
def test_a_leave_beacon_is_accepted_or_refused_never_anything_else(body: Any) -> None:
    try:
        leave_from_body(body, SETTINGS, time.time())
    except BadRequest:
        pass


def test_a_genuine_leave_key_is_accepted_and_a_tampered_one_refused() -> None:
    key = leave_key(SETTINGS, "ep-r", "u", int(time.time()) + 60)
    assert leave_from_body(
        {"room": "ep-r", "identity": "u", "leave_key": key}, SETTINGS, time.time()
    )
    with pytest.raises(BadRequest):
        leave_from_body({"room": "ep-r", "identity": "v", "leave_key": key}, SETTINGS, time.time())


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), json_values.map(json.dumps)))
def test_a_link_message_is_decoded_or_refused_never_anything_else(text: str) -> None:
    try:
        message = links.decode(text)
    except MalformedLinkMessage:
        return
    if message["type"] != links.HELLO:
        try:
            JobRecord.from_dict(message.get("job"))
        except MalformedLinkMessage:
            pass


async def test_a_link_that_names_a_person_as_its_agent_gets_nobody_removed_and_nothing_sent(
    livekit_server: ServerInfo, watchdog: tuple[Watchdog, str]
) -> None:
    dog, url = watchdog
    room = f"ep-{uuid.uuid4().hex[:8]}"
    token = links.link_token(livekit_server.api_key, livekit_server.api_secret, "link-liar")
    lying = JobRecord("AJ_lie", room, "user-ep", agent_name="evil-agent", metadata="{}")
    lost_before = dog.links.lost_workers
    async with participant(livekit_server, room, "user-ep"):
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.ws_connect(url + links.LINK_PATH, headers=headers) as ws:
                await ws.send_str(links.hello("w-liar", "evil-agent", [lying], link="link-liar"))
                await eventually(
                    lambda: asyncio.sleep(0, "user-ep" in dog.links.vouched(room)),
                    what="the link's word",
                )
        # the socket closed: the watchdog takes it for a death, and checks the link's word
        await eventually(
            lambda: asyncio.sleep(0, dog.links.lost_workers > lost_before), what="the loss"
        )
        async with RoomManager(settings=dog.settings) as manager:
            assert "user-ep" in {p.identity for p in await manager.list_participants(room)}
            names = [d.agent_name for d in await manager.list_dispatches(room)]
        assert "evil-agent" not in names
