"""The page's web server: the page, livekit-client, the settings, one fresh room per token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from livekit import api

from room_recovery.agent.hook import person_from_metadata
from room_recovery.core.errors import ConfigurationError, ServerUnreachableError
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.agent_state import AGENT_STATE_ATTRIBUTE, AGENT_STATES
from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE
from room_recovery.protocol.messages import AGENT_SELECTION, ROOM_CLEANUP
from room_recovery.protocol.page import page_protocol
from room_recovery.protocol.room_status import (
    RECOVERY_WAIT,
    ROOM_STATUS_KEY,
    STATUS_FAILED,
    STATUS_RECOVERING,
)
from room_recovery.web import create_app, header_secret, leaves, running
from room_recovery.web.access import ANSWER_WITHIN, LiveKitProbe
from room_recovery.web.limits import (
    EVICT_PER_REQUEST,
    MAX_CLIENTS,
    Refused,
    TokenBook,
    TokenLimits,
    client_key,
)
from room_recovery.web.policy import (
    AgentChoice,
    Forbidden,
    PageConfig,
    leave_from_body,
    mint_grant,
    parse_agents,
)
from tests.support.livekit import ServerInfo, eventually, participant

SECRET = "a-long-test-secret-of-more-than-32-bytes!"
STATIC = Path(__file__).resolve().parents[1] / "src" / "room_recovery" / "web" / "static"


def settings_for_tests(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "livekit_url": "ws://127.0.0.1:7880",
        "livekit_api_key": "pagekey",
        "livekit_api_secret": SECRET,
        "room_prefix": "voice-",
    }
    return load_settings(**(values | overrides))


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """The web server on a free port with two agents, and an HTTP client for it."""
    app = create_app(
        settings_for_tests(),
        ["demo-agent", AgentChoice("helper", "The Helper")],
        PageConfig(join_timeout=2, max_retries=4, retry_step=0.5),
    )
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        yield url, client


@dataclass(frozen=True)
class Reply:
    """A response, read and released."""

    status: int
    content_type: str
    text: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


async def call(client: aiohttp.ClientSession, method: str, path: str, **options: Any) -> Reply:
    async with client.request(method, path, **options) as response:
        text = await response.text()
        return Reply(response.status, response.content_type, text, dict(response.headers))


async def get(client: aiohttp.ClientSession, path: str) -> Reply:
    return await call(client, "GET", path)


async def post_token(client: aiohttp.ClientSession, body: object, **options: Any) -> Reply:
    return await call(client, "POST", "/api/token", json=body, **options)


# --- the token -------------------------------------------------------------------------


async def test_a_token_names_a_fresh_room_within_the_prefix_and_dispatches_the_agent(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    response = await post_token(client, {"agent": "helper"})
    assert response.status == 200
    grant = response.json()
    assert set(grant) == {
        "url",
        "token",
        "room",
        "identity",
        "expires_in",
        "leave_key",
        "outcome_key",
    }
    assert grant["url"] == "ws://127.0.0.1:7880"
    assert grant["room"].startswith("voice-helper-")
    assert grant["identity"].startswith("user-")

    claims = api.TokenVerifier("pagekey", SECRET).verify(grant["token"])
    assert claims.identity == grant["identity"]
    assert claims.video is not None
    assert claims.video.room_join and claims.video.room == grant["room"]
    assert not claims.video.room_admin and not claims.video.room_create
    assert claims.room_config is not None
    [dispatch] = claims.room_config.agents
    assert dispatch.agent_name == "helper"
    # the agent's pre-join cleanup keeps whoever the dispatch metadata names
    assert person_from_metadata(dispatch.metadata) == grant["identity"]


async def test_every_token_is_for_a_new_room_and_a_new_person(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    grants = [(await post_token(client, {"agent": "demo-agent"})).json() for _ in range(3)]
    assert len({g["room"] for g in grants}) == 3
    assert len({g["identity"] for g in grants}) == 3


async def test_the_token_is_short_lived_and_the_secret_never_leaves_the_server(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    response = await post_token(client, {"agent": "demo-agent"})
    text = response.text
    assert SECRET not in text
    grant = json.loads(text)
    payload = jwt.decode(grant["token"], options={"verify_signature": False})
    assert payload["exp"] - time.time() == pytest.approx(600, abs=5)
    assert grant["expires_in"] == 600
    assert response.headers["Cache-Control"] == "no-store"
    config = (await get(client, "/api/config")).text
    assert SECRET not in config and "pagekey" not in config


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"agent": "nobody"}, "unknown agent 'nobody'; choose one of: demo-agent, helper"),
        ({"agent": ""}, '"agent" must name an agent'),
        ({"agent": 7}, '"agent" must name an agent'),
        ({}, '"agent" must name an agent'),
        (["demo-agent"], "the body must be a JSON object"),
    ],
)
async def test_a_bad_token_request_gets_400_saying_what_is_wrong(
    site: tuple[str, aiohttp.ClientSession], body: object, message: str
) -> None:
    _, client = site
    response = await post_token(client, body)
    assert response.status == 400
    assert message in (response.json())["error"]


async def test_a_body_that_is_not_json_gets_400(site: tuple[str, aiohttp.ClientSession]) -> None:
    _, client = site
    response = await call(
        client, "POST", "/api/token", data="{agent", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "not valid JSON" in (response.json())["error"]
    response = await call(client, "POST", "/api/token", data="agent=demo-agent")
    assert response.status == 400
    assert "send JSON" in (response.json())["error"]


async def test_an_oversized_body_or_a_wrong_method_gets_a_json_error(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    response = await post_token(client, {"agent": "x" * 10_000})
    assert response.status == 413
    assert "error" in response.json()
    response = await get(client, "/api/token")
    assert response.status == 405
    assert "error" in response.json()


# --- the page and its files ------------------------------------------------------------


async def test_the_config_gives_the_page_its_timing_and_agents(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    config = (await get(client, "/api/config")).json()
    assert config == {
        "join_timeout": 2,
        "max_retries": 4,
        "retry_step": 0.5,
        "agents": [
            {"name": "demo-agent", "label": "demo-agent", "automatic": False},
            {"name": "helper", "label": "The Helper", "automatic": False},
        ],
        "protocol": page_protocol(),
    }


async def test_the_config_gives_the_page_the_protocols_names_from_python(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    protocol = (await get(client, "/api/config")).json()["protocol"]
    assert protocol["messages"]["room_cleanup"] == ROOM_CLEANUP
    assert protocol["messages"]["agent_selection"] == AGENT_SELECTION
    assert protocol["room_status"] == {
        "key": ROOM_STATUS_KEY,
        "failed": STATUS_FAILED,
        "recovering": STATUS_RECOVERING,
        "recovery_wait": RECOVERY_WAIT,
    }
    assert protocol["attributes"] == {
        "heartbeat": HEARTBEAT_ATTRIBUTE,
        "agent_state": AGENT_STATE_ATTRIBUTE,
        "agent_states": list(AGENT_STATES),
    }


def test_the_pages_scripts_write_none_of_the_protocols_names_themselves() -> None:
    # One definition, in Python: a name changed there cannot leave the page behind.
    names = [
        ROOM_CLEANUP,
        AGENT_SELECTION,
        ROOM_STATUS_KEY,
        HEARTBEAT_ATTRIBUTE,
        STATUS_RECOVERING,
        AGENT_STATE_ATTRIBUTE,
    ]
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        for name in names:
            for quoted in (f"'{name}'", f'"{name}"', f".{name}?", f".{name})"):
                assert quoted not in text, f"{script.name} writes {quoted} itself"


@pytest.mark.parametrize("path", ["/", "/voice-agent-selector.html"])
async def test_the_page_is_served_under_its_own_and_the_specs_name(
    site: tuple[str, aiohttp.ClientSession], path: str
) -> None:
    _, client = site
    response = await get(client, path)
    assert response.status == 200
    assert response.content_type == "text/html"
    text = response.text
    assert 'src="/static/app.js"' in text and 'role="status"' in text


async def test_the_page_may_talk_only_to_itself_and_the_livekit_server(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    policy = (await get(client, "/")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:7880 http://127.0.0.1:7880"
    assert directives["frame-ancestors"] == "'none'"
    for path in ("/", "/static/app.js", "/api/config", "/nothing-here"):
        headers = (await get(client, path)).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path


async def test_the_script_and_livekit_client_are_served_as_javascript(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site
    scripts = ("/static/app.js", "/static/protocol.js", "/static/problems.js")
    for path in (*scripts, "/vendor/livekit-client.esm.mjs"):
        response = await get(client, path)
        assert response.status == 200, path
        assert response.content_type == "text/javascript", path
    script = (await get(client, "/static/app.js")).text
    assert "from '/vendor/livekit-client.esm.mjs'" in script
    assert (await get(client, "/static/style.css")).content_type == "text/css"


@pytest.mark.parametrize(
    "path", ["/static/missing.js", "/static/..%2Fweb.py", "/vendor/package.json", "/static/.x"]
)
async def test_only_the_pages_own_files_are_served(
    site: tuple[str, aiohttp.ClientSession], path: str
) -> None:
    _, client = site
    response = await get(client, path)
    assert response.status == 404


async def test_a_missing_livekit_client_is_a_clear_500(tmp_path: Path) -> None:
    app = create_app(settings_for_tests(), node_modules=tmp_path / "node_modules")
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        response = await get(client, "/vendor/livekit-client.esm.mjs")
        assert response.status == 500
        assert "run ./setup.sh" in response.text


async def test_the_health_check_answers_503_and_why_when_livekit_does_not_answer(
    site: tuple[str, aiohttp.ClientSession],
) -> None:
    _, client = site  # its LIVEKIT_URL points at a port where nothing accepts its key
    response = await get(client, "/healthz")
    assert response.status == 503
    body = response.json()
    assert body["status"] == "failing"
    assert "ws://127.0.0.1:7880" in body["problems"][0]


def test_livekit_client_is_pinned_exactly_in_package_json() -> None:
    root = Path(__file__).resolve().parents[1]
    package = json.loads((root / "package.json").read_text())
    version = package["dependencies"]["livekit-client"]
    assert version[0].isdigit(), f"pin an exact version, not {version!r}"
    lock = json.loads((root / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/livekit-client"]["version"] == version


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "no agent to choose from"),
        (["demo-agent", "demo-agent"], "listed twice"),
        (["bad name"], "agent name 'bad name' is invalid"),
        (["../x"], "is invalid"),
    ],
)
def test_bad_agent_lists_are_refused(specs: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_agents(specs)


def test_agents_can_carry_a_label() -> None:
    assert parse_agents(["demo-agent", "helper=The Helper"]) == (
        AgentChoice("demo-agent"),
        AgentChoice("helper", "The Helper"),
    )


@pytest.mark.parametrize(
    "options",
    [{"join_timeout": 0}, {"max_retries": -1}, {"retry_step": -1}, {"token_ttl": 1}],
)
def test_out_of_range_page_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="out of range"):
        PageConfig(**options)  # type: ignore[arg-type]


def test_an_automatic_agents_token_names_no_agent_so_livekits_automatic_dispatch_applies() -> None:
    settings = settings_for_tests(room_prefix="voice-")
    [letta] = parse_agents(["auto:letta=Letta"])
    assert letta == AgentChoice("letta", "Letta", automatic=True)
    grant = mint_grant(settings, letta)
    assert grant.room.startswith("voice-letta-")
    claims = api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret).verify(
        grant.token
    )
    # a room with an explicit dispatch gets no automatic one: the token must name none
    assert claims.room_config is None or not claims.room_config.agents


def test_the_page_defaults_are_the_specs() -> None:
    assert PageConfig().to_dict() == {"join_timeout": 15.0, "max_retries": 3, "retry_step": 1.0}


def test_a_room_name_too_long_for_livekit_is_refused_at_start() -> None:
    settings = settings_for_tests(room_prefix="p" * 250)
    with pytest.raises(ConfigurationError, match="shorten ROOM_PREFIX"):
        create_app(settings, ["demo-agent"])
    with pytest.raises(ConfigurationError, match="shorten ROOM_PREFIX"):
        mint_grant(settings, AgentChoice("demo-agent"))


# --- the leave beacon ------------------------------------------------------------------


@pytest.fixture
async def live_site(livekit_server: ServerInfo) -> AsyncIterator[aiohttp.ClientSession]:
    """The web server for the session's LiveKit server, and an HTTP client for it."""
    settings = load_settings(
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
        room_prefix="leave-",
    )
    app = create_app(settings, ["demo-agent"])
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        yield client


