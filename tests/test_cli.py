"""The `room-recovery` command line against the real server, as a user runs it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from livekit import api

from room_recovery.system.livekit_server import free_port
from tests.support.livekit import ServerInfo, participant

pytestmark = pytest.mark.integration  # the CLI and systemd-analyze, as processes

ROOT = Path(__file__).resolve().parents[1]


def run_cli(server: ServerInfo | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
    if server is not None:
        environment |= server.env()
    environment |= env
    return subprocess.run(
        [sys.executable, "-m", "room_recovery.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT / "tests",
        timeout=30,
    )


def run_on_terminal(server: ServerInfo, *args: str, **env: str) -> str:
    """Run the CLI on a terminal (a pty from util-linux `script`); returns what it showed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
    environment |= server.env() | {"TERM": "xterm-256color"} | env
    command = shlex.join([sys.executable, "-m", "room_recovery.cli", *args])
    result = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT / "tests",
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


needs_script = pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script")


async def make_room(server: ServerInfo, name: str) -> None:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=name))


async def test_rooms_lists_names_counts_and_ages_as_json(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    result = run_cli(livekit_server, "--prefix", room_name, "rooms", "--json")
    assert result.returncode == 0, result.stderr
    [room] = json.loads(result.stdout)
    assert room["name"] == room_name and room["num_participants"] == 0
    assert room["age_seconds"] >= 0


async def test_participants_shows_identity_kind_and_state(
    livekit_server: ServerInfo, room_name: str
) -> None:
    async with participant(livekit_server, room_name, "user1"):
        result = run_cli(livekit_server, "participants", room_name)
    assert result.returncode == 0, result.stderr
    assert "user1" in result.stdout and "standard" in result.stdout and "active" in result.stdout


async def test_clean_stale_dry_run_lists_without_deleting(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    result = run_cli(
        livekit_server,
        "--prefix",
        room_name,
        "clean-stale",
        "--dry-run",
        ROOM_STALE_TIMEOUT="0.001",
    )
    assert result.returncode == 0, result.stderr
    assert f"would delete room {room_name}" in result.stdout
    listed = run_cli(livekit_server, "--prefix", room_name, "rooms", "--json")
    assert [r["name"] for r in json.loads(listed.stdout)] == [room_name]


async def test_clean_force_deletes_and_json_reports_it(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    result = run_cli(livekit_server, "clean", room_name, "--force", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and [d["room"] for d in report["deleted"]] == [room_name]


async def test_remove_and_delete_of_things_already_gone_succeed(
    livekit_server: ServerInfo, room_name: str
) -> None:
    assert run_cli(livekit_server, "delete", room_name).returncode == 0
    result = run_cli(livekit_server, "remove", room_name, "nobody", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"identity": "nobody", "removed": False, "room": room_name}


def test_an_unreachable_server_is_one_line_naming_the_url_and_no_traceback() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    result = run_cli(None, "rooms", LIVEKIT_URL=url)
    assert result.returncode == 3
    assert url in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_rejected_secret_says_which_variables_to_fix(livekit_server: ServerInfo) -> None:
    result = run_cli(livekit_server, "rooms", LIVEKIT_API_SECRET="not-the-secret")
    assert result.returncode == 4
    assert "LIVEKIT_API_SECRET" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("ROOM_STALE_TIMEOUT", "soon"), ("LIVEKIT_URL", "localhost:7880")]
)
def test_a_bad_setting_names_the_variable(variable: str, value: str) -> None:
    result = run_cli(None, "rooms", **{variable: value})
    assert result.returncode == 2
    assert variable in result.stderr and "Traceback" not in result.stderr


def test_a_room_name_livekit_refuses_is_a_clear_error(livekit_server: ServerInfo) -> None:
    result = run_cli(livekit_server, "delete", "x" * 300)
    assert result.returncode == 2 and "256 bytes" in result.stderr


def test_a_room_outside_the_prefix_is_refused(livekit_server: ServerInfo) -> None:
    result = run_cli(livekit_server, "--prefix", "voice-", "delete", "someone-elses-room")
    assert result.returncode == 2 and "ROOM_PREFIX" in result.stderr


async def test_global_options_also_go_after_the_command(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    result = run_cli(livekit_server, "rooms", "--prefix", room_name, "--json")
    assert result.returncode == 0, result.stderr
    assert [room["name"] for room in json.loads(result.stdout)] == [room_name]


async def test_a_table_piped_to_another_program_has_no_escape_codes(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    # FORCE_COLOR="" undoes a FORCE_COLOR the test run may have been given
    result = run_cli(livekit_server, "--prefix", room_name, "rooms", FORCE_COLOR="")
    assert result.returncode == 0, result.stderr
    assert room_name in result.stdout and "1 active room(s)" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr


@needs_script
async def test_no_color_leaves_out_escape_codes_on_a_terminal(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    shown = run_on_terminal(livekit_server, "--prefix", room_name, "rooms", NO_COLOR="1")
    assert room_name in shown and "ROOM" in shown
    assert "\x1b[" not in shown


def test_a_port_out_of_range_is_one_line_naming_the_option() -> None:
    result = run_cli(None, "up", "--web-port", "70000")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--web-port" in line and "65535" in line


@needs_script
async def test_clean_stale_on_a_terminal_shows_its_progress(
    livekit_server: ServerInfo, room_name: str
) -> None:
    await make_room(livekit_server, room_name)
    shown = run_on_terminal(
        livekit_server,
        "--prefix",
        room_name,
        "clean-stale",
        "--dry-run",
        ROOM_STALE_TIMEOUT="0.001",
        NO_COLOR="1",  # plain words; the bar still draws
    )
    assert "cleaning stale rooms" in shown and "1/1" in shown
    assert f"would delete room {room_name}" in shown


def test_doctor_does_not_ask_for_a_demo_agent_the_running_system_has_not(
    livekit_server: ServerInfo, tmp_path: Path
) -> None:
    # `up --no-agent` with your own agent: status.json lists no demo agent part
    parts = {"livekit": {"port": 7880}, "agent-letta": {"port": None}, "web": {"port": 1}}
    (tmp_path / "status.json").write_text(json.dumps({"parts": parts}))
    result = run_cli(livekit_server, "doctor", "--json", ROOM_RECOVERY_STATE=str(tmp_path))
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    registered = checks["agent worker registered"]
    assert registered["status"] == "skipped", registered
    assert "doctor --probe" in registered["detail"]
