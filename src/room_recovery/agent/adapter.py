"""Everything room-recovery reads of livekit-agents beyond its public API, in one module.

Checked against livekit-agents `CHECKED_VERSIONS`. What it reads, and why:

* `AgentServer._proc_pool`: the pool of job processes. Its `process_job_launched` and
  `process_closed` events tell the worker monitor the moment a job process starts or dies;
  the server learns of a death only ~20 s later.
* `AgentServer._worker_load`: the load the worker last reported to LiveKit (its
  `load_fnc`, every 0.5 s), so that a worker near LiveKit's limit can end the jobs that
  serve nobody (`rules.shedding`); `JobExecutor.aclose()` (from the pool's
  `get_by_job_id`) ends one job gracefully, as LiveKit's own termination does;
  `_refresh_worker_load()` and `_update_worker_status()` then tell LiveKit the new load at
  once, where livekit-agents would tell it within 2.5 s (`report_load`).
* `AgentServer._agent_name`: the name the worker registered with ("" for LiveKit's
  automatic dispatch), for the worker link's hello.
* `JobRequest._on_accept.__closure__`: the AgentServer that made a request (the accept
  callback is a closure over it), so that a request handler can find its worker.
* The call stack (`sys._getframe`): the AgentServer or JobRequest of the code that imports
  `livekit_room_manager`. The guide's request handler imports it *inside* the handler, so
  the first time it runs is inside the first job request, long after registration.
* The log record "registered worker" of the logger `livekit.agents`, whose emitting frame
  holds the AgentServer as `self`: the moment a worker (re)registers.
* `RunningJobInfo.received_at`, `accepted_at`, `assigned_at`, `launched_at` (livekit-agents
  1.8's dispatch timeline, otherwise only on its tracing spans): how long a job spent in
  the request hook, waiting for LiveKit's assignment, and waiting for a process.

Everything else (the job context, its identity, shutdown callbacks) is public API.
`problems()` says what the installed version lacks; `tests/test_agent_adapter.py` fails
with that text, and the monitor logs it once and leaves dead agents to the watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from types import FrameType
from typing import Any

from livekit.agents import AgentServer, JobRequest, get_job_context

logger = logging.getLogger(__name__)

CHECKED_VERSIONS = ("1.8.9",)
SOURCE_LOGGER = "livekit.agents"
REGISTERED_MESSAGE = "registered worker"  # livekit-agents' INFO line on (re)registration
STACK_DEPTH = 60  # frames walked at most to find a worker: cheap, and ends for sure


def installed_version() -> str:
    try:
        return metadata.version("livekit-agents")
    except metadata.PackageNotFoundError:
        return "unknown"


def problems() -> list[str]:
    """What this module reads that the installed livekit-agents lacks (empty when all is there)."""
    found = []
    server = AgentServer()
    if "_worker_load" not in vars(type(server)).get("run", lambda: None).__code__.co_names:
        found.append("AgentServer._worker_load (the load last reported, set in run())")
    for method in ("_refresh_worker_load", "_update_worker_status"):
        if not callable(getattr(server, method, None)):
            found.append(f"AgentServer.{method}() (to tell LiveKit the load at once)")
    if not hasattr(server, "_agent_name"):
        found.append("AgentServer._agent_name (the registered agent name)")
    if "_proc_pool" not in vars(type(server)).get("run", lambda: None).__code__.co_names:
        found.append("AgentServer._proc_pool (the job-process pool, set in run())")
    handle = getattr(type(server), "_handle_register", None)
    if handle is None or REGISTERED_MESSAGE not in handle.__code__.co_consts:
        found.append(f"the {REGISTERED_MESSAGE!r} log line of AgentServer._handle_register")
    request = JobRequest(job=_empty_job(), on_reject=_no_answer, on_accept=_no_answer)
    if not hasattr(request, "_on_accept"):
        found.append("JobRequest._on_accept (the accept callback, a closure over its worker)")
    return [f"{item}; checked against livekit-agents {CHECKED_VERSIONS}" for item in found]


async def _no_answer(*_: object) -> None:
    return None


def _empty_job() -> Any:
    from livekit.protocol import agent

    return agent.Job()


# --- the worker ---------------------------------------------------------------------------


def process_pool(server: Any) -> Any | None:
    """The worker's job-process pool (with `on(event, handler)`), or None before `run()`."""
    pool = getattr(server, "_proc_pool", None)
    return pool if pool is not None and hasattr(pool, "on") else None


def worker_load(server: Any) -> float | None:
    """The load `server` last reported to LiveKit (0 to 1), or None if it cannot be read."""
    load = getattr(server, "_worker_load", None)
    return float(load) if isinstance(load, int | float) else None


async def end_job(server: Any, job_id: str) -> bool:
    """End job `job_id` of `server` gracefully (its agent leaves the room, its process
    exits), as LiveKit's termination of a job does. False if no process runs it."""
    pool = process_pool(server)
    proc = pool.get_by_job_id(job_id) if pool is not None else None
    if proc is None:
        return False
    await proc.aclose()
    return True


