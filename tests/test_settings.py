"""Settings come from the environment and .env with the spec's names and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from room_recovery.core.errors import ConfigurationError
from room_recovery.core.settings import PER_PROCESS_FIELDS, load_settings, process_settings
from room_recovery.system.units import env_file_text

VARIABLES = [
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "ROOM_STALE_TIMEOUT",
    "ROOM_PREFIX",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_specs() -> None:
    settings = load_settings()
    assert settings.livekit_url == "ws://localhost:7880"
    assert settings.livekit_api_key == "devkey"
    assert settings.livekit_api_secret == "secret"
    assert settings.room_stale_timeout == 300
    assert settings.room_prefix == ""


def test_the_specs_env_file_is_read_including_its_inline_comment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# LiveKit connection\n"
        "LIVEKIT_URL=ws://127.0.0.1:7999\n"
        "LIVEKIT_API_KEY=mykey\n"
        "LIVEKIT_API_SECRET=mysecret\n"
        "ROOM_STALE_TIMEOUT=120  # Seconds before room considered stale (default: 300)\n"
        "OTHER_APP_SETTING=ignored\n"
    )
    settings = load_settings()
    assert settings.livekit_url == "ws://127.0.0.1:7999"
    assert (settings.livekit_api_key, settings.livekit_api_secret) == ("mykey", "mysecret")
    assert settings.room_stale_timeout == 120


def test_the_environment_wins_over_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("ROOM_PREFIX=from-file-\n")
    monkeypatch.setenv("ROOM_PREFIX", "from-env-")
    assert load_settings().room_prefix == "from-env-"


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOM_STALE_TIMEOUT", "60")
    assert load_settings(room_stale_timeout=10).room_stale_timeout == 10


@pytest.mark.parametrize("value", ["0", "-5", "five minutes"])
def test_a_timeout_that_is_not_a_positive_number_names_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOM_STALE_TIMEOUT", value)
    with pytest.raises(ConfigurationError, match="ROOM_STALE_TIMEOUT") as error:
        load_settings()
    assert "ROOM_STALE_TIMEOUT=300" in str(error.value)


@pytest.mark.parametrize("value", ["localhost:7880", "ftp://host", "ws://"])
def test_a_url_without_a_known_scheme_names_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", value)
    with pytest.raises(ConfigurationError, match="LIVEKIT_URL"):
        load_settings()


@pytest.mark.parametrize(
    ("given", "http", "ws"),
    [
        ("ws://h:7880", "http://h:7880", "ws://h:7880"),
        ("wss://h.example/", "https://h.example", "wss://h.example"),
        ("http://h:1", "http://h:1", "ws://h:1"),
    ],
)
def test_the_url_is_given_to_http_and_websocket_clients_alike(
    given: str, http: str, ws: str
) -> None:
    settings = load_settings(livekit_url=given)
    assert (settings.http_url, settings.ws_url) == (http, ws)


def test_room_prefix_scopes_rooms() -> None:
    settings = load_settings(room_prefix="voice-")
    assert settings.in_scope("voice-123")
    assert not settings.in_scope("other-app-room")
    assert load_settings().in_scope("anything")


@pytest.mark.parametrize(
    ("setting", "secret"),
    [
        ({"redis_url": "http://:hunter2@redis.internal:6379/0"}, "hunter2"),
        ({"redis_url": "redis://:hunter2@redis.internal:port/0"}, "hunter2"),
        ({"livekit_api_secret": ""}, "LIVEKIT_API_SECRET=''"),
    ],
)
def test_a_bad_setting_never_repeats_a_secret(setting: dict[str, str], secret: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**setting)
    assert secret not in str(refused.value)


def test_a_worker_process_reads_its_switches_and_watchdog_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROOM_RECOVERY_WORKER_MONITOR", "off")
    monkeypatch.setenv("ROOM_RECOVERY_WATCHDOG_URL", "http://127.0.0.1:8082/")
    process_settings.cache_clear()
    try:
        settings = process_settings()
        assert settings.room_recovery_worker_monitor is False
        assert settings.room_recovery_announce is True
        assert settings.room_recovery_watchdog_url == "http://127.0.0.1:8082/"
        # a bad value elsewhere must not stop the user's worker: the defaults, and a warning
        monkeypatch.setenv("LIVEKIT_URL", "localhost:7880")
        process_settings.cache_clear()
        assert process_settings().room_recovery_worker_monitor is True
    finally:
        process_settings.cache_clear()


def test_the_env_file_units_write_holds_no_setting_of_one_process(tmp_path: Path) -> None:
    settings = load_settings(room_recovery_watchdog_url="http://127.0.0.1:8082")
    text = env_file_text(settings)
    assert "LIVEKIT_URL=" in text
    assert all(name.upper() not in text for name in PER_PROCESS_FIELDS)
