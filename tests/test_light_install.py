"""`pip install room-recovery` without extras: the room tools, and no agent runtime.

Builds the wheel, installs it into a fresh virtual environment (packages come from the
registry, or pip's cache), and runs there what a user of the light install runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 420  # seconds: a cold pip cache downloads a few dozen packages
# pip's own settings stay (certificates, caches); this project's settings and venv do not
ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.startswith(("LIVEKIT_", "ROOM_", "PYTHON")) and key != "VIRTUAL_ENV"
} | {"NO_COLOR": "1"}


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        cwd=cwd,
        env=ENV,
    )


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the project's wheel installed, no extras; yields its bin folder."""
    base = tmp_path_factory.mktemp("light-install")
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base, ROOT)
    assert built.returncode == 0, built.stderr
    [wheel] = base.glob("room_recovery-*.whl")
    # the venv gets no pip of its own: this one's installs into it (half the time)
    made = run(sys.executable, "-m", "venv", "--without-pip", base / "venv")
    assert made.returncode == 0, made.stderr
    bin_dir = base / "venv" / "bin"
    # no bytecode compiled ahead for every package (half the time): Python compiles what
    # the tests import
    pip = (sys.executable, "-m", "pip", "--python", bin_dir / "python")
    installed = run(*pip, "install", "-q", "--no-compile", wheel)
    assert installed.returncode == 0, installed.stderr
    yield bin_dir


pytestmark = [pytest.mark.timeout(INSTALL_TIMEOUT * 2), pytest.mark.integration]


def test_the_light_install_has_no_agent_runtime_and_no_numpy(light_venv: Path) -> None:
    check = (
        "import importlib.util as u; "
        "print([m for m in ('livekit.agents', 'livekit.rtc', 'numpy') if u.find_spec(m)])"
    )
    result = run(light_venv / "python", "-c", check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_specs_import_works_in_the_light_install(light_venv: Path, tmp_path: Path) -> None:
    snippet = (
        "from livekit_room_manager import RoomManager\n"
        "from room_recovery import CleanupReport\n"
        "manager = RoomManager(livekit_url='ws://127.0.0.1:9', stale_room_timeout=300)\n"
        "print(type(manager).__name__, manager.stale_room_timeout, CleanupReport().ok)\n"
    )
    result = run(light_venv / "python", "-c", snippet, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RoomManager 300.0 True"


@pytest.mark.parametrize("command", ["rooms", "clean-stale", "watch", "doctor", "web", "status"])
def test_the_room_commands_and_services_run_in_the_light_install(
    light_venv: Path, command: str
) -> None:
    result = run(light_venv / "room-recovery", command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout or "usage" in result.stdout


def test_the_demo_agent_says_which_extra_to_install(light_venv: Path) -> None:
    result = run(light_venv / "room-recovery", "agent")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "pip install 'room-recovery[demo]'" in line


def test_the_agent_hooks_say_which_extra_to_install(light_venv: Path) -> None:
    result = run(light_venv / "python", "-c", "from room_recovery.agent import request_handler")
    assert result.returncode == 1
    assert "pip install 'room-recovery[agent]'" in result.stderr.strip().splitlines()[-1]
