"""The worker link: how an agent worker tells the watchdog which jobs it runs, and when one dies.

A SIGKILLed agent stays ACTIVE on the server for about 20 s, and LiveKit's dispatch job
states never change when a job dies (see the README's LiveKit facts). The worker process,
where the request hook runs, knows at once: its job processes are its children. So each
worker keeps one WebSocket open to the watchdog (`LINK_PATH`) and sends, as JSON text:

    {"type": "hello", "link": LINK, "worker": ID, "agent_name": NAME, "jobs": [JOB, ...],
     "kind": "worker"|"job", "registered": true|false}           on (re)connect
    {"type": "job_started", "job": JOB}                          a job process got a job
    {"type": "job_ended", "job": JOB, "died": true|false}        it exited (died: not cleanly)

where JOB is `JobRecord.to_dict()`. When the whole worker dies, the kernel closes its
socket: the watchdog sees the link close at once, and every job it listed is dead. That is
the only proof a link gives. A stalled worker (SIGSTOP) keeps its socket open: it answers
no ping (`LINK_PING`), so after `LINK_STALL` seconds of silence it no longer vouches for its
agents (they are judged by their own signals), but nothing of it is removed; when it
answers again, it vouches again.

A link of kind "job" comes from one job process whose worker runs no monitor (the user
calls room-recovery from the entrypoint only): its one job is lost when it closes without
saying `job_ended` first, unless a worker link reports that job too (the worker knows better).

A hello with `"registered": true` is sent the moment a worker (re)registers with LiveKit:
people waiting for its agent get it now (a dispatch made while no worker was registered was
dropped). A worker that links later (at its first job request) says false. A link with no
jobs says only that a worker of that agent is registered: `room-recovery up` opens one for
each agent worker it runs, the moment the worker logs its registration.

A pre-join cleanup that would remove an agent on its own judgement (a silent heartbeat, an
earlier join) first asks the watchdog `GET ALIVE_PATH?room=NAME` with a link token: the
agents of that room whose worker vouches for them now are kept (`core.link.ask_alive`).

One message per worker and per job start or end: nothing is sent per room while all is well.
The worker finds the watchdog at `WATCHDOG_URL_VARIABLE` (set by `room-recovery up`) and
proves itself with a link token (`link_token`): a JWT good for `LINK_TOKEN_TTL` seconds,
for one link id (the hello's "link" must be the token's subject), signed with a key derived
from the API secret for this purpose only (`link_key`). So only a holder of the API secret
can link; a LiveKit token (an agent's job token, say), signed with the secret itself, is
refused; and a link token is no LiveKit credential. Across machines the link must use TLS
(`https://`/`wss://`): the client refuses a plain one (`needs_tls`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import jwt

LINK_PATH = "/api/workers"
ALIVE_PATH = "/api/alive"  # GET ?room=NAME, a link token as Bearer: {"room", "alive": [identity]}
WATCHDOG_URL_VARIABLE = "ROOM_RECOVERY_WATCHDOG_URL"
LINK_PING = 2.0  # seconds between the watchdog's pings on a link
LINK_STALL = 5.0  # seconds without a word (or pong) after which a link is stalled, not dead
REPLACING_HOLD = 6.0  # a worker that reports a job died is replacing its agent in place (its
# monitor's bound on one replacement is 5 s): no other dispatch to that room meanwhile
HELLO = "hello"
WORKER = "worker"  # a hello's kind: a worker process, reporting all its jobs
JOB = "job"  # ...or one job process, reporting itself
JOB_STARTED = "job_started"
JOB_ENDED = "job_ended"


MAX_FIELD = 512  # characters in a name or id (LiveKit's are at most 256 bytes)
MAX_METADATA = 65_536  # characters of a job's dispatch metadata
MAX_JOBS = 10_000  # jobs in one hello


LINK_KEY_PURPOSE = b"room-recovery worker-link v1"
LINK_AUDIENCE = "room-recovery-link"
LINK_TOKEN_TTL = 60  # seconds: a link token is made afresh for each connection
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class MalformedLinkMessage(ValueError):
    """A link message that is not JSON, or lacks a field (the message says which)."""


class LinkRefused(ValueError):
    """A link whose credential is not valid (the message says why; the peer gets 401)."""


def link_key(api_secret: str) -> bytes:
    """The key that signs link tokens: derived from the API secret for links only."""
    return hmac.new(api_secret.encode(), LINK_KEY_PURPOSE, hashlib.sha256).digest()


def link_token(
    api_key: str, api_secret: str, link: str, now: float | None = None, ttl: float = LINK_TOKEN_TTL
) -> str:
    """A token for one link (`link`, its id), valid for `ttl` seconds."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": api_key,
        "sub": link,
        "aud": LINK_AUDIENCE,
        "iat": issued,
        "exp": issued + int(ttl),
    }
    return jwt.encode(claims, link_key(api_secret), algorithm="HS256")


