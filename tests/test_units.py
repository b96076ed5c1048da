"""systemd units: a deployment that runs without `up`, checked by systemd itself."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from room_recovery.system.units import systemd_quote
from tests.test_cli import run_cli

pytestmark = pytest.mark.integration  # the CLI and systemd-analyze, as processes

UNITS = ("room-recovery-agent", "room-recovery-web", "room-recovery-watchdog")
SECRET = "a-long-secret-for-the-units-test-0123456789"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (./setup.sh)"
)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_systemd
def test_the_units_pass_systemds_own_check_and_keep_the_secret_in_the_env_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "units"
    result = run_cli(
        None, "units", "--out", str(out), "--user", "nobody", LIVEKIT_API_SECRET=SECRET
    )
    assert result.returncode == 0, result.stderr
    assert "sudo systemctl enable --now" in result.stdout
    env_file = out / "room-recovery.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f'LIVEKIT_API_SECRET="{SECRET}"' in env_file.read_text()
    files = [out / f"{name}.service" for name in UNITS]
    for unit in files:
        text = unit.read_text()
        assert SECRET not in text  # only the env file holds it
        assert f"EnvironmentFile={env_file}" in text
        assert "Restart=on-failure" in text
    assert "--port 8082" in (out / "room-recovery-watchdog.service").read_text()
    checked = verify(*files)
    assert checked.returncode == 0, checked.stderr


@needs_systemd
def test_systemds_check_refuses_a_broken_unit(tmp_path: Path) -> None:
    # the check above can fail: a relative ExecStart is refused
    out = tmp_path / "units"
    assert run_cli(None, "units", "--out", str(out), "--user", "nobody").returncode == 0
    unit = out / "room-recovery-watchdog.service"
    text = unit.read_text()
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    unit.write_text(text.replace(start, "ExecStart=python -m room_recovery.cli watch"))
    assert verify(unit).returncode != 0


def test_units_without_the_demo_agent(tmp_path: Path) -> None:
    out = tmp_path / "units"
    result = run_cli(None, "units", "--out", str(out), "--user", "nobody", "--no-agent")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.service")) == [
        "room-recovery-watchdog.service",
        "room-recovery-web.service",
    ]


def test_units_into_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    result = run_cli(None, "units", "--out", str(taken), "--user", "nobody")
    assert result.returncode == 2
    assert "is a file; give a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_systemd_words_are_quoted_as_systemd_reads_them() -> None:
    assert systemd_quote("/usr/bin/python") == "/usr/bin/python"
    assert systemd_quote("a b") == '"a b"'
    assert systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert systemd_quote("100%") == "100%%"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--user", "root"], "must not run as root"),
        (["--user", "no-such-user-here"], "there is no such user"),
    ],
)
def test_units_never_run_as_root_and_only_as_a_real_user(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    result = run_cli(None, "units", "--out", str(tmp_path / "units"), *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "units").exists()


def test_every_unit_names_its_user(tmp_path: Path) -> None:
    out = tmp_path / "units"
    assert run_cli(None, "units", "--out", str(out), "--user", "nobody").returncode == 0
    for name in UNITS:
        assert "\nUser=nobody\n" in (out / f"{name}.service").read_text()
