"""The page in headless Chromium against a real LiveKit server and real agent workers.

Timeouts are short here (the page takes ?join_timeout= and ?retry_step= for tests); each
test leaves a screenshot of its end state in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import api
from playwright.async_api import Browser, Locator, Page
from playwright.async_api import Error as PlaywrightError
from prometheus_client.parser import text_string_to_metric_families

from room_recovery.core.manager import RoomManager
from room_recovery.core.views import participant_view
from room_recovery.rules.model import Kind
from room_recovery.system.livekit_server import free_port
from room_recovery.web import create_app, running
from tests.support.browser import (
    ARTIFACTS,
    PHONE,
    OpenPage,
    artifact_name,
    chromium,
    page_server,
    pages_of,
    state,
    wait_for,
    wait_status,
    web_settings,
)
from tests.support.livekit import ServerInfo, eventually
from tests.support.worker import WorkerProcess

SPEC_JOIN_WITHIN = 5.0  # "Agent joins room within 5 seconds of client connection"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


AGENT = unique("page-agent")


@pytest.fixture
async def open_page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[OpenPage]:
    """`await open_page(url)`: a loaded page in a fresh context, screenshotted after the test."""
    async with pages_of(browser, artifact_name(request.node.name)) as opener:
        yield opener


@pytest.fixture
async def refusing_open_page(request: pytest.FixtureRequest) -> AsyncIterator[OpenPage]:
    """Like `open_page`, in a Chromium that refuses the microphone, as a person who says no."""
    async with chromium(allow_media=False) as refusing:
        async with pages_of(refusing, artifact_name(request.node.name)) as opener:
            yield opener


@pytest.fixture(scope="module")
async def agent_worker(
    livekit_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """A demo worker registered under a name of its own (`agent_name`), for this module."""
    worker = WorkerProcess.demo(
        livekit_server, AGENT, Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    )
    try:
        await worker.registered()
        yield worker
    finally:
        worker.close()


@pytest.fixture
def agent_name(agent_worker: WorkerProcess) -> str:
    """The name of the module's running demo agent."""
    return AGENT


async def page_for(
    open_page: OpenPage, url: str, agent: str, query: str = "", **options: Any
) -> Page:
    """The page with `agent` chosen and the query's settings (e.g. "join_timeout=2")."""
    return await open_page(f"{url}/?agent={agent}{'&' + query if query else ''}", **options)


async def connect(page: Page) -> float:
    """Press Connect; returns the page's clock (ms) at the press."""
    started: float = await page.evaluate("Date.now()")
    await button(page, "Connect").click()
    return started


async def connected_page(open_page: OpenPage, url: str, agent: str) -> tuple[Page, str]:
    """The page, connected to `agent`; and the name of its room."""
    page = await page_for(open_page, url, agent)
    await connect(page)
    await wait_status(page, "connected", timeout=SPEC_JOIN_WITHIN)
    return page, (await state(page))["room"]


