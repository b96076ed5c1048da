"""`room-recovery up/down/status`: the whole system, real processes, real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from livekit.api import TokenVerifier, WebhookReceiver

from room_recovery.core.errors import ProcessError
from room_recovery.rules.restart import RestartPolicy
from room_recovery.system.livekit_server import free_port
from room_recovery.system.supervisor import PartSpec, Supervisor
from tests.support.livekit import ServerInfo, participant
from tests.support.system import SERVER_ONLY, System, alive

pytestmark = pytest.mark.integration  # processes: up, the supervisor and its parts


def test_up_starts_the_server_runs_the_cleanup_and_reports_healthy(system: System) -> None:
    result = system.up(*SERVER_ONLY)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "The voice system is up" in result.stdout
    status = system.cli("status", "--json")
    assert status.returncode == 0, status.stdout
    report = json.loads(status.stdout)
    assert report["running"] and report["parts"]["livekit"]["healthy"]
    assert report["rooms"] == 0
    supervisor_log = (system.state_dir / "logs" / "supervisor.log").read_text()
    assert "Stale room cleanup complete" in supervisor_log
    config = system.state_dir / "livekit.yaml"  # it holds the API secret
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_down_stops_everything_it_started_and_nothing_else(system: System) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert system.up(*SERVER_ONLY).returncode == 0
        pids = system.recorded_pids()
        assert len(pids) == 2  # supervisor and livekit
        result = system.cli("down")
        assert result.returncode == 0 and "stopped supervisor" in result.stdout
        assert [pid for pid in pids if alive(pid)] == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_killed_server_is_restarted(system: System) -> None:
    assert system.up(*SERVER_ONLY).returncode == 0
    first = system.pid_of("livekit")
    os.kill(first, signal.SIGKILL)
    system.wait_for(
        lambda: (
            system.status()["livekit"]["state"] == "healthy"
            and system.status()["livekit"]["pid"] != first
        ),
        timeout=30,
        what="livekit to be restarted",
    )
    assert system.status()["livekit"]["restarts"] == 1
    assert (
        "livekit exited with code -9; restarting"
        in (system.state_dir / "logs" / "supervisor.log").read_text()
    )
    assert system.cli("rooms").returncode == 0


def test_a_stale_pidfile_is_cleared_and_its_pid_left_alone(system: System) -> None:
    # The pidfile names a live process that is not ours: a reused pid.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = system.state_dir / "run"
        run.mkdir(parents=True)
        (run / "supervisor.pid").write_text(
            json.dumps(
                {
                    "name": "supervisor",
                    "pid": bystander.pid,
                    "argv": ["python", "-m", "room_recovery.cli", "up"],
                    "started_at": 0,
                }
            )
        )
        (run / "livekit.pid").write_text(
            json.dumps(
                {
                    "name": "livekit",
                    "pid": bystander.pid,
                    "argv": ["livekit-server"],
                    "started_at": 0,
                }
            )
        )
        result = system.up(*SERVER_ONLY)
        assert result.returncode == 0, result.stderr
        assert system.cli("down").returncode == 0
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_taken_port_is_named_with_its_holder_and_left_alone(system: System) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", system.livekit_port))
        holder.listen()
        result = system.up(*SERVER_ONLY)
        assert result.returncode != 0
        assert f"port {system.livekit_port}" in result.stderr
        assert f"pid {os.getpid()}" in result.stderr
        assert "Traceback" not in result.stderr
        holder.getsockname()  # still ours, still open
    assert not (system.state_dir / "livekit.yaml").exists()  # no secret written for nothing


def test_up_twice_says_it_is_already_running(system: System) -> None:
    assert system.up(*SERVER_ONLY).returncode == 0
    again = system.up(*SERVER_ONLY)
    assert again.returncode != 0 and "already running" in again.stderr


def test_a_missing_server_binary_says_how_to_get_it(system: System, tmp_path: Path) -> None:
    system.extra_env = {
        "ROOM_RECOVERY_CACHE": str(tmp_path / "empty-cache"),
        "PATH": "/usr/bin:/bin",
    }
    result = system.cli("up", "--no-agent", "--no-web", "--no-watch")
    assert result.returncode != 0
    assert "livekit-server not found" in result.stderr and "./setup.sh" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_state_folder_is_a_clear_error(system: System, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    system.state_dir = blocker / "state"
    result = system.up(*SERVER_ONLY)
    assert result.returncode == 2
    assert "not writable" in result.stderr and "--state-dir" in result.stderr


async def test_a_part_that_dies_while_starting_stops_the_start_and_what_ran_before(
    tmp_path: Path,
) -> None:
    never_healthy = f"http://127.0.0.1:{free_port()}/"
    crashing = PartSpec(
        "crasher", (sys.executable, "-c", "import sys; sys.exit(3)"), health_url=never_healthy
    )
    steady = PartSpec("steady", (sys.executable, "-c", "import time; time.sleep(60)"))
    restart = RestartPolicy(first_delay=0.05, max_delay=0.1, crash_limit=3, window=60)
    supervisor = Supervisor(tmp_path, [steady, crashing], restart=restart)
    with pytest.raises(ProcessError, match="crasher exited with code 3"):
        # A part that dies while starting makes start() fail and stop everything.
        await supervisor.start()
    assert supervisor.parts["steady"].process is not None
    assert supervisor.parts["steady"].process.returncode is not None


async def test_a_part_that_dies_later_is_restarted_then_given_up_on(tmp_path: Path) -> None:
    flaky = PartSpec(
        "flaky", (sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(4)")
    )
    restart = RestartPolicy(first_delay=0.05, max_delay=0.1, crash_limit=3, window=60)
    async with Supervisor(tmp_path, [flaky], restart=restart) as supervisor:
        deadline = time.monotonic() + 20
        while supervisor.parts["flaky"].state != "failed":
            assert time.monotonic() < deadline, "flaky was never given up on"
            await asyncio.sleep(0.05)
        assert supervisor.parts["flaky"].restarts == 2
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["parts"]["flaky"]["state"] == "failed"
        assert status["parts"]["flaky"]["last_exit"] == 4


async def test_webhook_sends_livekits_webhooks_to_another_receiver_and_survives_a_restart(
    system: System,
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    receiver = WebhookReceiver(TokenVerifier("devkey", "secret"))

    async def webhook(request: web.Request) -> web.Response:
        event = receiver.receive(await request.text(), request.headers["Authorization"])
        heard.put_nowait(event.event)  # signed with the API secret, as the watchdog checks
        return web.Response()

    app = web.Application()
    app.add_routes([web.post("/webhook", webhook)])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}/webhook"
        assert system.up(*SERVER_ONLY, "--webhook", url).returncode == 0
        restarted = await asyncio.to_thread(system.cli, "restart")
        assert restarted.returncode == 0, restarted.stderr + restarted.stdout
        server = ServerInfo(system.url, "devkey", "secret")
        async with participant(server, f"sys-{uuid.uuid4().hex[:8]}", "user-hook"):
            while (event := await asyncio.wait_for(heard.get(), 20)) != "participant_joined":
                assert event == "room_started"
    finally:
        await runner.cleanup()
