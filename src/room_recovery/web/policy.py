"""What the page's server decides, without I/O: agents, timing, rooms, grants, leave keys.

`web` serves these; they are kept apart so that they read (and are tested) as rules:

* the agents a person can choose (`parse_agents`: `NAME` or `NAME=Label`);
* the page's timing (`PageConfig`, the spec's 15 s, 3 retries, 1/2/3 s);
* a fresh room per attempt, within `ROOM_PREFIX` (`room_name_for`), and the grant for it
  (`mint_grant`: a one-room token that dispatches the agent, and a leave key);
* the key that lets a closed tab's beacon delete its room (`leave_key`, an HMAC with a
  key derived for that purpose, expiring with the token), and the one that lets the page
  report its session's outcome (`outcome_key`, see `web.outcomes`);
* what a request body must hold (`agent_from_body`, `leave_from_body`);
* the page's Content-Security-Policy.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from ..core.defaults import DEMO_AGENT
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..core.tokens import DEFAULT_TOKEN_TTL, person_token
from ..rules.model import AUTOMATIC, agent_ref, room_name_problem, valid_agent_name

DEFAULT_AGENT = DEMO_AGENT


def content_security_policy(settings: Settings, nodes: Sequence[str] = ()) -> str:
    """The page may load only its own files and talk only to itself and the LiveKit nodes."""
    urls = (settings.ws_url, settings.http_url, *nodes)
    livekit = " ".join(dict.fromkeys(_origin(url) for url in urls))
    return "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {livekit}",
            "media-src 'self' blob: mediastream:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


@dataclass(frozen=True)
class AgentChoice:
    """An agent the person can choose: its dispatch name and the label the page shows."""

    name: str
    label: str = ""
    automatic: bool = False  # LiveKit's automatic dispatch: the token names no agent

    @property
    def display(self) -> str:
        return self.label or self.name

    def to_dict(self) -> dict[str, str | bool]:
        return {"name": self.name, "label": self.display, "automatic": self.automatic}


@dataclass(frozen=True)
class PageConfig:
    """The page's timing, in seconds; the defaults are the spec's.

    join_timeout  wait this long for an agent after starting an attempt (15)
    max_retries   new rooms to try after the first attempt failed (3)
    retry_step    the n-th retry waits n × retry_step (1: 1 s, 2 s, 3 s)
    token_ttl     lifetime of a token (600)

    Raises ConfigurationError when a value is out of range.
    """

    join_timeout: float = 15.0
    max_retries: int = 3
    retry_step: float = 1.0
    token_ttl: float = DEFAULT_TOKEN_TTL

    def __post_init__(self) -> None:
        checks = (
            ("join_timeout", self.join_timeout > 0, "15"),
            ("max_retries", isinstance(self.max_retries, int) and self.max_retries >= 0, "3"),
            ("retry_step", self.retry_step >= 0, "1"),
            ("token_ttl", self.token_ttl >= 10, "600"),
        )
        for name, ok, example in checks:
            if not ok:
                raise ConfigurationError(
                    f"page setting {name}={getattr(self, name)!r} is out of range "
                    f"(for example {name}={example})"
                )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "join_timeout": self.join_timeout,
            "max_retries": self.max_retries,
            "retry_step": self.retry_step,
        }


@dataclass(frozen=True)
class Grant:
    """What the page needs for one attempt; `token` and `leave_key` are for it alone."""

    url: str
    token: str
    room: str
    identity: str
    expires_in: int
    leave_key: str
    outcome_key: str = ""

    def to_dict(self) -> dict[str, str | int]:
        return {
            "url": self.url,
            "token": self.token,
            "room": self.room,
            "identity": self.identity,
            "expires_in": self.expires_in,
            "leave_key": self.leave_key,
            "outcome_key": self.outcome_key,
        }


class BadRequest(Exception):
    """A request the server refuses (400); the message is shown to the person."""


class Forbidden(BadRequest):
    """A request with a key that does not match (403)."""


def parse_agents(specs: Iterable[AgentChoice | str]) -> tuple[AgentChoice, ...]:
    """Agents from choices or `NAME` / `NAME=Label` strings, checked.

    Raises ConfigurationError for an invalid or repeated name, or when there is none.
    """
    choices: list[AgentChoice] = []
    for spec in specs:
        if isinstance(spec, AgentChoice):
            name, label, automatic = spec.name, spec.label, spec.automatic
        else:
            ref, _, label = spec.partition("=")
            (name, automatic), label = agent_ref(ref.strip()), label.strip()
        if not valid_agent_name(name):
            raise ConfigurationError(
                f"agent name {name!r} is invalid: use letters, digits, '-', '_' or '.' "
                f"(at most 64, for example --agent demo-agent, or {AUTOMATIC}my-agent for a "
                "worker without agent_name)"
            )
        if any(choice.name == name for choice in choices):
            raise ConfigurationError(f"agent {name!r} is listed twice; list each agent once")
        choices.append(AgentChoice(name, label, automatic))
    if not choices:
        raise ConfigurationError("no agent to choose from: name one, e.g. --agent demo-agent")
    return tuple(choices)


def new_session_id() -> str:
    """A fresh session id: 12 random hex digits."""
    return secrets.token_hex(6)


def room_name_for(prefix: str, agent: str, session_id: str) -> str:
    """The room of one attempt: `ROOM_PREFIX` + agent + "-" + session id."""
    return f"{prefix}{agent}-{session_id}"


def check_room_name(room: str) -> None:
    """Raise ConfigurationError when LiveKit would refuse this room name."""
    problem = room_name_problem(room)
    if problem is not None:
        raise ConfigurationError(f"room name {room!r} is invalid: {problem}; shorten ROOM_PREFIX")


def mint_grant(
    settings: Settings,
    agent: AgentChoice,
    ttl: float = DEFAULT_TOKEN_TTL,
    *,
    session_id: str | None = None,
    identity: str | None = None,
    now: float | None = None,
) -> Grant:
    """A token for a new room, joinable by one person only, that dispatches `agent`.

    An automatic agent is not named in the token: LiveKit dispatches it to every new room,
    and a room with an explicit dispatch gets no automatic one.

    The dispatch metadata names the person, so the agent's pre-join cleanup keeps them.
    Raises ConfigurationError when the room name would be refused by LiveKit.
    """
    room = room_name_for(settings.room_prefix, agent.name, session_id or new_session_id())
    check_room_name(room)
    identity = identity or f"user-{secrets.token_hex(4)}"
    dispatch = None if agent.automatic else agent.name
    token = person_token(settings, room, identity, dispatch, ttl=ttl, name="Person")
    issued = now or time.time()
    key = leave_key(settings, room, identity, int(issued + ttl))
    report = outcome_key(settings, room, identity, int(issued + OUTCOME_WINDOW))
    return Grant(settings.ws_url, token, room, identity, int(ttl), key, report)


LEAVE_KEY_PURPOSE = b"room-recovery leave-key v1"
OUTCOME_KEY_PURPOSE = b"room-recovery outcome-key v1"
OUTCOME_WINDOW = 6 * 3600  # seconds after its grant a session's outcome may be reported


def _purpose_secret(settings: Settings, purpose: bytes) -> bytes:
    # a key for one purpose only: a leaked leave key says nothing of the API secret's
    # other uses, and no other HMAC made with the secret is a leave (or outcome) key
    secret = settings.livekit_api_secret.encode()
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _room_key(settings: Settings, purpose: bytes, room: str, identity: str, expires: int) -> str:
    message = f"{room}\n{identity}\n{expires}".encode()
    digest = hmac.new(_purpose_secret(settings, purpose), message, hashlib.sha256).hexdigest()
    return f"{expires}.{digest}"


def leave_key(settings: Settings, room: str, identity: str, expires: int) -> str:
    """The key that lets `identity` have room `room` deleted, until `expires` (Unix time,
    the token's expiry): `EXPIRES.HMAC`."""
    return _room_key(settings, LEAVE_KEY_PURPOSE, room, identity, expires)


def outcome_key(settings: Settings, room: str, identity: str, expires: int) -> str:
    """The key that lets `identity`'s page report once how its session went, naming the
    session's last room `room`, until `expires` (Unix time): `EXPIRES.HMAC`."""
    return _room_key(settings, OUTCOME_KEY_PURPOSE, room, identity, expires)


def verify_room_key(
    key: str, make: Callable[[int], str], now: float, what: str, expired: str
) -> None:
    """Raise Forbidden unless `key` is `make(its expiry)`, compared as bytes in constant
    time, and has not expired (then the message is `expired`)."""
    expires_text, _, _ = key.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12:
        raise Forbidden(f"this {what} was not given by this server")
    expires = int(expires_text)
    if not hmac.compare_digest(key.encode(), make(expires).encode()):
        raise Forbidden(f"this {what} was not given for that room and identity")
    if now > expires:
        raise Forbidden(expired)


MAX_FIELD_BYTES = 256  # a room name's limit in LiveKit; identities and keys are shorter


def leave_from_body(body: object, settings: Settings, now: float) -> tuple[str, str]:
    """The (room, identity) of a leave beacon. Raises BadRequest, or Forbidden for a key
    that does not match or has expired."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with room, identity and leave_key")
    values = [body.get(field) for field in ("room", "identity", "leave_key")]
    if not all(isinstance(value, str) and value for value in values):
        raise BadRequest('"room", "identity" and "leave_key" must be non-empty strings')
    room, identity, key = (str(value) for value in values)
    if any(len(value.encode()) > MAX_FIELD_BYTES for value in (room, identity, key)):
        raise BadRequest(f'"room", "identity" and "leave_key" are at most {MAX_FIELD_BYTES} bytes')
    verify_room_key(
        key,
        lambda expires: leave_key(settings, room, identity, expires),
        now,
        "leave_key",
        "this leave_key has expired with its token; the room is left to expire",
    )
    return room, identity


def agent_from_body(body: object, agents: Sequence[AgentChoice]) -> AgentChoice:
    """The agent a token request names. Raises BadRequest saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object like {"agent": "demo-agent"}')
    name = body.get("agent")
    if not isinstance(name, str) or not name:
        raise BadRequest('"agent" must name an agent, for example {"agent": "demo-agent"}')
    for choice in agents:
        if choice.name == name:
            return choice
    known = ", ".join(choice.name for choice in agents)
    raise BadRequest(f"unknown agent {name[:64]!r}; choose one of: {known}")
