"""Kept for `from room_recovery.agent_hook import request_handler`; see `agent.hook`."""

from .agent.hook import (
    DEFAULT_CLEANUP_TIMEOUT,
    PrejoinCleanup,
    agent_identity,
    dispatch_metadata,
    make_request_handler,
    person_from_metadata,
    request_handler,
)

__all__ = [
    "DEFAULT_CLEANUP_TIMEOUT",
    "PrejoinCleanup",
    "agent_identity",
    "dispatch_metadata",
    "make_request_handler",
    "person_from_metadata",
    "request_handler",
]
