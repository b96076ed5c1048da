"""The agent's state as LiveKit's agent front ends read it: the `lk.agent.state` attribute.

livekit-agents' `AgentSession` publishes it by itself; the demo agent publishes it by hand
(`demo.session`), and the page shows it (`web/static/agent.js`).
"""

from __future__ import annotations

from typing import Final, Literal

AGENT_STATE_ATTRIBUTE: Final = "lk.agent.state"

AgentState = Literal["initializing", "listening", "thinking", "speaking"]
AGENT_STATES: Final[tuple[AgentState, ...]] = ("initializing", "listening", "thinking", "speaking")
