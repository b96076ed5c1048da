"""Every log line has its time and its structured fields: text for people, JSON lines for
files (`up`'s parts); a command's verdict is what it prints last."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from room_recovery.core.logs import (
    JSON,
    LOG_FORMAT_VARIABLE,
    TEXT,
    JsonFormatter,
    TextFormatter,
    log_format,
)
from room_recovery.core.settings import load_settings
from room_recovery.system.options import SystemOptions
from room_recovery.system.parts import plan_system
from tests.test_cli import run_cli

pytestmark = pytest.mark.integration  # the CLI, as processes


def record(message: str, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("room_recovery.watchdog", logging.INFO, "x.py", 1, message, (), None)
    made.__dict__.update(fields)
    return made


def test_a_text_line_has_the_time_the_level_the_message_and_the_fields() -> None:
    line = TextFormatter().format(record("👻 Removed ghost", room="voice-a", reason="no beat"))
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} INFO    👻 Removed ghost   ", line)
    assert line.endswith('room=voice-a reason="no beat"')


def test_a_json_line_is_one_object_with_utc_time_and_the_fields() -> None:
    try:
        raise KeyError("boom")
    except KeyError:
        failing = record("checking failed", room="voice-a")
        failing.exc_info = sys.exc_info()
    body = json.loads(JsonFormatter().format(failing))
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", body["time"])
    assert (body["level"], body["message"], body["room"]) == ("INFO", "checking failed", "voice-a")
    assert "KeyError: 'boom'" in body["error"]


def test_json_is_chosen_by_the_environment_and_text_is_the_default() -> None:
    assert log_format({}) == TEXT
    assert log_format({LOG_FORMAT_VARIABLE: "JSON"}) == JSON
    assert log_format({LOG_FORMAT_VARIABLE: "pretty"}) == TEXT


def test_up_runs_its_own_parts_with_json_logs(tmp_path: object) -> None:
    settings = load_settings(livekit_url="ws://remote.example:7880")  # no local server part
    options = SystemOptions(state_dir=tmp_path, with_agent=False)  # type: ignore[arg-type]
    parts = plan_system(settings, options).parts
    assert [p.name for p in parts] == ["web", "watch"]
    assert all(part.env[LOG_FORMAT_VARIABLE] == JSON for part in parts)


def test_json_is_refused_where_it_cannot_work_with_one_clear_line() -> None:
    result = run_cli(None, "logs", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith("room-recovery: --json is not available for `logs`")
    assert "Traceback" not in result.stderr


def test_a_command_s_log_lines_carry_time_and_fields_and_its_verdict_comes_last() -> None:
    result = run_cli(None, "clean-stale", "--url", "ws://127.0.0.1:9")
    assert result.returncode == 3
    *logged, verdict = result.stderr.strip().splitlines()
    assert verdict.startswith("room-recovery: LiveKit server unreachable at ws://127.0.0.1:9")
    assert logged and all(re.match(r"^\d\d:\d\d:\d\d\.\d{3} ", line) for line in logged)
    assert "prefix=" in logged[0]  # the cleanup's structured fields
