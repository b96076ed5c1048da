"""Kept for `from room_recovery.session_guard import guard_session`; see `agent.guard`."""

from .agent.guard import GuardOptions, SessionGuard, guard_session

__all__ = ["GuardOptions", "SessionGuard", "guard_session"]
