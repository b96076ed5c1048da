"""`room-recovery up` with agents: the demo agent and the guide's worker, and what
happens when a worker, the server or the watchdog is killed under the supervisor."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from room_recovery.core.manager import RoomManager
from tests.support.livekit import ServerInfo, eventually
from tests.support.system import System, person_gets_an_agent
from tests.support.worker import person

pytestmark = pytest.mark.integration  # processes: up, the supervisor and its parts


def _healthy_with_new_pid(system: System, part: str, old_pid: int) -> bool:
    state = system.status()[part]
    return state["state"] == "healthy" and state["pid"] != old_pid


async def test_up_brings_every_part_to_healthy_and_aperson_gets_an_agent(
    system: System,
) -> None:
    result = system.up()
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"page:    http://127.0.0.1:{system.web_port}/" in result.stdout
    report = json.loads(system.cli("status", "--json").stdout)
    assert {name: part["healthy"] for name, part in report["parts"].items()} == {
        "livekit": True,
        "agent": True,
        "web": True,
        "watch": True,
    }
    async with aiohttp.ClientSession() as http, http.get(report["page_url"]) as page:
        assert page.status == 200 and "Connect" in await page.text()
    await person_gets_an_agent(system)


async def test_a_killed_worker_and_a_killed_server_are_restarted_and_agents_come_again(
    system: System,
) -> None:
    assert system.up("--no-web").returncode == 0
    worker = system.pid_of("agent")
    os.kill(worker, signal.SIGKILL)
    system.wait_for(lambda: _healthy_with_new_pid(system, "agent", worker), 40, "a new worker")
    await person_gets_an_agent(system)

    server = system.pid_of("livekit")
    os.kill(server, signal.SIGKILL)
    system.wait_for(lambda: _healthy_with_new_pid(system, "livekit", server), 30, "a new server")
    # The worker reconnects by itself (backoff up to 10 s) and registers again.
    await person_gets_an_agent(system, timeout=45)


async def test_a_watchdog_killed_while_a_person_waits_is_restarted_and_finishes_the_recovery(
    system: System,
) -> None:
    assert system.up("--no-web").returncode == 0
    server = ServerInfo(system.url, "devkey", "secret")
    room = f"sys-{uuid.uuid4().hex[:8]}"
    # a plain join dispatches no named agent: only the watchdog brings one
    async with person(server, room, "user-wd", publish=True) as someone:
        metrics = f"http://127.0.0.1:{system.watch_port}/metrics"
        async with aiohttp.ClientSession() as http:

            async def seen_waiting() -> bool:
                async with http.get(metrics) as response:
                    return "room_recovery_people_waiting 1.0" in await response.text()

            await eventually(seen_waiting, timeout=10, what="the watchdog to see the person wait")
        watchdog = system.pid_of("watch")
        os.kill(watchdog, signal.SIGKILL)  # within its 3 s grace: before it dispatched
        system.wait_for(lambda: _healthy_with_new_pid(system, "watch", watchdog), 30, "a watchdog")
        agent = await someone.wait_for_agent(timeout=30)
        assert agent.identity == f"agent-{room}"
    log = (system.state_dir / "logs" / "watch.log").read_text()
    assert "a person is waiting without an agent; dispatching demo-agent" in log


async def _linked_jobs(system: System) -> float:
    url = f"http://127.0.0.1:{system.watch_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    [line] = [ln for ln in text.splitlines() if ln.startswith("room_recovery_linked_jobs ")]
    return float(line.split()[1])


async def test_an_automatic_agent_killed_under_up_comes_back_to_the_same_room_after_its_restart(
    system: System,
) -> None:
    # the user's worker as the spec wires it; `up` restarts it when it dies
    script = Path(__file__).parent / "workers" / "letta_voice_agent.py"
    own = f"auto:letta={sys.executable} {script} start"
    result = system.up("--no-agent", "--agent-command", own)
    assert result.returncode == 0, result.stderr + result.stdout
    server = ServerInfo(system.url, "devkey", "secret")
    room = f"sys-{uuid.uuid4().hex[:8]}"
    async with person(server, room, "user-sys", publish=True) as someone:  # a plain join
        first = await someone.wait_for_agent(timeout=20)

        async def reported() -> bool:
            return await _linked_jobs(system) >= 1

        await eventually(reported, timeout=10, what="the worker to report its job")
        old_pid = system.pid_of("agent-letta")
        os.kill(old_pid, signal.SIGKILL)  # its job process dies with it
        started = time.monotonic()
        await someone.wait_for(
            "an agent again",
            lambda: any(a.sid != first.sid for a in someone.agents()),
            timeout=40,
        )
        back_after = time.monotonic() - started
        assert someone.room.isconnected() and someone.room.name == room
    # as the page's leave beacon would: the agent's job ends, so `down` need not drain it
    async with RoomManager(server.url, server.api_key, server.api_secret) as manager:
        await manager.delete_room(room)
    assert system.pid_of("agent-letta") != old_pid
    watch_log = (system.state_dir / "logs" / "watch.log").read_text()
    assert "is gone with 1 job(s)" in watch_log
    print(f"agent back {back_after:.1f} s after its worker was killed under up")
