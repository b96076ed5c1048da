"""The spec's module name: `from livekit_room_manager import RoomManager` keeps working.

The implementation lives in the `room_recovery` package; this module only re-exports it.
"""

from room_recovery import RoomManager

__all__ = ["RoomManager"]
