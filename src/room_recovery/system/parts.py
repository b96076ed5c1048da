"""The processes `up` runs, in start order: LiveKit, the agents, the page, the watchdog."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.logs import JSON, LOG_FORMAT_VARIABLE
from ..core.settings import Settings
from ..protocol.links import WATCHDOG_URL_VARIABLE
from .files import write_private
from .livekit_server import ServerConfig, find_server_binary
from .options import SystemOptions, server_is_local, server_port
from .supervisor import PartSpec

AGENT_READY_LINE = "registered worker"  # livekit-agents' INFO line on registration
AGENT_SETTLE = 15.0  # seconds alive after which a worker that never says so counts as started


def livekit_config(settings: Settings, options: SystemOptions) -> ServerConfig:
    port = server_port(settings)
    webhooks = (f"http://127.0.0.1:{options.watch_port}/webhook",) if options.with_watch else ()
    return ServerConfig(
        http_port=port,
        rtc_tcp_port=port + 1,
        udp_port=port + 2,
        keys={settings.livekit_api_key: settings.livekit_api_secret},
        webhook_urls=webhooks,
    )


def _python_part(
    name: str, args: list[str], health_url: str, port: int, env: dict[str, str] | None = None
) -> PartSpec:
    return PartSpec(
        name=name,
        argv=(sys.executable, "-m", "room_recovery.cli", *args),
        health_url=health_url,
        port=port,
        env={LOG_FORMAT_VARIABLE: JSON} | (env or {}),  # JSON lines in its log file
    )


def _link_env(options: SystemOptions) -> dict[str, str]:
    """Where agent workers find the watchdog for their link (`protocol.links`)."""
    if not options.with_watch:
        return {}
    return {WATCHDOG_URL_VARIABLE: f"http://127.0.0.1:{options.watch_port}"}


def server_config_path(options: SystemOptions) -> Path:
    return options.state_dir / "livekit.yaml"


def write_server_config(settings: Settings, options: SystemOptions) -> None:
    """livekit.yaml for the local server; it holds the API secret, so it is 0600."""
    write_private(server_config_path(options), livekit_config(settings, options).to_yaml())


def build_parts(settings: Settings, options: SystemOptions) -> list[PartSpec]:
    """The parts `up` runs, in start order."""
    parts = []
    if server_is_local(settings):
        config = livekit_config(settings, options)
        config_path = server_config_path(options)  # written by `up` once its checks pass
        parts.append(
            PartSpec(
                name="livekit",
                argv=(str(find_server_binary()), "--config", str(config_path)),
                health_url=f"http://127.0.0.1:{config.http_port}/",
                port=config.http_port,
                ready_timeout=20,
                stop_grace=5,  # SIGTERM waits for participants to leave; do not wait long
            )
        )
    if options.with_agent:
        parts.append(
            _python_part(
                "agent",
                [
                    "agent",
                    "--agent-name",
                    options.agent_name,
                    "--health-port",
                    str(options.agent_health_port),
                ],
                f"http://127.0.0.1:{options.agent_health_port}/health",
                options.agent_health_port,
                _link_env(options),
            )
        )
    for agent in options.extra_agents:
        # The user's own worker: healthy while it runs (`doctor --probe` proves it serves).
        # It gets the settings in the names livekit-agents reads, even when they come from .env.
        env = {
            "LIVEKIT_URL": settings.ws_url,
            "LIVEKIT_API_KEY": settings.livekit_api_key,
            "LIVEKIT_API_SECRET": settings.livekit_api_secret,
        } | _link_env(options)
        # livekit-agents logs "registered worker" once LiveKit will send it jobs; a worker
        # that never logs it counts as started after AGENT_SETTLE seconds alive.
        parts.append(
            PartSpec(
                name=agent.part_name,
                argv=agent.argv,
                env=env,
                settle=AGENT_SETTLE,
                ready_line=AGENT_READY_LINE,
            )
        )
    if options.with_web:
        parts.append(
            _python_part(
                "web",
                ["web", "--port", str(options.web_port), *_agent_flags(options)],
                f"http://127.0.0.1:{options.web_port}/healthz",
                options.web_port,
            )
        )
    if options.with_watch:
        parts.append(
            _python_part(
                "watch",
                ["watch", "--port", str(options.watch_port), *_agent_flags(options)],
                f"http://127.0.0.1:{options.watch_port}/healthz",
                options.watch_port,
            )
        )
    return parts


def _agent_flags(options: SystemOptions) -> list[str]:
    return [flag for name in options.agent_names for flag in ("--agent", name)]
