"""The long-running services of `room-recovery`: watch (and agent, web), and doctor."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core.settings import Settings
from ..rules.watch import WatchPolicy
from .system import _port


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

    from .. import web

    sub = command(
        "web",
        web.web_command,
        "Serve the voice agent page: agent selector, join timeout, retries with fresh rooms.",
    )
    web.add_web_arguments(sub)

    sub = command(
        "doctor",
        _doctor,
        "Explain why no agent came: checks the server, keys, worker, agent names, waiting "
        "people, ghosts and room count, and says what to do. Exit 0 only when all is well.",
    )
    sub.add_argument(
        "--agent-health-url",
        help="the agent worker's health URL (default: the one `up` runs, else port 8081)",
    )
    sub.add_argument(
        "--page-url", help="the page's server (default: the one `up` runs, else port 8080)"
    )
    sub.add_argument("--room-alert", type=int, default=100, help="too many rooms above this")
    sub.add_argument(
        "--probe",
        action="store_true",
        help="also dispatch each of the page's agents into a throwaway room and wait for it "
        "to join (proves that a worker really serves it)",
    )
    sub.add_argument(
        "--probe-agent",
        action="append",
        default=[],
        metavar="NAME",
        help="probe this agent name (implies --probe); repeat for more",
    )
    sub.add_argument(
        "--probe-timeout", type=_positive, default=10.0, help="seconds to wait for it (10)"
    )


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 seconds")
    return number


async def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from .. import doctor
    from ..system.options import default_state_dir
    from ..system.status import read_status

    parts = (read_status(default_state_dir()) or {}).get("parts")
    ports = (
        {name: part.get("port") for name, part in parts.items()} if isinstance(parts, dict) else {}
    )
    agent_url = args.agent_health_url or f"http://127.0.0.1:{ports.get('agent') or 8081}/health"
    page = (args.page_url or f"http://127.0.0.1:{ports.get('web') or 8080}").rstrip("/")
    options = doctor.DoctorOptions(
        agent_url,
        f"{page}/api/config",
        args.room_alert,
        probe=args.probe or bool(args.probe_agent),
        probe_agents=tuple(args.probe_agent),
        probe_timeout=args.probe_timeout,
    )
    checks = await doctor.diagnose(settings, options)
    if args.json:
        print(json.dumps(doctor.to_json(checks), indent=2))
    else:
        print(doctor.render(checks))
    return 0 if doctor.to_json(checks)["ok"] else 1


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from ..watchdog import WatchdogOptions, serve

    options = WatchdogOptions(
        agent_name=args.agent,
        cleanup_interval=args.cleanup_interval,
        room_alert_threshold=args.room_alert,
        watch=WatchPolicy(grace=args.grace, max_dispatches=args.max_dispatches),
    )
    await serve(settings, args.host, args.port, options)
    return 0
