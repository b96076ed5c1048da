"""The page in Chromium, with the watchdog, for every kind of agent and every fault.

Agents (`support/recovery.py`): the demo agent, the spec-shaped automatic worker, a named
worker without the session guard. Faults: its job process SIGKILLed; its worker SIGKILLed
while a second worker of the same agent is registered; its worker stalled (SIGSTOP) for 2 s
(the guide's worker and the demo: a stall replaces nothing whatever the kind).

In every case the page must stay in the room it joined: a replacement is possible in place,
so a test in which the page tried a new room fails. A stall must replace nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from room_recovery.core.manager import RoomManager
from room_recovery.core.views import participant_view
from room_recovery.rules.model import Kind, State
from tests.support.browser import (
    artifact_name,
    page_server,
    pages_of,
    state,
    wait_status,
    web_settings,
)
from tests.support.livekit import ServerInfo, eventually
from tests.support.recovery import KINDS, agent_name_for, linked_watchdog, serving, start_worker
from tests.support.worker import WorkerProcess, job_processes

PREFIX = "rpp-"
FAULTS = ("job", "worker", "stall")
STALL = 2.0  # seconds the stalled worker is stopped
# every kind for the faults it recovers from in its own way; a stall replaces nothing, on
# any kind: the guide's worker and the demo show it here (test_guide_worker stalls it 9 s)
CASES = [(kind, fault) for fault in FAULTS for kind in KINDS if (kind, fault) != ("named", "stall")]


async def agent_sids(manager: RoomManager, room: str) -> set[str]:
    """The agents in `room` that the server shows ACTIVE, by sid."""
    views = {i.sid: participant_view(i) for i in await manager.list_participants(room)}
    return {sid for sid, v in views.items() if v.kind is Kind.AGENT and v.state is State.ACTIVE}


async def one_room(page: Page) -> str:
    """The page's room, after checking it never tried another one."""
    final = await state(page)
    rooms = {attempt["room"] for attempt in final["attempts"]}
    assert rooms == {final["room"]}, f"the page left its room: {final['attempts']}"
    return str(final["room"])


@pytest.mark.parametrize(("kind", "fault"), CASES)
async def test_the_page_keeps_its_room_and_gets_its_agent_back(
    kind: str,
    fault: str,
    livekit_server: ServerInfo,
    workers: list[WorkerProcess],
    tmp_path: Path,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    name = agent_name_for(kind)
    async with linked_watchdog(livekit_server, PREFIX, name) as (watchdog, url):
        count = 2 if fault == "worker" else 1
        pool = await asyncio.gather(
            *(
                start_worker(kind, livekit_server, name, tmp_path / f"w{n}.log", workers, url)
                for n in range(count)
            )
        )
        offered = f"auto:letta-{uuid.uuid4().hex[:4]}" if kind == "spec" else name
        settings = web_settings(livekit_server, room_prefix=PREFIX)
        async with (
            page_server(settings, [offered]) as site,
            pages_of(browser, artifact_name(request.node.name)) as open_page,
            RoomManager(settings=settings) as manager,
        ):
            page = await open_page(f"{site}/?agent={offered.removeprefix('auto:')}")
            await page.get_by_role("button", name="Connect", exact=True).click()
            await wait_status(page, "connected", 20)
            room = (await state(page))["room"]
            before = await agent_sids(manager, room)
            victim = serving(list(pool), livekit_server)
            if fault == "job":
                [job] = job_processes(victim, livekit_server.url)
                os.kill(job, signal.SIGKILL)
            elif fault == "worker":
                victim.kill()
            else:
                os.killpg(victim.process.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(STALL)  # the fault itself
                finally:
                    os.killpg(victim.process.pid, signal.SIGCONT)

            if fault == "stall":
                await one_room(page)
                # the watchdog looks again now that the worker runs: nobody waits, no ghost
                assert not await watchdog.check_room(room)
                final = await state(page)
                assert final["status"] == "connected" and final["recoveries"] == 0
                removed = watchdog.metrics.registry.get_sample_value(
                    "room_recovery_recoveries_total", {"cause": "ghost_removed"}
                )
                assert not removed
                assert job_processes(victim, livekit_server.url)  # the same job serves on
                assert await agent_sids(manager, room) == before  # the same agent
            else:

                async def replaced() -> bool:
                    after = await agent_sids(manager, room)
                    return bool(after) and not after & before

                await eventually(replaced, timeout=15, what="a new agent in the page's room")
                # An agent that rejoins under the same identity (our hook's `agent-<room>`)
                # may replace the dead one before the page hears it leave: then it never
                # waits (0); else it waits once, in its room (1).
                await wait_status(page, "connected", 15)
                assert (await state(page))["recoveries"] in (0, 1)
                await one_room(page)
