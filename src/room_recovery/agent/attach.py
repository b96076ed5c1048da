"""Where room-recovery finds the agent worker it runs in, whatever the user wrote.

The guide's request handler imports `livekit_room_manager` *inside* the handler, so our code
first runs at the first job request, long after the worker registered; a user may instead
call `ensure_clean_room` from the entrypoint, which runs in the job process, where the
worker is out of reach. `watch_this_process(frame)` is called by `livekit_room_manager` at
its import and before each `ensure_clean_room`, and does what fits where it runs:

* in the worker's process (a request handler, or the worker's own code, on the stack): the
  worker monitor attaches (`monitor.attach`): dead job processes are replaced in place, and
  the worker links to the watchdog;
* in a job process (a job context is set): the job links to the watchdog on its own
  (`job_link`), so that its death is seen the moment its socket closes;
* in any process: the monitor attaches again whenever a worker of this process registers.

Each is done once; every later call costs a few dictionary lookups.
"""

from __future__ import annotations

import logging
from types import FrameType

from livekit.agents import JobRequest

from ..core.settings import Settings
from . import adapter, job_link, monitor

logger = logging.getLogger(__name__)


def watch_this_process(
    frame: FrameType | None, settings: Settings | None = None, *, registering: bool = False
) -> str | None:
    """Watch the worker or job that the code in `frame` runs for (see the module).
    `registering`: called as the worker logs its registration.

    Returns the identity of the current job's agent when called inside a job (so that a
    cleanup from the entrypoint never removes the agent itself), else None.
    """
    monitor.install()
    job = adapter.current_job()
    if job is not None:
        job_link.watch(job, settings)
        return job.identity
    server = adapter.server_on_stack(frame)
    if server is not None:
        monitor.attach(server, settings, registered=registering)
    return None


async def decline_if_served(frame: FrameType | None, room: str) -> bool:
    """In a worker's request handler (a JobRequest on the stack of `frame`): decline the
    request when a job of this worker already serves `room`. True if declined; outside a
    request handler it does nothing."""
    request = adapter.request_on_stack(frame)
    return request is not None and await decline_request_if_served(request, room)


async def decline_request_if_served(request: JobRequest, room: str) -> bool:
    """Decline `request` when a job of its worker already serves `room`
    (`WorkerMonitor.admit`): rejected for good, and the handler's own `accept()` that
    follows does nothing. True if declined; with no monitor on the worker, never."""
    server = adapter.server_of_request(request)
    watching = monitor.attached(server) if server is not None else None
    serving = await watching.admit(room, request.id) if watching is not None else None
    if serving is None:
        return False
    await adapter.decline(request)
    logger.info(
        "🤝 Room %s already has this worker's agent (job %s); declined job %s so that "
        "the room gets no second agent",
        room,
        serving.job_id,
        request.id,
        extra={"room": room, "job_id": request.id, "serving_job": serving.job_id},
    )
    return True
