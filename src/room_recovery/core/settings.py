"""Settings, read once from the environment and a `.env` file, validated, passed down.

Names and defaults are the spec's (`ROOM_RECOVERY_GUIDE.md`, "Environment Variables"):

    LIVEKIT_URL          ws://localhost:7880   server address (ws, wss, http or https)
    LIVEKIT_API_KEY      devkey                the server's API key
    LIVEKIT_API_SECRET   secret                its secret (never sent to a browser)
    ROOM_STALE_TIMEOUT   300                   seconds before a room or participant is stale
    ROOM_PREFIX          "" (all rooms)        only rooms whose name starts with it are touched
    ROOM_STALE_SILENT    false                 also remove an ACTIVE participant that has
                                               published nothing for ROOM_STALE_TIMEOUT (opt-in)

and, set by `up` and `units` (or by you, for a worker or page server you run yourself):

    ROOM_RECOVERY_WATCHDOG_URL    where agent workers link to the watchdog ("" : no link;
                                  a cluster's watchdogs: comma-separated, one link to each)
    ROOM_RECOVERY_WORKER_MONITOR  off: a worker watches none of its jobs (benchmarks' baseline)
    ROOM_RECOVERY_ANNOUNCE        off: new agents do not announce themselves
    ROOM_RECOVERY_NODE_MODULES    where the page's npm packages are (default: the project's)

(The page server's limits and sign-in header, and REDIS_URL, are documented with their
fields below; where `up` keeps its state and finds livekit-server, in `system.options`.)

Anything else in `.env` is ignored. A bad value fails at once with a ConfigurationError
that names the variable and an example of a good value.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_URL = "ws://localhost:7880"
DEFAULT_STALE_TIMEOUT = 300.0
_URL_SCHEMES = ("ws", "wss", "http", "https")
_MIN_SECRET_BYTES = 32

# What to say when a field is wrong: the variable's name and a value that works.
_HINTS: dict[str, tuple[str, str]] = {
    "livekit_url": ("LIVEKIT_URL", "ws://localhost:7880"),
    "livekit_api_key": ("LIVEKIT_API_KEY", "devkey"),
    "livekit_api_secret": ("LIVEKIT_API_SECRET", "secret"),
    "room_stale_timeout": ("ROOM_STALE_TIMEOUT", "300"),
    "room_prefix": ("ROOM_PREFIX", "voice-"),
    "room_stale_silent": ("ROOM_STALE_SILENT", "false"),
    "room_recovery_token_rate": ("ROOM_RECOVERY_TOKEN_RATE", "30"),
    "room_recovery_token_rooms": ("ROOM_RECOVERY_TOKEN_ROOMS", "10"),
    "room_recovery_token_total_rooms": ("ROOM_RECOVERY_TOKEN_TOTAL_ROOMS", "1000"),
    "room_recovery_metrics_from": ("ROOM_RECOVERY_METRICS_FROM", "10.0.0.0/8"),
    "room_recovery_agent_idle_processes": ("ROOM_RECOVERY_AGENT_IDLE_PROCESSES", "1"),
    "redis_url": ("REDIS_URL", "redis://127.0.0.1:6379/0"),
}


class Settings(BaseSettings):
    """The validated settings of one deployment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    livekit_url: str = DEFAULT_URL
    livekit_api_key: str = Field(default="devkey", min_length=1)
    livekit_api_secret: str = Field(default="secret", min_length=1, repr=False)
    room_stale_timeout: float = Field(default=DEFAULT_STALE_TIMEOUT, gt=0)
    room_prefix: str = ""
    # publishing nothing is no proof of anything (a listener, a transcriber): opt-in only
    room_stale_silent: bool = False
    # several watchdogs elect one leader through it (`watchdog.leader`); may hold a password
    redis_url: str = Field(default="", repr=False)
    # the page server's bounds per client (0: none), and an optional sign-in header
    room_recovery_token_rate: float = Field(default=30.0, ge=0)  # tokens a minute
    room_recovery_token_rooms: int = Field(default=10, ge=0)  # rooms open at once
    room_recovery_token_total_rooms: int = Field(default=1000, ge=0)  # ...for all clients
    room_recovery_token_auth_header: str = ""  # e.g. X-App-Auth: your proxy adds it...
    room_recovery_token_auth: str = Field(default="", repr=False)  # ...with this value
    # who may read the page server's /metrics besides this machine: networks, comma-separated
    room_recovery_metrics_from: str = ""
    # the demo agent's warm job processes (`room-recovery agent --idle-processes`); None: 3
    room_recovery_agent_idle_processes: int | None = Field(default=None, ge=0)
    # read in an agent worker's own process (`process_settings`); `up` sets them
    room_recovery_watchdog_url: str = ""
    room_recovery_worker_monitor: bool = True
    room_recovery_announce: bool = True
    room_recovery_node_modules: str = ""  # the page server's npm packages; "" : the project's

    @field_validator("room_recovery_agent_idle_processes", mode="before")
    @classmethod
    def _empty_is_the_default(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("livekit_url")
    @classmethod
    def _url_has_a_known_scheme(cls, value: str) -> str:
        parsed = urlparse(value.strip())
        if parsed.scheme not in _URL_SCHEMES or not parsed.netloc:
            raise ValueError("must start with ws://, wss://, http:// or https:// and name a host")
        return value.strip().rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_has_a_known_scheme(cls, value: str) -> str:
        value = value.strip()
        if value and urlparse(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty)")
        try:
            urlparse(value).port  # noqa: B018 (it raises for a port that is no number)
        except ValueError:
            raise ValueError("its port must be a number, as in redis://host:6379/0") from None
        return value

    @property
    def http_url(self) -> str:
        """The server's address for HTTP calls (ws → http, wss → https)."""
        parsed = urlparse(self.livekit_url)
        scheme = {"ws": "http", "wss": "https"}.get(parsed.scheme, parsed.scheme)
        return parsed._replace(scheme=scheme).geturl()

    @property
    def ws_url(self) -> str:
        """The server's address for clients (http → ws, https → wss)."""
        parsed = urlparse(self.livekit_url)
        scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
        return parsed._replace(scheme=scheme).geturl()

    def in_scope(self, room_name: str) -> bool:
        """Whether a room belongs to this deployment (always, when ROOM_PREFIX is empty)."""
        return room_name.startswith(self.room_prefix)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`, with explicit values taking precedence.

    Overrides that are None are ignored, so callers can pass optional arguments straight
    through. Raises ConfigurationError naming the variable when a value is invalid.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    _quiet_short_secret_warnings(settings)
    return settings


# Set per process by `up` and `units` (each part gets its own), never in a shared env file.
PER_PROCESS_FIELDS = frozenset(
    {
        "room_recovery_watchdog_url",
        "room_recovery_worker_monitor",
        "room_recovery_announce",
        "room_recovery_node_modules",
    }
)


@functools.cache
def process_settings() -> Settings:
    """This process's settings, read once: for code that runs inside a user's agent worker,
    where nobody passed settings down. A bad value there is logged, and the defaults used:
    the worker must run on, without room-recovery's extras if need be."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        logger.warning("room-recovery uses its defaults in this process: %s", exc)
        return Settings.model_construct()


_SECRETS = {"livekit_api_secret", "room_recovery_token_auth"}  # never repeated in a message


def redacted_url(url: str) -> str:
    """A URL without its user and password, for messages and logs."""
    parsed = urlparse(url)
    if not parsed.scheme:
        return "(not a URL)"
    port = f":{parsed.port}" if parsed.port else ""
    path = parsed.path if parsed.scheme == "unix" else ""
    return f"{parsed.scheme}://{parsed.hostname or ''}{port}{path}"


class _Hidden:
    def __repr__(self) -> str:
        return "(hidden)"


def _shown(field: str, value: object) -> object:
    if field in _SECRETS:
        return _Hidden()
    if field == "redis_url" and isinstance(value, str):
        try:
            return redacted_url(value)
        except ValueError:  # a port that is not a number
            return _Hidden()
    return value


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        variable, example = _HINTS.get(field, (field.upper(), "…"))
        got = _shown(field, error.get("input"))
        reason = error["msg"].removeprefix("Value error, ")
        problems.append(
            f"{variable}={got!r} is invalid: {reason} (for example {variable}={example})"
        )
    return "; ".join(problems) + ". Fix it in the environment or in .env."


def _quiet_short_secret_warnings(settings: Settings) -> None:
    """The spec's dev secret is short; say so once instead of PyJWT warning on every token."""
    if len(settings.livekit_api_secret.encode()) >= _MIN_SECRET_BYTES:
        return
    try:
        from jwt.warnings import InsecureKeyLengthWarning
    except ImportError:  # older PyJWT has no such warning
        return
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    logger.debug(
        "LIVEKIT_API_SECRET is shorter than 32 bytes: fine for `livekit-server --dev`, "
        "use a long secret in production"
    )