async def leave(client: aiohttp.ClientSession, grant: dict[str, Any], **changes: str) -> Reply:
    body = {key: grant[key] for key in ("room", "identity", "leave_key")} | changes
    return await call(client, "POST", "/api/leave", json=body)


async def test_a_closed_tabs_beacon_deletes_the_room_it_was_alone_in(
    live_site: aiohttp.ClientSession, livekit_server: ServerInfo, manager: RoomManager
) -> None:
    grant = (await post_token(live_site, {"agent": "demo-agent"})).json()
    async with participant(livekit_server, grant["room"], grant["identity"]):
        assert await manager.get_room_info(grant["room"]) is not None
        response = await leave(live_site, grant)
    assert (response.status, response.json()) == (200, {"deleted": True})
    assert await manager.get_room_info(grant["room"]) is None


async def test_a_beacon_leaves_a_room_with_someone_else_in_it_alone(
    live_site: aiohttp.ClientSession, livekit_server: ServerInfo, manager: RoomManager
) -> None:
    grant = (await post_token(live_site, {"agent": "demo-agent"})).json()
    async with participant(livekit_server, grant["room"], "someone-else"):
        response = await leave(live_site, grant)
        assert (response.status, response.json()) == (200, {"deleted": False})
        assert await manager.get_room_info(grant["room"]) is not None


