"""The long-running services of `room-recovery`: watch (and agent, web), and doctor."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_system import _port
from .policy import WatchPolicy
from .settings import Settings


def add_service_commands(commands: Any, command: Any) -> None:
    """Add the commands to the CLI's subparsers (`command` is cli.py's helper)."""
    sub = command(
        "watch",
        _watch,
        "Run the watchdog: receive LiveKit webhooks, dispatch an agent to anyone waiting "
        "without one, replace dead agents, clean stale rooms, export metrics.",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sub.add_argument("--port", type=_port, default=8082, help="port for /webhook and /metrics")
    sub.add_argument(
        "--agent", default="demo-agent", help="agent to dispatch when a room's own is unknown"
    )
    sub.add_argument(
        "--grace", type=float, default=3.0, help="seconds a person waits before we act (3)"
    )
    sub.add_argument(
        "--max-dispatches",
        type=int,
        default=3,
        help="dispatches before a room is marked failed (3)",
    )
    sub.add_argument(
        "--cleanup-interval", type=float, default=60.0, help="seconds between stale cleanups"
    )
    sub.add_argument(
        "--room-alert", type=int, default=100, help="alert when more rooms than this are open"
    )


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from .watchdog import WatchdogOptions, serve

    options = WatchdogOptions(
        agent_name=args.agent,
        cleanup_interval=args.cleanup_interval,
        room_alert_threshold=args.room_alert,
        watch=WatchPolicy(grace=args.grace, max_dispatches=args.max_dispatches),
    )
    await serve(settings, args.host, args.port, options)
    return 0
