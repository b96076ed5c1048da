"""The system commands of `room-recovery`: up, down, restart, status, logs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..system import lifecycle
from ..system import status as system_status
from ..system.options import ExtraAgent, SystemOptions, default_state_dir, parse_agent_command


def add_system_commands(commands: Any, command: Any) -> None:
    """Add the commands to the CLI's subparsers (`command` is cli.py's helper)."""
    sub = command(
        "up",
        _up,
        "Start the whole voice system: LiveKit server, startup cleanup, agent, page, watchdog.",
    )
    _system_options(sub)
    sub.add_argument("--detach", action="store_true", help="run in the background and return")
    sub.add_argument("--no-agent", action="store_true", help="do not start the demo agent")
    sub.add_argument("--no-web", action="store_true", help="do not start the page's web server")
    sub.add_argument("--no-watch", action="store_true", help="do not start the watchdog")
    sub.add_argument("--agent-name", default="demo-agent", help="the demo agent's dispatch name")
    sub.add_argument(
        "--agent-command",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="also run your own agent worker, registered as NAME, with COMMAND (for example "
        "'letta-agent=python letta_voice_agent.py start'); repeat for more",
    )
    sub.add_argument("--web-port", type=_port, default=8080, help="the page's port (8080)")
    sub.add_argument(
        "--agent-health-port", type=_port, default=8081, help="the agent's health port (8081)"
    )
    sub.add_argument("--watch-port", type=_port, default=8082, help="the watchdog's port (8082)")
    sub.add_argument(
        "--wait", type=float, default=120, help="with --detach: seconds to wait for health"
    )

    sub = command("down", _down, "Stop everything `up` started (and nothing else).")
    _system_options(sub)

    sub = command(
        "restart",
        _restart,
        "The nuclear option: stop what `up` started, wipe its generated state, start afresh "
        "in the background with the options the running system was started with.",
    )
    _system_options(sub)

    sub = command("status", _status, "Show each part: pid, port, healthy or not; and the rooms.")
    _system_options(sub)

    sub = command("logs", _logs, "Show the logs of the parts (all when none is named).")
    _system_options(sub)
    sub.add_argument("parts", nargs="*", help="supervisor, livekit, agent, web, watch")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    sub.add_argument("-n", "--lines", type=int, default=40, help="lines of each log to show")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def _system_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where pidfiles, logs and generated config live "
        "(ROOM_RECOVERY_STATE, default ~/.local/state/room-recovery)",
    )


def _options(args: argparse.Namespace) -> SystemOptions:
    state_dir = args.state_dir or default_state_dir()
    if not hasattr(args, "web_port"):
        return SystemOptions(state_dir=state_dir)
    return SystemOptions(
        state_dir=state_dir,
        agent_name=args.agent_name,
        agent_health_port=args.agent_health_port,
        web_port=args.web_port,
        watch_port=args.watch_port,
        with_agent=not args.no_agent,
        with_web=not args.no_web,
        with_watch=not args.no_watch,
        extra_agents=_extra_agents(args),
    )


def _extra_agents(args: argparse.Namespace) -> tuple[ExtraAgent, ...]:
    agents = tuple(parse_agent_command(spec) for spec in args.agent_command)
    names = [agent.name for agent in agents]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError(f"--agent-command names agent {name!r} twice")
        if name == args.agent_name and not args.no_agent:
            raise ConfigurationError(
                f"--agent-command: {name!r} is the demo agent's name; choose another name, "
                "or leave the demo agent out with --no-agent"
            )
    return agents


async def _up(args: argparse.Namespace, settings: Settings) -> int:
    options = _options(args)
    if args.detach:
        argv = [a for a in sys.argv[1:] if a != "--detach"]
        return lifecycle.up_detached(settings, options, argv, args.wait)
    return await lifecycle.up(settings, options)


async def _down(args: argparse.Namespace, settings: Settings) -> int:
    stopped = lifecycle.down(_options(args))
    if args.json:
        print(json.dumps({"stopped": stopped}))
    else:
        print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


async def _restart(args: argparse.Namespace, settings: Settings) -> int:
    options = _options(args)
    previous = lifecycle.running_up_arguments(options)
    for stopped in lifecycle.down(options):
        print(f"stopped {stopped}")
    lifecycle.wipe_data(options)
    if previous is not None:  # start again as it was started: same ports, same agents
        from .main import build_parser  # main imports this module

        argv = previous
        if args.state_dir and "--state-dir" not in argv:
            argv = [*argv, "--state-dir", str(args.state_dir)]
        options = _options(build_parser().parse_args(argv))
    else:
        argv = ["up"] + (["--state-dir", str(args.state_dir)] if args.state_dir else [])
    return lifecycle.up_detached(settings, options, argv, wait=120)


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    status = await system_status.collect_status(settings, _options(args))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        _print_status(status)
    parts = status["parts"]
    healthy = isinstance(parts, dict) and all(p.get("healthy") for p in parts.values())
    return 0 if status["running"] and healthy else 1


def _print_status(status: dict[str, Any]) -> None:
    if not status["running"]:
        print("the voice system is not running (start it with `room-recovery up`)")
    else:
        print(f"supervisor: pid {status['supervisor_pid']}")
    width = max((len(name) for name in status["parts"]), default=8)
    for name, part in status["parts"].items():
        health = "healthy" if part.get("healthy") else "NOT healthy"
        if part.get("state") == "failed":
            health = "FAILED (kept crashing; see its log, then `room-recovery restart`)"
        pid = part.get("pid") if part.get("running") else "-"
        port = part.get("port") or "-"
        restarts = part["restarts"]
        print(f"  {name:<{width}} pid {pid!s:<8} port {port!s:<6} {health}, restarts {restarts}")
    if status.get("page_url") and status["running"]:
        print(f"page:  {status['page_url']}")
    print(f"rooms: {status['rooms']}")
    print(f"logs:  {status['log_dir']}")


async def _logs(args: argparse.Namespace, settings: Settings) -> int:
    paths = system_status.log_paths(_options(args), args.parts)
    system_status.follow(paths, args.lines, args.follow)
    return 0
