"""The agent's heartbeat as it travels: a participant attribute set to a new value often.

A SIGKILLed agent stays ACTIVE on the server for about 20 s, so the server's view cannot
reveal it. Each agent therefore sets the attribute `HEARTBEAT_ATTRIBUTE` to a new value
every `HEARTBEAT_INTERVAL` seconds (`agent.heartbeat` sends it); the watchdog judges
only whether the value *changes* (`rules.liveness`), never what it says, so the clocks of
the two machines do not matter.
"""

from __future__ import annotations

from collections.abc import Mapping

HEARTBEAT_ATTRIBUTE = "room_recovery.heartbeat"
HEARTBEAT_INTERVAL = 0.5  # seconds between two values


def heartbeat_value(count: int, now: float) -> str:
    """The attribute's value for beat number `count` at wall-clock time `now`."""
    return f"{count}:{now:.3f}"


def heartbeat_of(attributes: Mapping[str, str]) -> str | None:
    """A participant's current heartbeat value, or None when it sends none."""
    return attributes.get(HEARTBEAT_ATTRIBUTE)


def heartbeat_time(value: str | None) -> float | None:
    """The wall-clock time a heartbeat value was sent at, or None when it has none."""
    if not value:
        return None
    try:
        return float(value.rsplit(":", 1)[-1])
    except ValueError:
        return None
