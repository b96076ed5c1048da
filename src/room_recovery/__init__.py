"""room-recovery: voice-agent rooms on LiveKit that heal themselves.

Nobody should stay stuck on "Waiting for agent to join...". The entry point is
`RoomManager` (startup and pre-join cleanup over the LiveKit server API); the command
line is `room-recovery` (see cli.py). Errors all derive from `RoomRecoveryError`.
"""

from .errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRoomNameError,
    LiveKitAPIError,
    OutOfScopeError,
    ProcessError,
    RoomRecoveryError,
    ServerUnreachableError,
)
from .manager import RoomManager
from .report import CleanupReport
from .settings import Settings, load_settings

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
