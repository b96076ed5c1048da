"""Every error room-recovery raises on purpose, rooted in one base class.

    RoomRecoveryError
     ├── ConfigurationError        a setting is missing or invalid (names the variable)
     ├── ServerUnreachableError    nothing answers at LIVEKIT_URL (names the URL)
     ├── AuthenticationError       the server refused LIVEKIT_API_KEY / LIVEKIT_API_SECRET
     ├── InvalidRoomNameError      a room name LiveKit would refuse
     ├── OutOfScopeError           a room outside ROOM_PREFIX; it is never touched
     ├── LiveKitAPIError           any other refusal by the server (carries its code)
     ├── ProcessError              a process the project runs could not start or stop
     ├── NotLeading                a watchdog that does not (or no longer) lead may not act
     └── MissingExtraError         an optional extra is not installed (also an ImportError)

Each message says what failed, with which value, and what to do about it; the CLI
prints it as one line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class RoomRecoveryError(Exception):
    """Base class: catch this to handle every error of this package."""

    exit_code = 1


class NotLeading(RoomRecoveryError):
    """This watchdog is not the leader (or no longer is): it must not act. Never a failure
    to report: a step that meets it stops, and the leader acts instead."""


class ConfigurationError(RoomRecoveryError):
    """A setting (environment, .env or argument) is missing or invalid."""

    exit_code = 2


class ServerUnreachableError(RoomRecoveryError):
    """The LiveKit server did not answer at the configured URL."""

    exit_code = 3

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"LiveKit server unreachable at {url} ({detail}). Is livekit-server running? "
            "Start it with `room-recovery up`, or set LIVEKIT_URL to the server's address."
        )


class AuthenticationError(RoomRecoveryError):
    """The server refused the API key or secret."""

    exit_code = 4

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.api_key = api_key
        super().__init__(
            f"LiveKit at {url} rejected API key {api_key!r}: LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET must match a key pair in the server's config "
            "(`--dev` uses devkey / secret)."
        )


class InvalidRoomNameError(RoomRecoveryError):
    """A room name that LiveKit would refuse (empty, or longer than 256 bytes)."""

    exit_code = 2


class OutOfScopeError(RoomRecoveryError):
    """A room whose name lies outside ROOM_PREFIX: room-recovery leaves it alone."""

    exit_code = 2

    def __init__(self, room_name: str, prefix: str) -> None:
        self.room_name = room_name
        self.prefix = prefix
        super().__init__(
            f"room {room_name!r} is outside this deployment's scope ROOM_PREFIX={prefix!r}; "
            "it belongs to another application and is left alone. Unset ROOM_PREFIX (or "
            "change it) to manage that room."
        )


class LiveKitAPIError(RoomRecoveryError):
    """The server refused a request for another reason; `code` is LiveKit's error code."""

    def __init__(self, action: str, code: str, message: str) -> None:
        self.action = action
        self.code = code
        super().__init__(f"LiveKit refused to {action}: {message or code} ({code})")


class ProcessError(RoomRecoveryError):
    """A process the project runs (server, worker, web) could not be started or stopped."""


class MissingExtraError(RoomRecoveryError, ImportError):
    """A part of room-recovery needs an optional extra that is not installed."""

    exit_code = 2

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs {module}, which is not installed: pip install 'room-recovery[{extra}]'"
        )
