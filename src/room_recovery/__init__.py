"""room-recovery: voice-agent rooms on LiveKit that heal themselves.

Nobody should stay stuck on "Waiting for agent to join...". The entry point is
`RoomManager` (startup and pre-join cleanup over the LiveKit server API); the command
line is `room-recovery` (see cli.py). Errors all derive from `RoomRecoveryError`.
"""

from .core.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRoomNameError,
    LiveKitAPIError,
    OutOfScopeError,
    ProcessError,
    RoomRecoveryError,
    ServerUnreachableError,
)
from .core.manager import RoomManager
from .core.report import CleanupReport
from .core.settings import Settings, load_settings

__all__ = [
    "AuthenticationError",
    "CleanupReport",
    "ConfigurationError",
    "InvalidRoomNameError",
    "LiveKitAPIError",
    "OutOfScopeError",
    "ProcessError",
    "RoomManager",
    "RoomRecoveryError",
    "ServerUnreachableError",
    "Settings",
    "load_settings",
]