async def report_load(server: Any) -> float | None:
    """Tell LiveKit `server`'s load now (as livekit-agents does every 2.5 s): the load sent,
    or None if this livekit-agents cannot."""
    refresh = getattr(server, "_refresh_worker_load", None)
    update = getattr(server, "_update_worker_status", None)
    if refresh is None or update is None:
        return None
    await refresh()
    await update()
    return worker_load(server)


def dispatch_timeline(info: Any) -> tuple[float, float, float] | None:
    """A launched job's seconds in the request hook, then until LiveKit's assignment came,
    then until a process took it; None when livekit-agents does not keep these times."""
    stamps = [getattr(info, f"{stage}_at", 0.0) for stage in _STAGES]
    if not all(isinstance(at, float) and at > 0 for at in stamps):
        return None
    received, accepted, assigned, launched = stamps
    return accepted - received, assigned - accepted, launched - assigned


_STAGES = ("received", "accepted", "assigned", "launched")


def registered_name(server: Any) -> str:
    """The agent name `server` registers with ("" for automatic dispatch)."""
    return str(getattr(server, "_agent_name", "") or "")


def worker_id(server: Any) -> str:
    return str(getattr(server, "id", "") or "")


def server_of_request(request: JobRequest) -> AgentServer | None:
    """The AgentServer that made `request` (its accept callback is a closure over it)."""
    for cell in getattr(getattr(request, "_on_accept", None), "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            if isinstance(cell.cell_contents, AgentServer):
                return cell.cell_contents
    return None


def server_on_stack(frame: FrameType | None) -> AgentServer | None:
    """The AgentServer that the code running in `frame` (or a caller) works for, or None.

    Found as a local of some frame up the stack: the worker itself (`self` in its methods)
    or a JobRequest (a request handler's argument), whose worker is `server_of_request`.
    """
    depth = 0
    while frame is not None and depth < STACK_DEPTH:
        for value in list(frame.f_locals.values()):
            if isinstance(value, AgentServer):
                return value
            if isinstance(value, JobRequest):
                server = server_of_request(value)
                if server is not None:
                    return server
        frame, depth = frame.f_back, depth + 1
    return None


def request_on_stack(frame: FrameType | None) -> JobRequest | None:
    """The JobRequest that the code running in `frame` (or a caller) handles, or None: a
    request handler's argument, found as a local of some frame up the stack."""
    depth = 0
    while frame is not None and depth < STACK_DEPTH:
        for value in list(frame.f_locals.values()):
            if isinstance(value, JobRequest):
                return value
        frame, depth = frame.f_back, depth + 1
    return None


async def decline(request: JobRequest) -> None:
    """Reject `request` for good (no other worker gets it), and make the handler's own
    `accept()` that follows (the guide's block calls it whatever happened) a no-op."""
    await request.reject(terminate=True)
    request._on_accept = _no_answer


def caller_frame(skip: int = 1) -> FrameType | None:
    """The frame `skip` levels above the caller of this function."""
    return sys._getframe(skip + 1)


class _RegistrationHandler(logging.Handler):
    """Calls `on_registered(server)` when livekit-agents logs that a worker registered."""

    def __init__(self, on_registered: Callable[[AgentServer], None]) -> None:
        super().__init__(logging.INFO)
        self.on_registered = on_registered

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != REGISTERED_MESSAGE:
            return
        try:
            server = server_on_stack(sys._getframe(1))
            if server is not None:
                self.on_registered(server)
        except Exception:  # never break the worker's logging
            logger.debug("could not act on the worker's registration", exc_info=True)


def on_registration(on_registered: Callable[[AgentServer], None]) -> None:
    """Call `on_registered(server)` each time a worker of this process registers (idempotent
    per callback: a second call with the same callback installs nothing)."""
    source = logging.getLogger(SOURCE_LOGGER)
    for handler in source.handlers:
        if isinstance(handler, _RegistrationHandler) and handler.on_registered == on_registered:
            return
    # Seen only if the worker logs at INFO (livekit-agents' default): a worker that logs
    # less is still found at its first job request (`server_on_stack`).
    source.addHandler(_RegistrationHandler(on_registered))


# --- the job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentJob:
    """The job this process runs, as its worker's monitor would report it."""

    job_id: str
    room: str
    identity: str
    agent_name: str
    metadata: str
    worker_id: str


def current_job() -> CurrentJob | None:
    """The job of the running entrypoint (public API: `get_job_context`), or None outside one."""
    ctx = get_job_context(required=False)
    if ctx is None:
        return None
    try:
        identity = ctx.local_participant_identity
    except Exception:  # no token yet: nothing to report
        return None
    job = ctx.job
    return CurrentJob(
        job_id=job.id,
        room=job.room.name,
        identity=identity,
        agent_name=job.agent_name,
        metadata=job.metadata,
        worker_id=ctx.worker_id,
    )


def on_job_shutdown(callback: Callable[[str], Any]) -> bool:
    """Run `callback(reason)` (a coroutine function) when the current job shuts down."""
    ctx = get_job_context(required=False)
    if ctx is None:
        return False
    ctx.add_shutdown_callback(callback)
    return True
