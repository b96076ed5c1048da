"""The whole voice system as one command: `up`, `down`, `restart`, `status`, `logs`.

`up` writes a LiveKit config for the chosen ports and keys, starts livekit-server (unless
LIVEKIT_URL names a remote server), runs the startup cleanup, then starts the agent
worker, the page's web server and the watchdog, each healthy before the next. It prints
the page's URL and where the logs are, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..core.errors import ConfigurationError, ProcessError
from ..core.logs import JSON, LOG_FORMAT_VARIABLE
from ..core.manager import RoomManager
from ..core.settings import Settings
from .files import private_dir
from .options import NODE_PORT_STEP, SystemOptions
from .part import PartStatus
from .parts import SystemPlan, plan_system, write_server_config
from .processes import (
    PidRecord,
    command_line,
    leftover_record,
    live_record,
    require_free_port,
    stop_recorded,
    write_pidfile,
)
from .registrations import AgentRegistration
from .status import read_status
from .supervisor import Supervisor

logger = logging.getLogger(__name__)

PROGRAM = "room-recovery"  # the prefix of the CLI's error line
READY_LINE = "The voice system is up."


def _check_can_start(options: SystemOptions) -> None:
    """The state folder is writable and no `up` of ours runs there already."""
    _check_state_dir(options.state_dir)
    running = live_record(options.supervisor_pidfile)
    if running is not None:
        raise ProcessError(
            f"the voice system is already running (supervisor pid {running.pid}); see "
            "`room-recovery status`, or stop it with `room-recovery down`"
        )


def _check_state_dir(state_dir: Path) -> None:
    try:
        private_dir(state_dir)  # it will hold livekit.yaml, with the API secret
        (state_dir / "run").mkdir(parents=True, exist_ok=True)
        probe = state_dir / "run" / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"state folder {state_dir} is not writable ({exc.strerror}); choose another with "
            "--state-dir or ROOM_RECOVERY_STATE"
        ) from None


def _check_ports(plan: SystemPlan) -> None:
    for k, config in enumerate(plan.nodes):
        node = "LiveKit" if k == 0 else f"LiveKit node {k + 1}"
        where = "the port in LIVEKIT_URL" + (f" (+{k * NODE_PORT_STEP}, --nodes)" if k else "")
        ports = [(config.http_port, node), (config.rtc_tcp_port, "its RTC")]
        if "prometheus_port" in config.extra:
            ports.append((int(str(config.extra["prometheus_port"])), "its metrics"))
        for candidate, what in ports:
            require_free_port(candidate, what, where)
    flags = {
        "agent": "--agent-health-port",
        "web": "--web-port",
        "watch": "--watch-port",
        "redis": "--redis-port",
        "prometheus": "--prometheus-port",
    }
    for part in plan.parts:
        if part.name in flags and part.port is not None:
            require_free_port(part.port, f"the {part.name} part", flags[part.name])


def _stop_leftovers(options: SystemOptions) -> list[str]:
    """Stop parts that a dead supervisor left running (ours only, by pidfile)."""
    stopped = []
    for pidfile in sorted((options.state_dir / "run").glob("*.pid")):
        if pidfile == options.supervisor_pidfile:
            continue
        record = leftover_record(pidfile)
        if record is not None and stop_recorded(record):
            stopped.append(f"{pidfile.stem} (pid {record.pid})")
        pidfile.unlink(missing_ok=True)
    return stopped


async def up(settings: Settings, options: SystemOptions, *, as_json: bool = False) -> int:
    """Run the system in the foreground until SIGINT or SIGTERM; returns an exit code."""
    _check_can_start(options)
    for leftover in _stop_leftovers(options):
        logger.info("stopped %s, left over from an earlier run", leftover)
    plan = plan_system(settings, options)
    _check_ports(plan)
    if plan.local:
        write_server_config(plan)

    async def startup_cleanup() -> None:  # its summary is the manager's own log line
        async with RoomManager(settings=settings) as manager:
            await manager.cleanup_stale_rooms()

    own_argv = command_line(os.getpid()) or tuple(sys.argv)
    write_pidfile(
        options.supervisor_pidfile, PidRecord("supervisor", os.getpid(), own_argv, time.time())
    )
    hooks = {"livekit": startup_cleanup} if plan.local else {}
    extra = {
        "page_url": options.page_url if options.with_web else None,
        "ops_url": options.ops_url if options.with_watch else None,
        "prometheus_url": options.prometheus_url if plan.prometheus else None,
        "livekit_url": settings.livekit_url,
        "log_dir": str(options.state_dir / "logs"),
    }
    try:
        if not hooks:
            await startup_cleanup()
        # each of your agents: its registered name checked, the watchdog told it is there
        observers = {
            agent.part_name: AgentRegistration(agent, settings, plan.watchdog_urls)
            for agent in options.extra_agents
        }
        supervisor = Supervisor(
            options.state_dir,
            list(plan.parts),
            after_start=hooks,
            extra_status=extra,
            observers=observers,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, supervisor.request_stop)
        async with supervisor:
            _print_ready(plan, as_json)
            await supervisor.wait_stopped()
            logger.info("stopping...")
    finally:
        options.supervisor_pidfile.unlink(missing_ok=True)
    logger.info("stopped everything room-recovery started")
    return 0


def ready_summary(plan: SystemPlan, supervisor_pid: int) -> dict[str, object]:
    """What `up` prints once every part is healthy, for `--json`."""
    options = plan.options
    return {
        "up": True,
        "supervisor_pid": supervisor_pid,
        "page_url": options.page_url if options.with_web else None,
        "ops_url": options.ops_url if options.with_watch else None,
        "prometheus_url": options.prometheus_url if plan.prometheus else None,
        "livekit_url": plan.settings.livekit_url,
        "livekit_urls": list(plan.node_urls),
        "log_dir": str(options.state_dir / "logs"),
    }


def _print_ready(plan: SystemPlan, as_json: bool) -> None:
    options, parts = plan.options, plan.parts
    if as_json:
        summary = ready_summary(plan, os.getpid())
        print(json.dumps(summary | {"parts": [p.name for p in parts]}), flush=True)
        return
    lines = ["", READY_LINE]
    if options.with_web:
        lines.append(f"  page:     {options.page_url}")
    if options.with_watch:
        lines.append(f"  ops view: {options.ops_url}")
    if plan.prometheus:
        lines.append(f"  metrics:  {options.prometheus_url}/alerts (Prometheus, with our alerts)")
    lines.append(f"  LiveKit:  {', '.join(plan.node_urls)}")
    lines.append(f"  logs:     {options.state_dir / 'logs'}/ ({', '.join(p.name for p in parts)})")
    lines.append("  status:   room-recovery status    stop: Ctrl-C or room-recovery down")
    if plan.local and plan.nodes[0].development:
        lines.append(
            "  note:     the API secret is shorter than 32 characters, so LiveKit runs in "
            "development mode; set a long LIVEKIT_API_SECRET anywhere but your own machine"
        )
    print("\n".join(lines), flush=True)


def up_detached(
    settings: Settings, options: SystemOptions, argv: list[str], wait: float
) -> dict[str, object]:
    """Start `up` in the background and wait until it is healthy; returns its
    `ready_summary`. Raises ProcessError when it failed or was not healthy in time."""
    _check_can_start(options)
    log_path = options.state_dir / "logs" / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    (options.state_dir / "status.json").unlink(missing_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "room_recovery.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | {LOG_FORMAT_VARIABLE: JSON},  # timestamped lines in its log
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProcessError(
                f"the voice system failed to start: {_last_error(log_path)} (full log: {log_path})"
            )
        status = read_status(options.state_dir) or {}
        parts = status.get("parts")
        if isinstance(parts, dict) and parts and _all_healthy(parts) and _printed(log_path):
            return ready_summary(plan_system(settings, options), process.pid)
        time.sleep(0.2)
    raise ProcessError(f"the voice system was not healthy within {wait:g} s; see {log_path}")


def _last_error(log_path: Path) -> str:
    """The reason at the log's end: the CLI's `room-recovery: ...` (which may span lines),
    else the message of the last log line."""
    lines = log_path.read_text(errors="replace").strip().splitlines()
    for at in range(len(lines) - 1, -1, -1):
        if lines[at].startswith(f"{PROGRAM}: "):
            return " ".join(lines[at:]).removeprefix(f"{PROGRAM}: ")
    if not lines:
        return "no output"
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(lines[-1]).get("message", lines[-1]))
    return lines[-1]


def _all_healthy(parts: dict[str, dict[str, object]]) -> bool:
    return all(part.get("state") == PartStatus.HEALTHY for part in parts.values())


def _printed(log_path: Path) -> bool:
    return READY_LINE in log_path.read_text(errors="replace")


def running_up_arguments(options: SystemOptions) -> list[str] | None:
    """The arguments the running `up` was started with (`--detach` left out), or None.

    Read from the supervisor's pidfile, so that `restart` starts the system again with the
    same ports, parts and agents.
    """
    record = live_record(options.supervisor_pidfile)
    if record is None or "up" not in record.argv:
        return None
    argv = list(record.argv)
    start = 3 if argv[1:2] == ["-m"] else 2  # after `python -m module` or `python script`
    return [arg for arg in argv[start:] if arg != "--detach"]


def down(options: SystemOptions, grace: float = 30.0) -> list[str]:
    """Stop the supervisor (which stops its parts), then any part it left. Returns what stopped."""
    stopped = []
    record = live_record(options.supervisor_pidfile)
    if record is not None and stop_recorded(record, grace):
        stopped.append(f"supervisor (pid {record.pid})")
    options.supervisor_pidfile.unlink(missing_ok=True)
    stopped.extend(_stop_leftovers(options))
    return stopped


def wipe_data(options: SystemOptions) -> None:
    """Remove what `up` generated (config, status, data); keep the logs."""
    for path in (options.state_dir / "livekit.yaml", options.state_dir / "status.json"):
        path.unlink(missing_ok=True)
    shutil.rmtree(options.state_dir / "data", ignore_errors=True)
