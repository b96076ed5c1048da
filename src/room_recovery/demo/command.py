"""`room-recovery agent` (or `python -m room_recovery.demo`): run the demo agent's worker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from ..agent.guard import GuardOptions
from ..agent.hook import DEFAULT_CLEANUP_TIMEOUT
from ..core.defaults import AGENT_HEALTH_PORT
from ..core.errors import RoomRecoveryError
from ..core.logs import formatter, log_format
from ..core.settings import Settings, load_settings
from .session import DEFAULT_AGENT_NAME, DEFAULT_GREETING, DemoAgentOptions
from .worker import WorkerStatus, run_worker


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`, else one line saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="room-recovery agent",
        description="Run the offline demo voice agent (LIVEKIT_URL, LIVEKIT_API_KEY, "
        "LIVEKIT_API_SECRET from the environment or .env).",
    )
    parser.add_argument(
        "--agent-name",
        default=DEFAULT_AGENT_NAME,
        help="name for explicit dispatch (default %(default)s)",
    )
    parser.add_argument("--health-host", default="127.0.0.1")
    parser.add_argument(
        "--health-port",
        type=int,
        default=AGENT_HEALTH_PORT,
        help="port of GET /health; 0 picks a free one (default %(default)s)",
    )
    parser.add_argument("--greeting", default=DEFAULT_GREETING)
    parser.add_argument(
        "--grace",
        type=float,
        default=GuardOptions.grace,
        help="seconds to stay after the person left without goodbye",
    )
    parser.add_argument(
        "--first-join-timeout",
        type=float,
        default=GuardOptions.first_join_timeout,
        help="seconds to wait for a person before leaving an empty room",
    )
    parser.add_argument(
        "--cleanup-timeout",
        type=float,
        default=DEFAULT_CLEANUP_TIMEOUT,
        help="bound of the pre-join cleanup, under 3 s",
    )
    parser.add_argument(
        "--no-prejoin-cleanup",
        action="store_true",
        help="accept jobs without cleaning the room first",
    )
    parser.add_argument(
        "--idle-processes",
        type=_count(0),
        default=None,
        help="warm job processes kept ready (default ROOM_RECOVERY_AGENT_IDLE_PROCESSES, "
        f"else {DemoAgentOptions.num_idle_processes}; each costs a Python process's memory)",
    )
    parser.add_argument(
        "--max-jobs",
        type=_count(1),
        default=DemoAgentOptions.max_jobs,
        help="jobs this worker takes at once (default %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def options_from_args(
    args: argparse.Namespace, settings: Settings | None = None
) -> DemoAgentOptions:
    idle = args.idle_processes
    if idle is None and settings is not None:
        idle = settings.room_recovery_agent_idle_processes
    return DemoAgentOptions(
        agent_name=args.agent_name,
        greeting=args.greeting,
        guard=GuardOptions(grace=args.grace, first_join_timeout=args.first_join_timeout),
        prejoin_cleanup=not args.no_prejoin_cleanup,
        cleanup_timeout=args.cleanup_timeout,
        num_idle_processes=DemoAgentOptions.num_idle_processes if idle is None else idle,
        max_jobs=args.max_jobs,
    )


def main(argv: list[str] | None = None) -> int:
    """`room-recovery agent`: run the demo agent until SIGINT/SIGTERM. Returns an exit code.

    Prints one line, `registered: agent NAME, health URL`, each time it registers.
    """
    args = parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format()))  # JSON lines under `up`, else text
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        settings = load_settings()
        options = options_from_args(args, settings)
        asyncio.run(_main(settings, options, args.health_host, args.health_port))
    except RoomRecoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


async def _main(settings: Settings, options: DemoAgentOptions, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def announce(status: WorkerStatus) -> None:
        print(f"registered: agent {status.agent_name}, health {status.health_url}", flush=True)

    try:
        await run_worker(
            settings, options, health_host=host, health_port=port, stop=stop, on_registered=announce
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