def verify_link_token(token: str, api_key: str, api_secret: str) -> str:
    """The link id a valid link token was made for; LinkRefused saying why otherwise."""
    try:
        claims = jwt.decode(
            token,
            link_key(api_secret),
            algorithms=["HS256"],
            audience=LINK_AUDIENCE,
            issuer=api_key,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise LinkRefused("the link token has expired") from None
    except jwt.PyJWTError:
        raise LinkRefused(
            "not a link token signed with this deployment's key (a LiveKit token is not one)"
        ) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_FIELD:
        raise LinkRefused("the link token names no link")
    return subject


def needs_tls(url: str) -> bool:
    """Whether a link to `url` would cross machines in clear (http/ws to another host)."""
    parsed = urlparse(url)
    return parsed.scheme in ("http", "ws") and (parsed.hostname or "") not in LOOPBACK


@dataclass(frozen=True)
class JobRecord:
    """One job as its worker saw it: where its agent is, and how to send one like it again.

    `agent_name` is "" for an agent of LiveKit's automatic dispatch; `metadata` is the
    job's dispatch metadata (it names the person, see `protocol.messages`).
    """

    job_id: str
    room: str
    identity: str
    agent_name: str = ""
    metadata: str = ""
    sid: str = ""  # the agent's participant sid, when the reporter knows it

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> JobRecord:
        if not isinstance(data, dict):
            raise MalformedLinkMessage(f"a job must be an object, got {data!r}")
        fields = {}
        for name, required in _JOB_FIELDS.items():
            value = data.get(name, None if required else "")
            if not isinstance(value, str):
                raise MalformedLinkMessage(f"a job's {name!r} must be a string")
            limit = MAX_METADATA if name == "metadata" else MAX_FIELD
            if len(value) > limit or (required and not value):
                raise MalformedLinkMessage(f"a job's {name!r} is empty or too long")
            fields[name] = value
        return cls(**fields)


_JOB_FIELDS = {  # field -> required
    "job_id": True,
    "room": True,
    "identity": True,
    "agent_name": False,
    "metadata": False,
    "sid": False,
}


def hello(
    worker: str,
    agent_name: str,
    jobs: list[JobRecord],
    kind: str = WORKER,
    *,
    registered: bool = True,
    link: str = "",
) -> str:
    """`link`: the link's id, as its token names it (the client sets it)."""
    return json.dumps(
        {
            "type": HELLO,
            "link": link,
            "worker": worker,
            "agent_name": agent_name,
            "jobs": [job.to_dict() for job in jobs],
            "kind": kind,
            "registered": registered,
        }
    )


def job_started(job: JobRecord) -> str:
    return json.dumps({"type": JOB_STARTED, "job": job.to_dict()})


def job_ended(job: JobRecord, died: bool) -> str:
    return json.dumps({"type": JOB_ENDED, "job": job.to_dict(), "died": died})


def decode(text: str) -> dict[str, Any]:
    """A link message as a dict with a known "type"; MalformedLinkMessage otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedLinkMessage(f"not JSON: {text[:80]!r}") from None
    except RecursionError:
        raise MalformedLinkMessage("JSON nested too deeply") from None
    if not isinstance(data, dict) or data.get("type") not in (HELLO, JOB_STARTED, JOB_ENDED):
        raise MalformedLinkMessage(f"unknown message: {text[:80]!r}")
    if data["type"] == HELLO:
        jobs = data.get("jobs", [])
        if not isinstance(jobs, list) or len(jobs) > MAX_JOBS:
            raise MalformedLinkMessage(f"a hello's jobs must be a list of at most {MAX_JOBS}")
        for name in ("link", "worker", "agent_name"):
            if not isinstance(data.get(name, ""), str) or len(data.get(name, "")) > MAX_FIELD:
                raise MalformedLinkMessage(f"a hello's {name!r} must be a short string")
    return data
