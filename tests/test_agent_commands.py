"""Your own agent workers under `room-recovery up`: next to the demo agent and through a
restart, the commands `up` refuses before anything starts, a worker registered under
another name, wrappers stopped with their agent, a worker that exits at once."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from livekit.agents.worker import ServerEnvOption

from room_recovery.core.defaults import AGENT_HEALTH_PORT
from room_recovery.system.options import SystemOptions
from room_recovery.system.processes import group_members
from tests.support.system import SERVER_ONLY, System, alive, person_gets_an_agent

pytestmark = pytest.mark.integration  # processes: up, the supervisor and its parts


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
    await person_gets_an_agent(system, agent_name="helper-agent")
    logs = system.cli("logs", "agent-helper-agent")
    assert logs.returncode == 0 and "Agent helper-agent registered" in logs.stdout

    old_pid = system.pid_of("agent-helper-agent")
    restarted = system.cli("restart")
    assert restarted.returncode == 0, restarted.stderr + restarted.stdout
    assert f"page:    http://127.0.0.1:{system.web_port}/" in restarted.stdout
    assert not alive(old_pid)
    assert set(system.status()) == {"livekit", "agent", "agent-helper-agent", "web"}
    await person_gets_an_agent(system, agent_name="helper-agent")


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