async def test_a_beacon_with_a_key_for_another_room_is_forbidden(
    live_site: aiohttp.ClientSession,
) -> None:
    grant = (await post_token(live_site, {"agent": "demo-agent"})).json()
    other = (await post_token(live_site, {"agent": "demo-agent"})).json()
    response = await leave(live_site, grant, room=other["room"])
    assert response.status == 403
    assert "not given for that room" in response.json()["error"]
    response = await leave(live_site, grant, leave_key="")
    assert response.status == 400


async def test_a_leave_livekit_could_not_take_is_answered_502_and_tried_again_until_it_is(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the beacon is sent once, as the tab closes: a node restarting then must not leave the
    # room with its person listed and its agent in it until the stale cleanup
    answers: list[bool | Exception] = [ServerUnreachableError("ws://lk", "node restarting"), True]
    asked: list[tuple[str, str]] = []

    async def delete(_: Settings, room: str, identity: str) -> bool:
        asked.append((room, identity))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    caplog.set_level(logging.INFO, logger=leaves.__name__)
    monkeypatch.setattr(leaves, "delete_if_left_alone", delete)
    monkeypatch.setattr(leaves, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    app = create_app(settings_for_tests(room_prefix="leave-"), ["demo-agent"])
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        grant = (await post_token(client, {"agent": "demo-agent"})).json()
        response = await leave(client, grant)
        assert response.status == 502 and response.json()["retrying"] is True
        await wait_for_log(caplog, "deleted room")
    assert asked == [(grant["room"], grant["identity"])] * 2


async def test_a_leave_tried_again_gives_up_with_one_line_and_stops_with_the_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unreachable(*_: object) -> bool:
        raise ServerUnreachableError("ws://lk", "LiveKit is down")

    caplog.set_level(logging.INFO, logger=leaves.__name__)
    monkeypatch.setattr(leaves, "delete_if_left_alone", unreachable)
    monkeypatch.setattr(leaves, "RETRY_DELAYS", (0.01, 0.01))
    retries = leaves.LeaveRetries(settings_for_tests())
    async with retries.running():
        assert retries.keep("leave-1", "user-1")
        await wait_for_log(caplog, "Gave up cleaning up room leave-1")
        monkeypatch.setattr(leaves, "RETRY_DELAYS", (60.0,))
        assert retries.keep("leave-2", "user-2")  # still waiting when the server stops
    assert "leave-2" not in caplog.text  # cancelled, never half-done


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    await eventually(lambda: asyncio.sleep(0, text in caplog.text), timeout=5, what=text)


def test_a_leave_key_expires_with_its_token_and_is_no_hmac_of_the_raw_secret() -> None:
    settings = settings_for_tests()
    grant = mint_grant(settings, AgentChoice("demo-agent"), ttl=600, now=1_000_000)
    body = {"room": grant.room, "identity": grant.identity, "leave_key": grant.leave_key}
    assert leave_from_body(body, settings, now=1_000_600) == (grant.room, grant.identity)
    with pytest.raises(Forbidden, match="expired"):
        leave_from_body(body, settings, now=1_000_601)
    # the old form, an HMAC of room and identity with the API secret itself, is refused
    message = f"room-recovery leave\n{grant.room}\n{grant.identity}".encode()
    raw = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    with pytest.raises(Forbidden):
        leave_from_body(body | {"leave_key": raw}, settings, now=1_000_000)
    # and so is a key whose expiry was moved later
    forged = "2000000." + grant.leave_key.partition(".")[2]
    with pytest.raises(Forbidden, match="not given"):
        leave_from_body(body | {"leave_key": forged}, settings, now=1_000_000)


async def test_the_health_check_answers_ok_while_livekit_answers(
    live_site: aiohttp.ClientSession,
) -> None:
    response = await get(live_site, "/healthz")
    assert response.status == 200
    assert response.json() == {"status": "ok", "problems": []}


# --- bounds on /api/token ------------------------------------------------------------------


def test_a_client_gets_a_burst_of_tokens_then_one_per_refill() -> None:
    book = TokenBook(TokenLimits(per_minute=60, burst=2, open_rooms=None), room_lifetime=600)
    book.check_rate("1.2.3.4", 0)
    book.check_rate("1.2.3.4", 0)
    with pytest.raises(Refused, match="at most 60 a minute") as refused:
        book.check_rate("1.2.3.4", 0)
    assert refused.value.retry_after == 1
    book.check_rate("5.6.7.8", 0)  # another client has its own bucket
    book.check_rate("1.2.3.4", 1.0)  # one second refills one token


def test_open_rooms_are_counted_only_at_the_cap_and_gone_ones_are_forgotten() -> None:
    book = TokenBook(TokenLimits(per_minute=None, open_rooms=2), room_lifetime=600)
    assert book.rooms_to_verify("c", 0) is None
    book.record("c", "voice-a", 0)
    book.record("c", "voice-b", 100)
    # at the cap: the room past its young age is asked about, the young one counts anyway
    assert book.rooms_to_verify("c", 110) == ["voice-a"]
    with pytest.raises(Refused, match="already has 2 rooms open"):
        book.check_rooms("c", {"voice-a"}, 110)
    book.check_rooms("c", set(), 110)  # voice-a is gone: under the cap again
    assert book.rooms_to_verify("c", 110) is None
    book.record("c", "voice-c", 110)
    # however long ago they were minted, rooms LiveKit still lists keep counting
    assert book.rooms_to_verify("c", 100_000) == ["voice-b", "voice-c"]
    with pytest.raises(Refused, match="already has 2 rooms open"):
        book.check_rooms("c", {"voice-b", "voice-c"}, 100_000)


def test_the_page_server_caps_the_rooms_open_for_everyone_together() -> None:
    book = TokenBook(TokenLimits(per_minute=None, open_rooms=None, total_rooms=3))
    for number in range(3):
        assert book.rooms_to_verify(f"client-{number}", 0) is None
        book.record(f"client-{number}", f"voice-{number}", 0)
    assert book.rooms_to_verify("newcomer", 100) == ["voice-0", "voice-1", "voice-2"]
    with pytest.raises(Refused, match="this page server has 3 rooms open"):
        book.check_rooms("newcomer", {"voice-0", "voice-1", "voice-2"}, 100, asked=["voice-0"])
    # one of them ended: the newcomer gets its room, nobody else's count changed
    book.check_rooms("newcomer", {"voice-0", "voice-2"}, 100, asked=["voice-0", "voice-1"])
    assert book.rooms_to_verify("client-0", 100) is None


def test_an_ipv6_host_counts_as_its_slash_64_and_a_mapped_ipv4_as_itself() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::7")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("") == "unknown"


def test_the_clients_remembered_are_bounded_and_forgotten_a_few_at_a_time() -> None:
    book = TokenBook(TokenLimits(per_minute=60, open_rooms=2))
    book.record("holder", "voice-kept", 0)  # a client with an open room is never forgotten
    looked: list[int] = []
    evict = book._evict

    def counting_evict() -> None:
        before = len(book._clients)
        evict()
        looked.append(before - len(book._clients))

    book._evict = counting_evict  # type: ignore[method-assign]
    for number in range(MAX_CLIENTS * 3):
        book.check_rate(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}", 1.0)
    assert len(book._clients) <= MAX_CLIENTS
    assert max(looked) <= EVICT_PER_REQUEST  # a bounded amount of work per request
    assert book.rooms_to_verify("holder", 100) is None and "holder" in book._clients


async def test_a_client_over_its_bounds_gets_a_clear_429(livekit_server: ServerInfo) -> None:
    settings = load_settings(
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
        room_prefix="bound-",
    )
    app = create_app(settings, ["demo-agent"], limits=TokenLimits(per_minute=None, open_rooms=2))
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        for _ in range(2):
            assert (await post_token(client, {"agent": "demo-agent"})).status == 200
        refused = await post_token(client, {"agent": "demo-agent"})
    assert refused.status == 429
    assert "rooms open" in refused.json()["error"]
    assert refused.headers["Retry-After"] == "30"


async def test_a_deployment_can_require_its_own_sign_in_before_a_token() -> None:
    app = create_app(settings_for_tests(), ["demo-agent"], authorize=header_secret("X-App", "s"))
    async with running(app, "127.0.0.1", 0) as url, aiohttp.ClientSession(url) as client:
        anonymous = await post_token(client, {"agent": "demo-agent"})
        wrong = await post_token(client, {"agent": "demo-agent"}, headers={"X-App": "t"})
        signed_in = await post_token(client, {"agent": "demo-agent"}, headers={"X-App": "s"})
    assert anonymous.status == wrong.status == 401
    assert "sign in first" in anonymous.json()["error"]
    assert signed_in.status == 200


def test_a_sign_in_header_without_its_value_is_a_clear_error() -> None:
    settings = settings_for_tests(room_recovery_token_auth_header="X-App")
    with pytest.raises(ConfigurationError, match="ROOM_RECOVERY_TOKEN_AUTH="):
        create_app(settings, ["demo-agent"])


async def test_health_answers_within_a_second_while_livekit_hangs() -> None:
    # a LiveKit that takes connections and never answers (its Redis stopped, say): the
    # page server says "failing" at once, never so slowly that its supervisor restarts it
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    probe = LiveKitProbe(load_settings(livekit_url=f"ws://127.0.0.1:{port}"))
    try:
        started = time.monotonic()
        first = await probe.problem()
        assert time.monotonic() - started < ANSWER_WITHIN + 0.5
        assert first is not None and "has not answered the health probe within 1 s" in first
        await asyncio.sleep(2.5)  # the probe's own call gives up after 2 s
        later = await probe.problem()
        assert later is not None and "no answer within 2 s" in later
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
