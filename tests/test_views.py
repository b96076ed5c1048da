"""What people see, in Chromium: the voice page's conversation panel (the agent's state,
mute) and its recovery states, and the watchdog's operations view, against a real server,
a real demo agent worker and a real watchdog.

One scenario, in order, to keep the suite short:
1. a person joins a room without an agent: the operations view lists them as waiting; the
   watchdog dispatches the agent and the view lists that recovery;
2. the page connects: it shows the demo agent's `lk.agent.state` as it greets and listens,
   and its mute button mutes the published track on the server;
3. the agent's job process is SIGKILLed (the worker's own monitor is off, so the watchdog's
   heartbeat is what notices): the page says it is reconnecting the agent and returns to
   connected in the same room, and the operations view lists the recovery;
neither page logs an error or a CSP violation.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from playwright.async_api import Browser, Page

from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import Settings
from room_recovery.rules.watch import WatchPolicy
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog.http import create_app as watchdog_app
from room_recovery.web import running
from tests.support.browser import (
    PHONE,
    artifact_name,
    page_server,
    pages_of,
    state,
    wait_for,
    wait_status,
    web_settings,
)
from tests.support.livekit import ServerInfo, eventually, participant
from tests.support.worker import WorkerProcess, job_processes

PREFIX = "views-"


async def view_shows(page: Page, condition: str, timeout: float, what: str) -> None:
    """Wait until `condition` (JavaScript over the view's last overview, `o`) holds."""
    try:
        await page.wait_for_function(
            f"() => {{ const o = window.opsView && window.opsView.overview; "
            f"return Boolean(o && ({condition})); }}",
            timeout=timeout * 1000,
        )
    except Exception as exc:
        overview = await page.evaluate("JSON.stringify(window.opsView)")
        raise AssertionError(f"the operations view never showed {what}: {overview}") from exc


async def muted_on_server(manager: RoomManager, room: str, identity: str) -> bool | None:
    """Whether the server shows `identity`'s microphone track muted (None: no track)."""
    for info in await manager.list_participants(room):
        if info.identity == identity and info.tracks:
            return bool(info.tracks[0].muted)
    return None


async def test_the_page_and_the_operations_view_show_the_agent_and_its_recovery(
    livekit_server: ServerInfo,
    workers: list[WorkerProcess],
    tmp_path: Path,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    agent = f"views-agent-{uuid.uuid4().hex[:6]}"
    settings: Settings = web_settings(livekit_server, room_prefix=PREFIX)
    worker = WorkerProcess.demo(
        livekit_server, agent, tmp_path / "worker.log", env={"ROOM_RECOVERY_WORKER_MONITOR": "off"}
    )
    workers.append(worker)
    options = WatchdogOptions(
        agent_name=agent, sweep_interval=0.3, watch=WatchPolicy(grace=1.0, dispatch_wait=2.5)
    )
    watchdog = Watchdog(settings, options)
    async with (
        running(watchdog_app(watchdog), "127.0.0.1", 0) as ops_url,
        page_server(settings, [agent]) as page_url,
        pages_of(browser, artifact_name(request.node.name), no_errors=True) as open_page,
        RoomManager(settings=settings) as manager,
    ):
        await worker.registered()
        ops = await open_page(ops_url, ready=False, viewport=PHONE)
        await view_shows(ops, "o.health.status === 'ok'", 10, "a healthy watchdog")

        # 1. a waiting person, listed; the watchdog's dispatch, listed
        waiting_room = f"{PREFIX}wait-{uuid.uuid4().hex[:6]}"
        async with participant(livekit_server, waiting_room, "waiting-person"):
            joined = time.monotonic()
            await view_shows(
                ops,
                f"o.room_list.some(r => r.name === '{waiting_room}' && r.waiting_for !== null"
                " && r.people.includes('waiting-person'))",
                10,
                "the waiting person",
            )
            print(f"the view showed the waiting person {time.monotonic() - joined:.2f} s after")
            row = ops.locator(f"tr[data-room='{waiting_room}']")
            assert await row.get_attribute("data-waiting") == "true"
            assert "waiting-person" in await row.inner_text()
            await view_shows(
                ops,
                f"o.recoveries.some(r => r.room === '{waiting_room}'"
                " && r.cause === 'agent_missing')",
                10,
                "the dispatch for the waiting person",
            )
            assert "agent missing" in await ops.locator("#recoveries").inner_text()

            async def served() -> bool:  # deleted before its agent joined, the room would
                infos = await manager.list_participants(waiting_room)  # be made again by it
                return any(i.kind == api.ParticipantInfo.Kind.AGENT for i in infos)

            await eventually(served, timeout=15, what="the waiting person's agent")
        # its agent's job ends with the room, so the page's agent has the worker's only job
        await manager.delete_room(waiting_room)

        # 2. the page: the agent's state, and mute
        page = await open_page(f"{page_url}/?agent={agent}")
        await page.get_by_role("button", name="Connect", exact=True).click()
        await wait_status(page, "connected", 15)
        await wait_for(
            page,
            "rr.conversation.agentStates.includes('speaking') "
            "&& rr.conversation.agentState === 'listening'",
            20,
            "the agent to greet, then listen",
        )
        seen: dict[str, Any] = (await state(page))["conversation"]
        assert seen["agentStates"][-2:] == ["speaking", "listening"]
        assert seen["levels"]["agent"] > 0, "the agent's voice meter never moved"
        assert "listening" in await page.locator("#agent-state").inner_text()
        room, identity = (await state(page))["room"], (await state(page))["identity"]

        mute = page.get_by_role("button", name="Mute microphone", exact=True)
        await mute.click()
        await page.get_by_role("button", name="Unmute microphone", exact=True).wait_for()
        assert await page.locator("#mute-button").get_attribute("aria-pressed") == "true"

        async def muted() -> bool:
            return await muted_on_server(manager, room, identity) is True

        await eventually(muted, timeout=5, what="the server to show the microphone muted")
        # and back, from the keyboard, as a person who does not use a mouse
        await page.locator("#mute-button").focus()
        await page.keyboard.press("Space")

        async def unmuted() -> bool:
            return await muted_on_server(manager, room, identity) is False

        await eventually(unmuted, timeout=5, what="the server to show the microphone unmuted")

        # 3. the watchdog replaces a dead agent; the page waits for it in its room
        async def one_job() -> bool:
            return len(job_processes(worker, livekit_server.url)) == 1

        await eventually(one_job, timeout=10, what="the page's agent to be the only job")
        [job] = job_processes(worker, livekit_server.url)
        os.kill(job, signal.SIGKILL)
        await wait_for(page, "rr.statuses.includes('reconnecting')", 15, "'reconnecting'")
        assert "Reconnecting your agent" in await page.locator("#status").inner_text()
        await wait_for(
            page,
            "rr.status === 'connected' && rr.statuses.at(-1) === 'connected'"
            " && rr.statuses.includes('reconnecting')",
            20,
            "the page to be connected again",
        )
        final = await state(page)
        assert {a["room"] for a in final["attempts"]} == {room}, "the page changed rooms"
        await view_shows(
            ops,
            f"o.recoveries.some(r => r.room === '{room}' && r.cause === 'ghost_removed')"
            f" && o.recoveries.some(r => r.room === '{room}' && r.cause === 'agent_died')",
            10,
            "the ghost removal and the new dispatch",
        )
