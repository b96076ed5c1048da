"""`room-recovery up` with agents: the demo agent, your own workers next to it, and what
happens when a worker, the server or the watchdog is killed under the supervisor."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from livekit.agents.worker import ServerEnvOption

from room_recovery.core.defaults import AGENT_HEALTH_PORT
from room_recovery.core.manager import RoomManager
from room_recovery.system.options import SystemOptions
from room_recovery.system.processes import group_members
from tests.support.livekit import ServerInfo, eventually
from tests.support.system import SERVER_ONLY, System, alive, brought_down
from tests.support.worker import person

pytestmark = pytest.mark.integration  # processes: up, the supervisor and its parts


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """A system under test; `down` afterwards, and nothing it started may be left running."""
    with brought_down(System(tmp_path / "state", tmp_path)) as under_test:
        yield under_test


async def _person_gets_an_agent(
    system: System, timeout: float = 20, agent_name: str = "demo-agent"
) -> None:
    server = ServerInfo(system.url, "devkey", "secret")
    room = f"sys-{uuid.uuid4().hex[:8]}"
    async with person(server, room, "user-sys", agent_name, publish=True) as someone:
        await someone.wait_for_agent(timeout=timeout)
    # as the page's leave beacon would: the job ends now, so a restart or `down` after this
    # need not wait for its agent to notice the person left and drain
    async with RoomManager(server.url, server.api_key, server.api_secret) as manager:
        await manager.delete_room(room)


def _healthy_with_new_pid(system: System, part: str, old_pid: int) -> bool:
    state = system.status()[part]
    return state["state"] == "healthy" and state["pid"] != old_pid


async def test_up_brings_every_part_to_healthy_and_a_person_gets_an_agent(
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
    await _person_gets_an_agent(system)


async def test_a_killed_worker_and_a_killed_server_are_restarted_and_agents_come_again(
    system: System,
) -> None:
    assert system.up("--no-web").returncode == 0
    worker = system.pid_of("agent")
    os.kill(worker, signal.SIGKILL)
    system.wait_for(lambda: _healthy_with_new_pid(system, "agent", worker), 40, "a new worker")
    await _person_gets_an_agent(system)

    server = system.pid_of("livekit")
    os.kill(server, signal.SIGKILL)
    system.wait_for(lambda: _healthy_with_new_pid(system, "livekit", server), 30, "a new server")
    # The worker reconnects by itself (backoff up to 10 s) and registers again.
    await _person_gets_an_agent(system, timeout=45)


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


async def test_your_own_agent_runs_next_to_the_demo_one_and_survives_a_restart(
    system: System,
) -> None:
    # The "user's own agent" is a real worker started by a command line of their choosing.
    own = f"helper-agent={sys.executable} -m room_recovery.cli agent --agent-name helper-agent"
    result = system.up("--no-watch", "--agent-command", own + " --health-port 0")
    assert result.returncode == 0, result.stderr + result.stdout
    assert system.status()["agent-helper-agent"]["state"] == "healthy"
    status = system.cli("status")
    assert status.returncode == 0, status.stdout
    assert re.search(r"agent-helper-agent +pid \d+ +port - +healthy", status.stdout), status.stdout
    page = f"http://127.0.0.1:{system.web_port}/api/config"
    async with aiohttp.ClientSession() as http, http.get(page) as response:
        offered = [agent["name"] for agent in (await response.json())["agents"]]
    assert offered == ["demo-agent", "helper-agent"]
    await _person_gets_an_agent(system, agent_name="helper-agent")
    logs = system.cli("logs", "agent-helper-agent")
    assert logs.returncode == 0 and "Agent helper-agent registered" in logs.stdout

    old_pid = system.pid_of("agent-helper-agent")
    restarted = system.cli("restart")
    assert restarted.returncode == 0, restarted.stderr + restarted.stdout
    assert f"page:    http://127.0.0.1:{system.web_port}/" in restarted.stdout
    assert not alive(old_pid)
    assert set(system.status()) == {"livekit", "agent", "agent-helper-agent", "web"}
    await _person_gets_an_agent(system, agent_name="helper-agent")


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


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--agent-command", "python my_agent.py"], "must be NAME=COMMAND"),
        (["--agent-command", "my agent=python my_agent.py"], "may use only letters"),
        (["--agent-command", "a=python 'unclosed"], "No closing quotation"),
        (["--agent-command", "a=x", "--agent-command", "a=y"], "names agent 'a' twice"),
        (["--agent-command", "demo-agent=python my_agent.py"], "the demo agent's name"),
    ],
)
def test_a_bad_agent_command_is_refused_before_anything_starts(
    system: System, flags: list[str], message: str
) -> None:
    result = system.cli("up", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (system.state_dir / "run" / "supervisor.pid").exists()


@pytest.mark.parametrize(
    ("given", "write"),
    [
        ("letta", "auto:letta="),  # an automatic worker given a name: no dispatch reaches it
        ("auto:letta", "named-letta="),  # a named worker given as automatic
    ],
)
def test_a_worker_registered_under_another_name_stops_up_with_what_to_write(
    system: System, given: str, write: str
) -> None:
    script = (
        Path(__file__).parent
        / "workers"
        / ("letta_voice_agent.py" if given == "letta" else "named_agent.py")
    )
    system.extra_env["AGENT_NAME"] = "named-letta"
    result = system.up(*SERVER_ONLY, "--agent-command", f"{given}={sys.executable} {script} start")
    assert result.returncode != 0
    [line] = [ln for ln in result.stderr.splitlines() if "registered" in ln]
    assert "so it would never get the page's dispatches" in line and write in line, line
    assert "Traceback" not in result.stderr
    assert not (system.state_dir / "run" / "supervisor.pid").exists()


@pytest.mark.parametrize("wrapper", ["sh -c", "script"])
def test_down_and_restarts_stop_a_wrapped_agent_with_its_wrapper(
    system: System, tmp_path: Path, wrapper: str
) -> None:
    worker = Path(__file__).parent / "workers" / "plain_agent.py"
    run = f"{sys.executable} {worker} start"
    if wrapper == "script":  # a wrapper that does not exec: the worker is its child
        script = tmp_path / "run-agent.sh"
        script.write_text(f"#!/bin/sh\n{run}\necho the agent stopped\n")
        script.chmod(0o755)
        command = str(script)
    else:
        command = f"sh -c '{run}; echo the agent stopped'"
    result = system.up(*SERVER_ONLY, "--agent-command", f"auto:plain={command}")
    assert result.returncode == 0, result.stderr + result.stdout
    leader = system.pid_of("agent-plain")
    system.wait_for(
        lambda: len(group_members(leader)) >= 2, 10, "the wrapper and the worker in one group"
    )

    # the wrapper alone dies: what it started goes too, and one new worker takes its place
    os.kill(leader, signal.SIGKILL)
    system.wait_for(lambda: system.pid_of("agent-plain") != leader, 20, "a restart")
    system.wait_for(lambda: not group_members(leader), 10, "the old group to be gone")
    new_leader = system.pid_of("agent-plain")
    system.wait_for(lambda: len(group_members(new_leader)) >= 2, 20, "the new worker")

    stopped = system.cli("down")
    assert stopped.returncode == 0, stopped.stderr
    assert group_members(new_leader) == []  # the worker too, not only its wrapper


def test_your_own_agent_that_exits_at_once_fails_the_start_and_names_its_log(
    system: System,
) -> None:
    broken = f"broken-agent={sys.executable} -c 'raise SystemExit(3)'"
    result = system.up(*SERVER_ONLY, "--agent-command", broken)
    assert result.returncode != 0
    assert "agent-broken-agent exited with code 3 while starting" in result.stderr
    assert "agent-broken-agent.log" in result.stderr
    assert system.cli("status").returncode == 1


def test_the_demo_agents_health_port_is_not_the_one_livekit_agents_takes_itself() -> None:
    # A worker of yours started with `start` binds livekit-agents' production port; the
    # demo agent next to it must not want the same one.
    from livekit.agents import WorkerOptions

    taken = WorkerOptions(entrypoint_fnc=print).port
    assert isinstance(taken, ServerEnvOption)
    assert SystemOptions(state_dir=Path("unused")).agent_health_port != taken.prod_default
    assert AGENT_HEALTH_PORT != taken.prod_default
