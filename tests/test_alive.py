"""Before an agent joins, only the provably dead go: the worker's word outweighs a silence.

A pre-join cleanup that would remove an agent on its own judgement (its heartbeat silent, or
it joined before the person now there) first asks the watchdog (`GET /api/alive`), whose
worker links know which job processes run and answer. An agent its worker vouches for stays:
its heartbeat may be frozen by a stall or by a Redis outage (the attribute travels over
LiveKit's bus), and the watchdog itself judges it by the same rule. A watchdog that cannot
say proves no death either. Here over a fake server and the real watchdog app on loopback;
the guide's worker on the real server is in `test_guide_worker.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from room_recovery.agent.monitor import WorkerMonitor
from room_recovery.core.link import ask_alive, ask_alive_all, split_urls
from room_recovery.core.settings import Settings
from room_recovery.protocol import links
from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE, heartbeat_value
from room_recovery.protocol.links import JobRecord
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog import create_app as watchdog_app
from room_recovery.web import running
from tests.support.fake_transport import AGENT, URL, FakeTransport, manager_on
from tests.support.livekit import eventually

ROOM = "voice-1"
KEY, SECRET = "devkey", "a-long-enough-secret-for-these-tests-only"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def settings(watchdog_url: str = "") -> Settings:
    alone: dict[str, Any] = {"_env_file": None, "room_stale_silent": False}
    return Settings(
        livekit_url=URL,
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
        room_prefix="voice-",
        room_recovery_watchdog_url=watchdog_url,
        **alone,
    )


@asynccontextmanager
async def watchdog_vouching(*jobs: JobRecord) -> AsyncIterator[str]:
    """The real watchdog app on loopback, with one worker link that reports `jobs`."""
    dog = Watchdog(settings(), WatchdogOptions(sweep_interval=30))
    async with running(watchdog_app(dog), "127.0.0.1", 0) as url:
        token = links.link_token(KEY, SECRET, "link-1")
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url + links.LINK_PATH, headers=headers) as ws:
                await ws.send_str(links.hello("w-1", "my-agent", list(jobs), link="link-1"))
                await eventually(
                    lambda: _true(dog.links.job_count() == len(jobs)), what="the worker's hello"
                )
                yield url
                dog.links.on_lost = None  # closing this link is the test ending, no death


async def _true(value: bool) -> bool:
    return value


def frozen_agent(fake: FakeTransport, identity: str, silent_for: float = 12.0) -> str:
    """An agent in ROOM whose last heartbeat was sent `silent_for` seconds ago; its sid."""
    beat = {HEARTBEAT_ATTRIBUTE: heartbeat_value(41, time.time() - silent_for)}
    return str(fake.add_participant(ROOM, identity, kind=AGENT, age=60, attributes=beat).sid)


def job(identity: str) -> JobRecord:
    return JobRecord("AJ_" + identity, ROOM, identity, agent_name="my-agent")


async def test_an_agent_its_worker_vouches_for_stays_and_an_unvouched_silent_one_goes() -> None:
    async with watchdog_vouching(job("agent-alive")) as url:
        fake = FakeTransport(settings(url))
        fake.add_participant(ROOM, "user", age=5)  # reconnected after both agents joined
        frozen_agent(fake, "agent-alive")
        ghost = frozen_agent(fake, "agent-ghost")
        report = await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert {(identity, sid) for _, identity, sid in fake.removed} == {("agent-ghost", ghost)}
    assert set(fake.participants[ROOM]) == {"user", "agent-alive"}
    assert report.ok and {k.identity for k in report.kept} == {"user", "agent-alive"}


async def test_a_watchdog_that_cannot_say_proves_no_death() -> None:
    fake = FakeTransport(settings(UNREACHABLE))
    fake.add_participant(ROOM, "user", age=5)
    frozen_agent(fake, "agent-1")
    await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert fake.removed == [] and "agent-1" in fake.participants[ROOM]


async def test_without_a_watchdog_the_heartbeat_is_the_only_word() -> None:
    fake = FakeTransport(settings(""))
    fake.add_participant(ROOM, "user", age=5)
    sid = frozen_agent(fake, "agent-1")
    await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert [(identity, s) for _, identity, s in fake.removed] == [("agent-1", sid)]


async def test_a_fresh_room_costs_no_question() -> None:
    # cost follows trouble: nobody to doubt, nobody asked (the URL would only time out)
    fake = FakeTransport(settings(UNREACHABLE))
    fake.add_participant(ROOM, "user", age=1)
    started = time.perf_counter()
    report = await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert report.ok and fake.removed == []
    assert time.perf_counter() - started < 0.4  # below ask_alive's own 0.5 s bound


async def test_ask_alive_says_whom_the_links_vouch_for_and_none_when_refused() -> None:
    async with watchdog_vouching(job("agent-a"), job("agent-b")) as url:
        assert await ask_alive(url, settings(), ROOM) == {"agent-a", "agent-b"}
        assert await ask_alive(url, settings(), "voice-other") == set()
        foreign = settings().model_copy(update={"livekit_api_secret": "another-secret-" * 3})
        assert await ask_alive(url, foreign, ROOM) is None  # 401: no word is no proof
    assert await ask_alive(UNREACHABLE, settings(), ROOM) is None
    assert await ask_alive("http://10.0.0.5:8082", settings(), ROOM) is None  # clear, off-host


async def test_with_several_watchdogs_an_agent_vouched_for_by_any_of_them_stays() -> None:
    # a watchdog restarted a moment ago (or unreachable) may not hold the worker's link yet:
    # the word of the one that does is enough
    async with watchdog_vouching(job("agent-a")) as one, watchdog_vouching() as fresh:
        listed = f"{fresh}, {UNREACHABLE},{one}/"
        assert await ask_alive_all(split_urls(listed), settings(), ROOM) == {"agent-a"}
        fake = FakeTransport(settings(listed))
        fake.add_participant(ROOM, "user", age=5)
        frozen_agent(fake, "agent-a")
        ghost = frozen_agent(fake, "agent-ghost")
        await manager_on(fake).ensure_clean_room(ROOM, keep="user")
    assert [(identity, sid) for _, identity, sid in fake.removed] == [("agent-ghost", ghost)]
    assert await ask_alive_all((UNREACHABLE, "http://10.0.0.5:8082"), settings(), ROOM) is None


def test_each_watchdog_hears_once_that_the_worker_has_just_registered() -> None:
    # people who waited while no worker was there are sent to it by the leader, which may
    # be any of the watchdogs: each link's next hello says so, once per registration
    server = SimpleNamespace(active_jobs=[], on=lambda *_: None, id="AW_1", _agent_name="a")
    watching = WorkerMonitor(server, watchdog=f"{UNREACHABLE},http://127.0.0.1:10", registered=True)
    assert watching.link is not None and len(watching.link.clients) == 2

    def fresh(link: str) -> bool:
        return bool(json.loads(watching._hello(link))["registered"])

    assert [fresh("link-1"), fresh("link-2"), fresh("link-1")] == [True, True, False]
    watching._registered()  # registered again (LiveKit restarted)
    assert [fresh("link-2"), fresh("link-2"), fresh("link-1")] == [True, False, True]


def test_the_watchdog_url_may_list_several_each_once() -> None:
    assert split_urls("") == split_urls(" , ") == ()
    assert split_urls("http://127.0.0.1:8082/") == ("http://127.0.0.1:8082",)
    listed = "http://127.0.0.1:8082/, https://watch-2.example.com,http://127.0.0.1:8082"
    assert split_urls(listed) == ("http://127.0.0.1:8082", "https://watch-2.example.com")


@pytest.mark.parametrize(
    ("query", "status"), [("", 400), ("?room=", 400), ("?room=" + "x" * 300, 400)]
)
async def test_the_alive_route_answers_bad_input_with_a_4xx_and_one_line(
    query: str, status: int
) -> None:
    async with watchdog_vouching() as url:
        token = links.link_token(KEY, SECRET, "asker")
        async with aiohttp.ClientSession() as http:
            for headers, expected in (
                ({"Authorization": f"Bearer {token}"}, status),
                ({}, 401),
                ({"Authorization": "Bearer forged"}, 401),
            ):
                async with http.get(url + links.ALIVE_PATH + query, headers=headers) as response:
                    text = await response.text()
                    assert response.status == expected, text
                    assert text.strip().count("\n") == 0 and "Traceback" not in text


async def test_the_alive_route_tells_nothing_but_identities() -> None:
    secret_metadata = json.dumps({"person": "user", "note": "private"})
    record = JobRecord("AJ_1", ROOM, "agent-1", agent_name="my-agent", metadata=secret_metadata)
    async with watchdog_vouching(record) as url:
        token = links.link_token(KEY, SECRET, "asker")
        async with aiohttp.ClientSession() as http:
            address = f"{url}{links.ALIVE_PATH}?room={ROOM}"
            async with http.get(address, headers={"Authorization": f"Bearer {token}"}) as answer:
                assert await answer.json() == {"room": ROOM, "alive": ["agent-1"]}
