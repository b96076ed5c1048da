"""Pre-join cleanup: a livekit-agents request handler that cleans the room, then accepts.

Layer 2 of the spec. Adopt it in any agent by changing one line:

    from room_recovery.agent_hook import request_handler

    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, request_fnc=request_handler))
    # or, with AgentServer:
    @server.rtc_session(agent_name="my-agent", on_request=request_handler)

Before accepting, it runs `RoomManager.ensure_clean_room(room, keep=person)`, where the
person is read from the dispatch metadata (`{"person": "<identity>"}`, see
`dispatch_metadata`). Without it, the policy still keeps every live non-agent participant.

LiveKit gives a request handler under 3 seconds (the server's psrpc deadline) before the job
is lost; the cleanup is therefore bounded (`DEFAULT_CLEANUP_TIMEOUT`). On timeout or any
error it logs a warning and accepts anyway: a dirty room is better than no agent.

The agent joins as `agent-<room>`: if a ghost of an earlier job is still listed, the
server replaces it ("removing duplicate participant") the moment the new agent joins.

Importing this module changes nothing: the worker monitor (`agent.monitor`) attaches at the
first job request, from the handler itself, as it does for the guide's code. The one
import-time side effect room-recovery has is `livekit_room_manager`'s (see its docstring).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from livekit.agents import JobRequest

from ..core.errors import ConfigurationError, OutOfScopeError, RoomRecoveryError
from ..core.manager import RoomManager
from ..core.report import CleanupReport
from ..core.settings import Settings, load_settings
from ..protocol.messages import PERSON_KEY, dispatch_metadata, person_from_metadata
from . import adapter, attach, monitor

logger = logging.getLogger(__name__)

# Re-exported: the metadata format lives in `protocol.messages`, importable without livekit-agents.
__all__ = [
    "PERSON_KEY",
    "PrejoinCleanup",
    "agent_identity",
    "dispatch_metadata",
    "make_request_handler",
    "person_from_metadata",
    "request_handler",
]

DEFAULT_CLEANUP_TIMEOUT = 1.5
REQUEST_DEADLINE = 3.0  # livekit-server's psrpc deadline for the worker's answer


def agent_identity(room_name: str) -> str:
    """The agent's identity in a room: one per room, so a new agent replaces a ghost."""
    return f"agent-{room_name}"


class PrejoinCleanup:
    """A request handler (`JobRequest -> None`): clean the room, then accept the job.

    `settings` default to the environment and `.env`, read at the first request. `timeout`
    bounds the cleanup (it must stay well under LiveKit's 3 s). `identity` names the agent
    in a room. With `clean=False` it only accepts (the benchmark's baseline).
    Raises ConfigurationError when `timeout` is not between 0 and 3 seconds.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        timeout: float = DEFAULT_CLEANUP_TIMEOUT,
        identity: Callable[[str], str] = agent_identity,
        clean: bool = True,
    ) -> None:
        if not 0 < timeout < REQUEST_DEADLINE:
            raise ConfigurationError(
                f"pre-join cleanup timeout {timeout!r} must be between 0 and {REQUEST_DEADLINE:g} "
                "seconds (LiveKit drops a job whose request is not answered within 3 s); "
                f"for example {DEFAULT_CLEANUP_TIMEOUT}"
            )
        self._settings = settings
        self.timeout = timeout
        self.identity = identity
        self.clean = clean

    async def __call__(self, request: JobRequest) -> None:
        room_name = request.room.name
        server = adapter.server_of_request(request)
        if server is not None:
            monitor.attach(server, self._settings)
        if await attach.decline_request_if_served(request, room_name):
            return  # a job of this worker already serves the room
        if self.clean:
            await self.clean_room(room_name, person_from_metadata(request.job.metadata))
        await request.accept(identity=self.identity(room_name), name=request.agent_name or "agent")

    async def clean_room(self, room_name: str, person: str | None) -> CleanupReport | None:
        """Run `ensure_clean_room`, bounded by `timeout`. The report, or None when it failed.

        Never raises (but for cancellation): every failure is logged as a warning.
        """
        started = time.perf_counter()
        fields = {"room": room_name, "person": person, "timeout": self.timeout}
        try:
            settings = self._settings_now()
            async with asyncio.timeout(self.timeout):
                async with RoomManager(settings=settings, request_timeout=self.timeout) as manager:
                    report = await manager.ensure_clean_room(room_name, keep=person or ())
        except OutOfScopeError as exc:
            logger.info("Not cleaning room %s: %s", room_name, exc, extra=fields)
            return None
        except TimeoutError:
            logger.warning(
                "Room cleanup failed: no answer within %gs; joining room %s anyway",
                self.timeout,
                room_name,
                extra=fields,
            )
            return None
        except (RoomRecoveryError, OSError) as exc:
            logger.warning(
                "Room cleanup failed: %s; joining room %s anyway", exc, room_name, extra=fields
            )
            return None
        except Exception as exc:  # a bug here must never cost the person their agent
            logger.warning(
                "Room cleanup failed: %r; joining room %s anyway",
                exc,
                room_name,
                extra=fields,
                exc_info=True,
            )
            return None
        logger.debug(
            "pre-join cleanup done",
            extra=fields
            | {"elapsed": round(time.perf_counter() - started, 4), "summary": report.summary()},
        )
        return report

    def _settings_now(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


def make_request_handler(
    settings: Settings | None = None,
    *,
    timeout: float = DEFAULT_CLEANUP_TIMEOUT,
    identity: Callable[[str], str] = agent_identity,
    clean: bool = True,
) -> PrejoinCleanup:
    """A request handler for `WorkerOptions(request_fnc=...)` or `rtc_session(on_request=...)`.

    See `PrejoinCleanup` for the arguments; raises ConfigurationError for a bad `timeout`.
    """
    return PrejoinCleanup(settings, timeout=timeout, identity=identity, clean=clean)


# The spec's name: `from room_recovery.agent_hook import request_handler`. Settings come
# from the environment and `.env`, read when the first job request arrives.
request_handler = make_request_handler()
