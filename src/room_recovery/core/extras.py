"""Optional extras: what a module needs that the light install leaves out, said in one line.

`pip install room-recovery` gives the RoomManager, the room commands, the watchdog, the
doctor and the page's server. Code that runs inside an agent worker needs `[agent]`
(livekit-agents and the rtc SDK); the demo agent needs `[demo]`.
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

AGENT_MODULES = ("livekit.agents", "livekit.rtc")  # what the [agent] extra brings
DEMO_MODULES = (*AGENT_MODULES, "numpy")  # what the [demo] extra brings


def missing_modules(*modules: str) -> list[str]:
    """The modules of `modules` that cannot be imported here."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            missing.append(module)
    return missing


def require_extra(extra: str, *modules: str, what: str) -> None:
    """Raise MissingExtraError naming `extra` when any of `modules` is missing."""
    missing = missing_modules(*modules)
    if missing:
        raise MissingExtraError(what, extra, missing[0])
