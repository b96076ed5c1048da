"""The worker link: how an agent worker tells the watchdog which jobs it runs, and when one dies.

A SIGKILLed agent stays ACTIVE on the server for about 20 s, and LiveKit's dispatch job
states never change when a job dies (see the README's LiveKit facts). The worker process,
where the request hook runs, knows at once: its job processes are its children. So each
worker keeps one WebSocket open to the watchdog (`LINK_PATH`) and sends, as JSON text:

    {"type": "hello", "worker": ID, "agent_name": NAME, "jobs": [JOB, ...],
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

One message per worker and per job start or end: nothing is sent per room while all is well.
The worker finds the watchdog at `WATCHDOG_URL_VARIABLE` (set by `room-recovery up`) and
proves itself with a short-lived token signed with the LiveKit API secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

LINK_PATH = "/api/workers"
WATCHDOG_URL_VARIABLE = "ROOM_RECOVERY_WATCHDOG_URL"
LINK_PING = 2.0  # seconds between the watchdog's pings on a link
LINK_STALL = 5.0  # seconds without a word (or pong) after which a link is stalled, not dead
HELLO = "hello"
WORKER = "worker"  # a hello's kind: a worker process, reporting all its jobs
JOB = "job"  # ...or one job process, reporting itself
JOB_STARTED = "job_started"
JOB_ENDED = "job_ended"


class MalformedLinkMessage(ValueError):
    """A link message that is not JSON, or lacks a field (the message says which)."""


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
        try:
            return cls(
                job_id=str(data["job_id"]),
                room=str(data["room"]),
                identity=str(data["identity"]),
                agent_name=str(data.get("agent_name", "")),
                metadata=str(data.get("metadata", "")),
                sid=str(data.get("sid", "")),
            )
        except KeyError as exc:
            raise MalformedLinkMessage(f"a job lacks {exc.args[0]!r}") from None


def hello(
    worker: str,
    agent_name: str,
    jobs: list[JobRecord],
    kind: str = WORKER,
    *,
    registered: bool = True,
) -> str:
    return json.dumps(
        {
            "type": HELLO,
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
    if not isinstance(data, dict) or data.get("type") not in (HELLO, JOB_STARTED, JOB_ENDED):
        raise MalformedLinkMessage(f"unknown message: {text[:80]!r}")
    return data
