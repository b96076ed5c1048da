"""What room-recovery reads of livekit-agents beyond its public API is there, in this version.

Every such read lives in `room_recovery.agent.adapter`; if an upgrade of livekit-agents
removes one, this test names it (and the monitor logs the same text at run time, leaving
dead agents to the watchdog's slower signals).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from livekit.agents import AgentServer

from room_recovery.agent import adapter


def test_the_installed_livekit_agents_has_everything_the_adapter_reads() -> None:
    assert adapter.problems() == [], (
        f"livekit-agents {adapter.installed_version()} lacks what room-recovery reads: "
        + "; ".join(adapter.problems())
    )


def test_the_installed_livekit_agents_is_a_version_the_adapter_was_checked_against() -> None:
    assert adapter.installed_version() in adapter.CHECKED_VERSIONS, (
        f"livekit-agents {adapter.installed_version()} is not among the versions "
        f"{adapter.CHECKED_VERSIONS} the adapter was checked against: read it again"
    )


def _inside_the_worker(self: AgentServer) -> AgentServer | None:
    return adapter.server_on_stack(adapter.caller_frame(0))


def test_a_worker_is_found_from_the_code_it_runs_for_and_nowhere_else() -> None:
    assert isinstance(_inside_the_worker(AgentServer()), AgentServer)
    assert adapter.server_on_stack(adapter.caller_frame(0)) is None


def test_the_registration_hook_is_installed_once_per_callback() -> None:
    seen: list[AgentServer] = []
    source = logging.getLogger(adapter.SOURCE_LOGGER)
    before = len(source.handlers)
    adapter.on_registration(seen.append)
    adapter.on_registration(seen.append)
    try:
        assert len(source.handlers) == before + 1
    finally:
        source.removeHandler(source.handlers[-1])


def test_a_launched_jobs_dispatch_timeline_is_read_when_livekit_agents_keeps_it() -> None:
    info = SimpleNamespace(received_at=100.0, accepted_at=100.25, assigned_at=100.5)
    assert adapter.dispatch_timeline(info) is None  # no launch time: an older livekit-agents
    info.launched_at = 101.5
    assert adapter.dispatch_timeline(info) == (0.25, 0.25, 1.0)
