"""One recovery protocol for any agent, as the user wired it, on the real stack.

The agents: the spec-shaped worker (automatic dispatch, only the spec's request-handler
snippet, `workers/letta_voice_agent.py`) and the demo agent (named, guarded). The faults: a job
process SIGKILLed, a whole worker SIGKILLed, a worker stalled (SIGSTOP) for 2 s. The person
always stays in the room they joined: recovery happens in place.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser

from room_recovery.core.settings import load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.protocol.room_status import ROOM_STATUS_KEY, STATUS_RECOVERING
from room_recovery.rules.watch import WatchPolicy
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running
from tests.support.browser import (
    artifact_name,
    chromium,
    page_server,
    pages_of,
    state,
    wait_for,
    wait_status,
    web_settings,
)
from tests.support.livekit import ROOT, ServerInfo, eventually
from tests.support.worker import Person, WorkerProcess, job_processes, person

PREFIX = "rp-"


@pytest.fixture
def room() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


async def spec_worker(
    server: ServerInfo, log: Path, workers: list[WorkerProcess], watchdog_url: str = ""
) -> WorkerProcess:
    """The spec-shaped worker, registered (and linked, with `watchdog_url`)."""
    env = {WATCHDOG_URL_VARIABLE: watchdog_url} if watchdog_url else {}
    worker = WorkerProcess(
        server,
        [str(ROOT / "tests" / "workers" / "letta_voice_agent.py"), "start"],
        log,
        env=env,
        stdout_to_log=True,
    )
    workers.append(worker)
    await worker.wait_for_log("registered worker", timeout=40)
    if watchdog_url:
        await worker.wait_for_log("linked to the watchdog", timeout=10)
    return worker


@asynccontextmanager
async def linked_watchdog(
    server: ServerInfo, agent_name: str = "", **watch: float
) -> AsyncIterator[tuple[Watchdog, str]]:
    """A watchdog with its HTTP side (webhooks unused, links used) on a free port."""
    settings = load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix=PREFIX,
    )
    options = WatchdogOptions(
        agent_name=agent_name,
        automatic=not agent_name,
        sweep_interval=0.3,
        watch=WatchPolicy(**watch),  # type: ignore[arg-type]
    )
    watchdog = Watchdog(settings, options)
    async with running(create_app(watchdog), "127.0.0.1", 0) as url:
        yield watchdog, url


def serving(workers: list[WorkerProcess], server: ServerInfo) -> WorkerProcess:
    [worker] = [w for w in workers if job_processes(w, server.url)]
    return worker


async def replaced(user: Person, old_sid: str, timeout: float = 10.0) -> str:
    """Wait for an agent other than `old_sid`; returns its sid."""
    await user.wait_for(
        "a new agent", lambda: any(a.sid != old_sid for a in user.agents()), timeout
    )
    return next(a.sid for a in user.agents() if a.sid != old_sid)


def joins_after(user: Person, mark: int) -> list[str]:
    return [sid for event, _identity, sid in user.events[mark:] if event == "joined"]


# --- job process killed ------------------------------------------------------------------


async def test_a_spec_shaped_workers_dead_job_is_replaced_in_place_with_no_entrypoint_code(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    worker = await spec_worker(livekit_server, tmp_path / "spec.log", workers)
    async with person(livekit_server, room, "user-1", publish=True) as user:  # a plain join
        first = await user.wait_for_agent(timeout=20)
        [job] = job_processes(worker, livekit_server.url)
        mark = len(user.events)
        os.kill(job, signal.SIGKILL)
        new_sid = await replaced(user, first.sid)
        # the dead agent left before the new one came, the person never moved, one new agent
        assert ("left", first.identity, first.sid) in user.events[mark:]
        assert joins_after(user, mark) == [new_sid]
        assert user.room.isconnected() and user.room.name == room
        status = json.loads(user.room.metadata)[ROOM_STATUS_KEY]
        assert status["status"] == STATUS_RECOVERING and status["reason"] == "agent_died"
        assert status["agent"] == first.identity  # the mark names the agent it replaces
    await worker.wait_for_log("died (its job process exited with code -9); replacing it")


# --- whole worker killed -----------------------------------------------------------------


async def test_a_killed_workers_agent_is_replaced_by_another_worker_through_its_link(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    async with linked_watchdog(livekit_server) as (watchdog, url):
        pool: list[WorkerProcess] = []
        for name in ("a", "b"):
            pool.append(await spec_worker(livekit_server, tmp_path / f"{name}.log", workers, url))
        async with person(livekit_server, room, "user-1", publish=True) as user:
            first = await user.wait_for_agent(timeout=20)
            await eventually(
                lambda: asyncio.sleep(0, bool(watchdog.links.vouched(room))),
                what="the serving worker to report its job",
            )
            victim = serving(pool, livekit_server)
            mark = len(user.events)
            victim.kill()  # the worker and its job processes, as a crash
            new_sid = await replaced(user, first.sid)
            assert watchdog.links.lost_workers == 1
            assert joins_after(user, mark) == [new_sid]  # one replacement, not two
            assert [a.sid for a in user.agents()] == [new_sid]
            survivor = next(w for w in pool if w is not victim)
            assert job_processes(survivor, livekit_server.url)


# --- a stall is not a death ----------------------------------------------------------------


async def test_a_guarded_agent_whose_worker_stalls_for_two_seconds_is_not_replaced(
    livekit_server: ServerInfo, room: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    agent = f"rp-agent-{uuid.uuid4().hex[:6]}"
    async with linked_watchdog(livekit_server, agent) as (watchdog, url):
        worker = WorkerProcess.demo(
            livekit_server, agent, tmp_path / "demo.log", env={WATCHDOG_URL_VARIABLE: url}
        )
        workers.append(worker)
        await worker.registered()
        await worker.wait_for_log("linked to the watchdog", timeout=10)
        async with person(livekit_server, room, "user-1", agent, publish=True) as user:
            first = await user.wait_for_guarded_agent(timeout=20)
            mark = len(user.events)
            os.killpg(worker.process.pid, signal.SIGSTOP)  # the worker and its jobs freeze
            try:
                await asyncio.sleep(2.0)  # the fault itself lasts 2 s
            finally:
                os.killpg(worker.process.pid, signal.SIGCONT)
            beat = first.attributes.copy()
            await user.wait_for(
                "the agent's heartbeat to move again",
                lambda: first.attributes != beat,
                timeout=10,
            )
            assert user.events[mark:] == []  # nobody left, nobody joined
            assert [a.sid for a in user.agents()] == [first.sid]
            removed = watchdog.metrics.recoveries.labels("ghost_removed")._value.get()
            assert removed == 0


# --- the page stays in its room --------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_the_page_waits_in_its_room_while_the_automatic_agent_is_replaced(
    livekit_server: ServerInfo,
    workers: list[WorkerProcess],
    tmp_path: Path,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    async with linked_watchdog(livekit_server) as (_watchdog, url):
        worker = await spec_worker(livekit_server, tmp_path / "spec.log", workers, url)
        settings = web_settings(livekit_server, room_prefix=PREFIX)
        async with (
            page_server(settings, ["auto:letta=Letta"]) as site,
            pages_of(browser, artifact_name(request.node.name)) as open_page,
        ):
            page = await open_page(f"{site}/?agent=letta")
            await page.get_by_role("button", name="Connect", exact=True).click()
            await wait_status(page, "connected", 20)
            first = (await state(page))["agentIdentity"]
            [job] = job_processes(worker, livekit_server.url)
            os.kill(job, signal.SIGKILL)
            await wait_for(page, "rr.recoveries === 1", 10, "the page to notice the agent left")
            await wait_status(page, "connected", 10)
            final = await state(page)
            # one room for the whole session: the page never left it
            assert [a["room"] for a in final["attempts"]] == [final["room"]]
            assert final["agentIdentity"] and final["agentIdentity"] != first