async def sessions_reported(url: str) -> dict[str, float]:
    """The page server's sessions by how they ended, as its /metrics says."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as answer:
        text = await answer.text()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "room_recovery_page_sessions_total"
    }


async def people_and_agents(manager: RoomManager, room: str) -> tuple[list[str], list[str]]:
    views = [participant_view(p) for p in await manager.list_participants(room)]
    people = [v.identity for v in views if v.kind is not Kind.AGENT]
    agents = [v.identity for v in views if v.kind is Kind.AGENT]
    return people, agents


# --- the spec's scenarios --------------------------------------------------------------


async def test_with_the_worker_running_the_agent_joins_within_5_seconds(
    livekit_server: ServerInfo, agent_name: str, open_page: OpenPage, manager: RoomManager
) -> None:
    async with page_server(web_settings(livekit_server), [agent_name]) as url:
        page = await page_for(open_page, url, agent_name)
        await button(page, "Connect").click()
        await wait_status(page, "connected", timeout=SPEC_JOIN_WITHIN)
        await expect_text(page, "#status", "joined")

        session = await state(page)
        [attempt] = session["attempts"]
        assert attempt["outcome"] == "joined"
        assert attempt["endedAt"] - attempt["startedAt"] < SPEC_JOIN_WITHIN * 1000
        assert attempt["room"].startswith(f"page-{agent_name}-")

        # the person publishes their microphone, hears the agent, and told it the choice
        await wait_for(page, "rr.microphone === 'on' && rr.agentAudio", 5, "microphone and audio")
        await wait_for(
            page,
            "[...document.querySelectorAll('#agent-audio audio')]"
            ".some(a => !a.paused && a.currentTime > 0)",
            5,
            "the agent's audio to play",
        )
        await wait_for(
            page, "rr.messages.some(m => m.type === 'agent_selection' && m.ok)", 5, "selection"
        )

        async def mic_on_server() -> bool:
            infos = await manager.list_participants(attempt["room"])
            person = [i for i in infos if i.identity == session["identity"]]
            return bool(person and person[0].tracks)

        await eventually(mic_on_server, timeout=5, what="the microphone track on the server")
        people, agents = await people_and_agents(manager, attempt["room"])
        assert people == [session["identity"]] and len(agents) == 1


async def test_without_a_worker_it_retries_in_three_new_rooms_then_shows_what_to_check(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    nobody = unique("no-worker")
    join_timeout = 1.5
    async with page_server(web_settings(livekit_server), [nobody]) as url:
        # the spec's backoff (1 s, 2 s, 3 s) with a short join timeout
        page = await page_for(open_page, url, nobody, f"join_timeout={join_timeout}")
        await connect(page)
        await wait_status(page, "retrying", timeout=join_timeout + 3)
        await expect_text(page, "#status", "Retrying with a new room in 1 s (retry 1 of 3)")
        await wait_status(page, "failed", timeout=4 * join_timeout + 6 + 6)

        attempts = (await state(page))["attempts"]
        assert [a["outcome"] for a in attempts] == ["timeout"] * 4
        assert [a["retry"] for a in attempts] == [0, 1, 2, 3]
        assert len({a["room"] for a in attempts}) == 4, "each retry must use a new room"
        for attempt in attempts:
            waited = (attempt["endedAt"] - attempt["startedAt"]) / 1000
            assert join_timeout - 0.05 <= waited <= join_timeout + 0.5
        gaps = [(b["startedAt"] - a["endedAt"]) / 1000 for a, b in itertools.pairwise(attempts)]
        for gap, expected in zip(gaps, [1, 2, 3], strict=True):
            assert expected - 0.05 <= gap <= expected + 0.75, gaps

        alert = page.get_by_role("alert")
        await alert.wait_for()
        text = await alert.inner_text()
        assert "Failed to connect after 4 attempts" in text
        for command in (
            "room-recovery status",
            "room-recovery doctor --probe",
            "room-recovery logs agent",
        ):
            assert command in text
        assert await button(page, "Connect").is_enabled()

        # the page told its server how the session went: nobody came, it explained
        await wait_for(page, "rr.reports[0]?.status === 204", 5, "the session's report")
        report = (await state(page))["reports"]
        assert report == [
            {"outcome": "explained", "time_to_agent": None, "retries": 3, "recoveries": 0}
            | {"status": 204}
        ]
        assert (await sessions_reported(url))["explained"] == 1


async def test_a_worker_started_during_the_retries_is_joined_by_the_next_attempt(
    livekit_server: ServerInfo,
    open_page: OpenPage,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    late = unique("late-agent")
    async with page_server(web_settings(livekit_server), [late]) as url:
        page = await page_for(open_page, url, late, "join_timeout=3&retry_step=0.5&max_retries=8")
        await connect(page)
        await wait_for(page, "rr.attempts[0]?.outcome === 'timeout'", 6, "a first failure")

        worker = WorkerProcess.demo(livekit_server, late, tmp_path / "late.log")
        workers.append(worker)
        await worker.registered()
        registered_at: float = await page.evaluate("Date.now()")

        await wait_status(page, "connected", timeout=3 + 0.5 * 8 + SPEC_JOIN_WITHIN)
        attempts = (await state(page))["attempts"]
        joined = [i for i, a in enumerate(attempts) if a["outcome"] == "joined"]
        assert joined == [len(attempts) - 1]
        assert all(a["outcome"] == "timeout" for a in attempts[:-1])
        # the attempt running when the worker registered, or the next one, connects
        started_after = [i for i, a in enumerate(attempts) if a["startedAt"] >= registered_at]
        assert not started_after or joined[0] == started_after[0]
        assert len(started_after) <= 1


async def test_disconnect_says_goodbye_the_agent_leaves_and_the_room_is_deleted(
    livekit_server: ServerInfo,
    agent_name: str,
    agent_worker: WorkerProcess,
    open_page: OpenPage,
    manager: RoomManager,
) -> None:
    async with page_server(web_settings(livekit_server), [agent_name]) as url:
        page, room = await connected_page(open_page, url, agent_name)
        await wait_for(page, "rr.microphone === 'on'", 5, "the microphone")

        await button(page, "Disconnect").click()
        await wait_status(page, "disconnected", timeout=5)
        session = await state(page)
        assert {"type": "room_cleanup", "room": room, "ok": True} in session["messages"]
        assert session["attempts"][-1]["detail"].endswith("then you disconnected")
        assert session["agentLeftFirst"] is True, "the agent should leave before the page"

        async def room_gone() -> bool:
            return await manager.get_room_info(room) is None

        # the agent heard the goodbye (not its grace period running out) and left
        await agent_worker.wait_for_log("asked to clean up room", room, timeout=5)
        await eventually(room_gone, timeout=10, what=f"room {room} to be deleted")
        assert await button(page, "Connect").is_enabled()

        # the session's one report: an agent came, within the spec's time, no retry
        await wait_for(page, "rr.reports[0]?.status === 204", 5, "the session's report")
        [report] = (await state(page))["reports"]
        assert report["outcome"] == "agent" and report["retries"] == 0
        assert 0 < report["time_to_agent"] < SPEC_JOIN_WITHIN
        assert await sessions_reported(url) == {"agent": 1, "explained": 0, "left": 0}


async def test_after_a_tab_closed_without_disconnect_a_new_page_connects_at_once(
    livekit_server: ServerInfo, agent_name: str, open_page: OpenPage, manager: RoomManager
) -> None:
    async with page_server(web_settings(livekit_server), [agent_name]) as url:
        first = await page_for(open_page, url, agent_name)
        await connect(first)
        await wait_status(first, "connected", timeout=SPEC_JOIN_WITHIN)
        old_room = (await state(first))["room"]
        await first.screenshot(path=ARTIFACTS / "test_after_a_tab_closed_before_closing.png")
        await first.close(run_before_unload=True)  # no Disconnect: the person closes the tab

        second = await page_for(open_page, url, agent_name)
        took = await _connect_and_time(second)
        assert took < SPEC_JOIN_WITHIN
        new_room = (await state(second))["room"]
        assert new_room != old_room

        async def old_room_gone() -> bool:
            return await manager.get_room_info(old_room) is None

        # the page's goodbye and beacon end it at once, not the agent's 5 s grace period
        try:
            await eventually(old_room_gone, timeout=3, what=f"the old room {old_room} to go")
        except AssertionError as exc:  # who kept it: the person (no beacon?) or the agent
            left = [(p.identity, p.state) for p in await manager.list_participants(old_room)]
            raise AssertionError(f"{exc}; still in it: {left}") from None

        # the closing tab's beacon reported its session too
        async def first_reported() -> bool:
            return (await sessions_reported(url)).get("agent") == 1

        await eventually(first_reported, timeout=5, what="the closed tab's report")


async def test_a_crashed_tab_says_nothing_yet_the_agent_leaves_and_the_room_goes(
    livekit_server: ServerInfo,
    agent_name: str,
    agent_worker: WorkerProcess,
    open_page: OpenPage,
    manager: RoomManager,
) -> None:
    async with page_server(web_settings(livekit_server), [agent_name]) as url:
        page, room = await connected_page(open_page, url, agent_name)
        await page.screenshot(path=ARTIFACTS / "test_a_crashed_tab_before_the_crash.png")

        crashed = asyncio.Event()
        page.on("crash", lambda _: crashed.set())
        with contextlib.suppress(PlaywrightError):  # the renderer dies: no unload, no beacon
            await page.goto("chrome://crash", timeout=5000)
        await asyncio.wait_for(crashed.wait(), timeout=10)
        await page.close()

        async def room_gone() -> bool:
            return await manager.get_room_info(room) is None

        # The server drops the silent person (about 20 s); the agent's grace period ends the job.
        await agent_worker.wait_for_log("without saying goodbye", room, timeout=40)
        await eventually(room_gone, timeout=15, what=f"room {room} to be deleted")
        assert "asked to clean up room " + room not in agent_worker.log_text()


async def _connect_and_time(page: Page) -> float:
    started = time.monotonic()
    await button(page, "Connect").click()
    await wait_status(page, "connected", timeout=SPEC_JOIN_WITHIN)
    return time.monotonic() - started


# --- what else can go wrong ------------------------------------------------------------


async def test_a_room_the_watchdog_marks_failed_is_left_at_once_for_a_new_one(
    livekit_server: ServerInfo, open_page: OpenPage, manager: RoomManager
) -> None:
    nobody = unique("no-worker")
    async with page_server(web_settings(livekit_server), [nobody]) as url:
        page = await page_for(open_page, url, nobody, "join_timeout=30&retry_step=0.2")
        await connect(page)
        await wait_for(page, "rr.attempts[0]?.room", 5, "the first room")
        session = await state(page)
        room, person = session["room"], session["identity"]

        async def person_in_room() -> bool:
            people, _ = await people_and_agents(manager, room)
            return person in people

        await eventually(person_in_room, timeout=5, what="the page in its room")
        marked = time.monotonic()
        metadata = '{"room_recovery": {"status": "failed", "reason": "agent ghost"}}'
        async with api.LiveKitAPI(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as lkapi:
            await lkapi.room.update_room_metadata(
                api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
            )
        await wait_for(page, "rr.attempts.length === 2", 3, "a new attempt")
        assert time.monotonic() - marked < 3, "the page must not wait for its join timeout"
        attempts = (await state(page))["attempts"]
        assert attempts[0]["outcome"] == "marked-failed"
        assert "agent ghost" in attempts[0]["detail"]
        assert attempts[1]["room"] != room


async def test_an_unreachable_livekit_server_is_its_own_message(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    settings = web_settings(livekit_server, livekit_url=f"ws://127.0.0.1:{free_port()}")
    async with page_server(settings, ["demo-agent"]) as url:
        page = await page_for(open_page, url, "demo-agent", "join_timeout=20")
        await connect(page)
        await wait_status(page, "error", timeout=15)
        await expect_alert(page, "server-unreachable", "The LiveKit server is unreachable")
        assert len((await state(page))["attempts"]) == 1


async def test_a_page_server_that_went_away_is_its_own_message(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    async with page_server(web_settings(livekit_server), ["demo-agent"]) as url:
        page = await page_for(open_page, url, "demo-agent")
    await connect(page)  # the server is gone now
    await wait_status(page, "error", timeout=5)
    await expect_alert(page, "server-unreachable", "The page's server is not answering")


async def test_a_token_livekit_refuses_is_its_own_message(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    wrong = web_settings(livekit_server, livekit_api_secret="not-the-servers-secret-" * 2)
    async with page_server(wrong, ["demo-agent"]) as url:
        page = await page_for(open_page, url, "demo-agent")
        await connect(page)
        await wait_status(page, "error", timeout=10)
        await expect_alert(page, "token-refused", "LiveKit refused the token")


async def test_a_token_the_page_server_refuses_is_its_own_message(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    settings = web_settings(livekit_server)
    async with page_server(settings, ["old-agent"]) as url:
        page = await page_for(open_page, url, "old-agent")
    # the server comes back on the same port without the agent the page offers
    port = int(url.rsplit(":", 1)[1])
    async with running(create_app(settings, ["new-agent"]), "127.0.0.1", port):
        await connect(page)
        await wait_status(page, "error", timeout=5)
        await expect_alert(page, "token-refused", "The server refused to give a token")
        assert "unknown agent 'old-agent'" in await page.get_by_role("alert").inner_text()


async def test_a_refused_microphone_is_its_own_message(
    livekit_server: ServerInfo, agent_name: str, refusing_open_page: OpenPage
) -> None:
    async with page_server(web_settings(livekit_server), [agent_name]) as url:
        page = await page_for(refusing_open_page, url, agent_name)
        await connect(page)
        await wait_status(page, "connected", timeout=SPEC_JOIN_WITHIN)
        await expect_alert(page, "microphone", "Microphone access was refused")
        await expect_text(page, "#status", "your microphone is off")
        await button(page, "Disconnect").click()
        await wait_status(page, "disconnected", timeout=5)


async def test_the_page_fits_a_phone_and_announces_its_status(
    livekit_server: ServerInfo, open_page: OpenPage
) -> None:
    nobody = unique("no-worker")
    async with page_server(web_settings(livekit_server), [nobody]) as url:
        page = await page_for(
            open_page,
            url,
            nobody,
            "join_timeout=0.5&retry_step=0.1&max_retries=1",
            viewport=PHONE,
        )
        status = page.get_by_role("status")
        assert await status.get_attribute("aria-live") == "polite"
        await connect(page)
        await wait_status(page, "failed", timeout=5)
        await page.get_by_role("alert").wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at phone width ({width} px)"
        for name in ("Connect", "Disconnect"):
            box = await button(page, name).bounding_box()
            assert box is not None and box["x"] + box["width"] <= 375 and box["height"] >= 44


# --- helpers ---------------------------------------------------------------------------


async def expect_text(page: Page, selector: str, text: str) -> None:
    content = await page.locator(selector).inner_text()
    assert text in content, f"{selector} says {content!r}, not {text!r}"


async def expect_alert(page: Page, kind: str, title: str) -> None:
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert title in await alert.inner_text()
    assert (await state(page))["error"] == {"kind": kind, "title": title}


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)
