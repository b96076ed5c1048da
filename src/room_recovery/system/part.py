"""A part of the voice system, as the supervisor sees it: what it is, how it is now, and
how its process is started.

`PartSpec` says how to run a part and tell it is healthy; `PartState` is what the
supervisor knows of it now (written to status.json); a `PartObserver` is told when the
part prints its ready line and when it exits (`registrations`); `start_process` starts it
in a process group of its own and `exit_of` tells when it exited.
"""

from __future__ import annotations

import asyncio
from asyncio.subprocess import Process
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ..core.health import PartHealth, Verdict
from .processes import die_with_parent


@dataclass(frozen=True)
class PartSpec:
    """One process of the system and how to tell it is healthy."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    port: int | None = None
    ready_timeout: float = 30.0
    stop_grace: float = 10.0
    settle: float = 0.0  # without a health URL: healthy once alive this long...
    ready_line: str | None = None  # ...or sooner, once its output shows this text
    health_every: float = 2.0  # seconds between health checks, for the part's whole life
    unhealthy_after: float = 10.0  # stalled or silent this long: the part is restarted


class PartObserver(Protocol):
    """Told when a part prints its ready line, and when it exits (`registrations`)."""

    def registered(self, line: str) -> str | None:
        """The part printed `line` (its ready line); a problem that must stop it, or None."""
        ...

    async def exited(self) -> None: ...


class PartStatus(StrEnum):
    """Where a supervised part is in its life (`status`, status.json)."""

    STARTING = "starting"  # started, not yet healthy
    HEALTHY = "healthy"
    FAILING = Verdict.FAILING.value  # runs, but what it needs fails: shown, not restarted
    UNHEALTHY = "unhealthy"  # stalled or silent: killed and restarted if it stays so
    RESTARTING = "restarting"  # died; waiting out the backoff
    FAILED = "failed"  # died too often: not restarted until `room-recovery restart`
    STOPPED = "stopped"


def part_status(health: PartHealth) -> PartStatus:
    """A running part's state after a look at its health."""
    if health.needs_restart:
        return PartStatus.UNHEALTHY
    return PartStatus.HEALTHY if health.healthy else PartStatus(health.verdict.value)


@dataclass
class PartState:
    """What the supervisor knows of a part right now (written to status.json)."""

    spec: PartSpec
    state: PartStatus = PartStatus.STOPPED
    pid: int | None = None
    restarts: int = 0
    crash_times: list[float] = field(default_factory=list)
    last_exit: int | None = None
    problem: str | None = None  # what its last health check said, when not healthy
    process: asyncio.subprocess.Process | None = None
    log_task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its ready_line was seen
    exited: asyncio.Event = field(default_factory=asyncio.Event)  # its process exited
    misconfigured: str | None = None  # why it cannot work as configured (its observer says)

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.pid,
            "port": self.spec.port,
            "health_url": self.spec.health_url,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "problem": self.problem,
        }


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol, plus an event set the moment the process exits."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def start_process(
    argv: tuple[str, ...], env: Mapping[str, str]
) -> tuple[Process, asyncio.Event]:
    """Start a part: output piped (stderr into stdout), in a session and process group of
    its own, SIGTERMed if the supervisor dies. Returns it and an event set when it exits
    (not `process.wait()`: on Python 3.11 that also waits for its output pipes to close,
    and a worker that a wrapper started holds them after the wrapper is gone)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitProtocol(2**16, loop),
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,  # its own process group: stopped as a whole
        preexec_fn=die_with_parent,
    )
    return Process(transport, protocol, loop), protocol.exited


async def exit_of(part: PartState) -> int:
    """The part's exit code, once it exited."""
    await part.exited.wait()
    process = part.process
    return process.returncode if process and process.returncode is not None else -1
