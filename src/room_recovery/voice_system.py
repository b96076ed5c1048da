"""The whole voice system as one command: `up`, `down`, `restart`, `status`, `logs`.

`up` writes a LiveKit config for the chosen ports and keys, starts livekit-server (unless
LIVEKIT_URL names a remote server), runs the startup cleanup, then starts the agent
worker, the page's web server and the watchdog, each healthy before the next. It prints
the page's URL and where the logs are, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

from .errors import ConfigurationError, ProcessError, RoomRecoveryError
from .livekit_server import ServerConfig, find_server_binary
from .manager import RoomManager
from .page_policy import valid_agent_name
from .processes import (
    PidRecord,
    command_line,
    live_record,
    require_free_port,
    stop_recorded,
    write_pidfile,
)
from .settings import Settings
from .supervisor import PartSpec, Supervisor, answers

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
PART_NAMES = ("livekit", "agent", "web", "watch")


@dataclass(frozen=True)
class ExtraAgent:
    """An agent of the user's own that `up` runs next to the demo one (`--agent-command`)."""

    name: str  # the name it registers for explicit dispatch
    argv: tuple[str, ...]

    @property
    def part_name(self) -> str:
        return f"agent-{self.name}"


def parse_agent_command(spec: str) -> ExtraAgent:
    """`NAME=COMMAND` (`letta-agent=python letta_voice_agent.py start`) as an ExtraAgent."""
    example = "for example --agent-command 'letta-agent=python letta_voice_agent.py start'"
    name, sep, command = spec.partition("=")
    name = name.strip()
    if not sep or not command.strip():
        raise ConfigurationError(f"--agent-command {spec!r} must be NAME=COMMAND, {example}")
    if not valid_agent_name(name):
        raise ConfigurationError(
            f"--agent-command: agent name {name!r} may use only letters, digits, '.', '_' "
            f"and '-' (up to 64), {example}"
        )
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ConfigurationError(f"--agent-command for {name!r}: {exc} in {command!r}") from None
    return ExtraAgent(name, argv)


def default_state_dir() -> Path:
    """ROOM_RECOVERY_STATE, or $XDG_STATE_HOME/room-recovery, or ~/.local/state/room-recovery."""
    configured = os.environ.get("ROOM_RECOVERY_STATE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "room-recovery"


@dataclass(frozen=True)
class SystemOptions:
    """What `up` runs and where; ports of 0 are not allowed (they must be known to print)."""

    state_dir: Path
    agent_name: str = "demo-agent"
    agent_health_port: int = 8081
    web_port: int = 8080
    watch_port: int = 8082
    with_agent: bool = True
    with_web: bool = True
    with_watch: bool = True
    extra_agents: tuple[ExtraAgent, ...] = ()

    @property
    def agent_names(self) -> list[str]:
        """Every agent the page offers and the watchdog knows: the demo one, then the user's."""
        demo = [self.agent_name] if self.with_agent or not self.extra_agents else []
        return demo + [agent.name for agent in self.extra_agents]

    @property
    def supervisor_pidfile(self) -> Path:
        return self.state_dir / "run" / "supervisor.pid"

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"


def server_is_local(settings: Settings) -> bool:
    return (urlparse(settings.livekit_url).hostname or "") in LOCAL_HOSTS


def server_port(settings: Settings) -> int:
    parsed = urlparse(settings.livekit_url)
    return parsed.port or {"ws": 80, "http": 80, "wss": 443, "https": 443}[parsed.scheme]


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


def _python_part(name: str, args: list[str], health_url: str, port: int) -> PartSpec:
    return PartSpec(
        name=name,
        argv=(sys.executable, "-m", "room_recovery.cli", *args),
        health_url=health_url,
        port=port,
    )


def build_parts(settings: Settings, options: SystemOptions) -> list[PartSpec]:
    """The parts `up` runs, in start order."""
    parts = []
    if server_is_local(settings):
        config = livekit_config(settings, options)
        config_path = options.state_dir / "livekit.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config.to_yaml())
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
            )
        )
    for agent in options.extra_agents:
        # The user's own worker: healthy while it runs (`doctor --probe` proves it serves).
        # It gets the settings in the names livekit-agents reads, even when they come from .env.
        env = {
            "LIVEKIT_URL": settings.ws_url,
            "LIVEKIT_API_KEY": settings.livekit_api_key,
            "LIVEKIT_API_SECRET": settings.livekit_api_secret,
        }
        parts.append(PartSpec(name=agent.part_name, argv=agent.argv, env=env, settle=3.0))
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
                ["watch", "--port", str(options.watch_port), "--agent", options.agent_names[0]],
                f"http://127.0.0.1:{options.watch_port}/healthz",
                options.watch_port,
            )
        )
    return parts


def _agent_flags(options: SystemOptions) -> list[str]:
    return [flag for name in options.agent_names for flag in ("--agent", name)]


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
        (state_dir / "run").mkdir(parents=True, exist_ok=True)
        probe = state_dir / "run" / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"state folder {state_dir} is not writable ({exc.strerror}); choose another with "
            "--state-dir or ROOM_RECOVERY_STATE"
        ) from None


def _check_ports(settings: Settings, options: SystemOptions, parts: list[PartSpec]) -> None:
    if server_is_local(settings):
        port = server_port(settings)
        for candidate, what in ((port, "LiveKit"), (port + 1, "LiveKit's RTC over TCP")):
            require_free_port(candidate, what, "the port in LIVEKIT_URL")
    flags = {"agent": "--agent-health-port", "web": "--web-port", "watch": "--watch-port"}
    for part in parts:
        if part.name in flags and part.port is not None:
            require_free_port(part.port, f"the {part.name} part", flags[part.name])


def _stop_leftovers(options: SystemOptions) -> list[str]:
    """Stop parts that a dead supervisor left running (ours only, by pidfile)."""
    stopped = []
    for pidfile in sorted((options.state_dir / "run").glob("*.pid")):
        if pidfile == options.supervisor_pidfile:
            continue
        record = live_record(pidfile)
        if record is not None and stop_recorded(record):
            stopped.append(f"{pidfile.stem} (pid {record.pid})")
        pidfile.unlink(missing_ok=True)
    return stopped


async def up(settings: Settings, options: SystemOptions) -> int:
    """Run the system in the foreground until SIGINT or SIGTERM; returns an exit code."""
    _check_can_start(options)
    for leftover in _stop_leftovers(options):
        print(f"stopped {leftover}, left over from an earlier run", flush=True)
    parts = build_parts(settings, options)
    _check_ports(settings, options, parts)

    async def startup_cleanup() -> None:
        async with RoomManager(settings=settings) as manager:
            report = await manager.cleanup_stale_rooms()
        print(f"startup cleanup: {report.summary()}", flush=True)

    own_argv = command_line(os.getpid()) or tuple(sys.argv)
    write_pidfile(
        options.supervisor_pidfile, PidRecord("supervisor", os.getpid(), own_argv, time.time())
    )
    hooks = {"livekit": startup_cleanup} if parts and parts[0].name == "livekit" else {}
    extra = {
        "page_url": options.page_url if options.with_web else None,
        "livekit_url": settings.livekit_url,
        "log_dir": str(options.state_dir / "logs"),
    }
    try:
        if not hooks:
            await startup_cleanup()
        supervisor = Supervisor(options.state_dir, parts, after_start=hooks, extra_status=extra)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, supervisor.request_stop)
        async with supervisor:
            _print_ready(settings, options, parts)
            await supervisor.wait_stopped()
            print("stopping...", flush=True)
    finally:
        options.supervisor_pidfile.unlink(missing_ok=True)
    print("stopped everything room-recovery started", flush=True)
    return 0


def _print_ready(settings: Settings, options: SystemOptions, parts: list[PartSpec]) -> None:
    lines = ["", "The voice system is up."]
    if options.with_web:
        lines.append(f"  page:     {options.page_url}")
    lines.append(f"  LiveKit:  {settings.livekit_url}")
    lines.append(f"  logs:     {options.state_dir / 'logs'}/ ({', '.join(p.name for p in parts)})")
    lines.append("  status:   room-recovery status    stop: Ctrl-C or room-recovery down")
    if parts and parts[0].name == "livekit" and livekit_config(settings, options).development:
        lines.append(
            "  note:     the API secret is shorter than 32 characters, so LiveKit runs in "
            "development mode; set a long LIVEKIT_API_SECRET anywhere but your own machine"
        )
    print("\n".join(lines), flush=True)


def up_detached(settings: Settings, options: SystemOptions, argv: list[str], wait: float) -> int:
    """Start `up` in the background and wait until it is healthy (or has failed)."""
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
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise ProcessError(
                f"the voice system failed to start: {tail[0] if tail else 'no output'} "
                f"(full log: {log_path})"
            )
        status = read_status(options.state_dir) or {}
        parts = status.get("parts")
        if isinstance(parts, dict) and parts and _all_healthy(parts) and _printed(log_path):
            print(f"The voice system is up (supervisor pid {process.pid}).")
            if options.with_web:
                print(f"  page:    {options.page_url}")
            print(f"  LiveKit: {settings.livekit_url}")
            print(f"  logs:    {options.state_dir / 'logs'}/   status: room-recovery status")
            return 0
        time.sleep(0.2)
    raise ProcessError(f"the voice system was not healthy within {wait:g} s; see {log_path}")


def _all_healthy(parts: dict[str, dict[str, object]]) -> bool:
    return all(part.get("state") == "healthy" for part in parts.values())


def _printed(log_path: Path) -> bool:
    return "The voice system is up." in log_path.read_text(errors="replace")


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


def read_status(state_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((state_dir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def collect_status(settings: Settings, options: SystemOptions) -> dict[str, object]:
    """Each part's pid, port, state and live health, and the room count."""
    supervisor = live_record(options.supervisor_pidfile)
    status = read_status(options.state_dir) or {}
    parts_raw = status.get("parts", {})
    parts: dict[str, dict[str, object]] = dict(parts_raw) if isinstance(parts_raw, dict) else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for name, part in parts.items():
            record = live_record(options.state_dir / "run" / f"{name}.pid")
            part["running"] = record is not None
            url = part.get("health_url")
            if record is None:
                part["healthy"] = False
            elif isinstance(url, str):
                part["healthy"] = await answers(session, url)
            else:  # no health check (your own agent): running and past its start
                part["healthy"] = part.get("state") == "healthy"
    rooms: int | str
    try:
        async with RoomManager(settings=settings, request_timeout=3) as manager:
            rooms = len(await manager.list_rooms())
    except RoomRecoveryError as exc:
        rooms = f"unknown ({exc})"
    return {
        "running": supervisor is not None,
        "supervisor_pid": supervisor.pid if supervisor else None,
        "page_url": status.get("page_url"),
        "log_dir": str(options.state_dir / "logs"),
        "parts": parts,
        "rooms": rooms,
    }


def log_paths(options: SystemOptions, names: list[str]) -> list[Path]:
    """The log files of the named parts (all parts and the supervisor when none is named)."""
    log_dir = options.state_dir / "logs"
    extras = sorted(path.stem for path in log_dir.glob("agent-*.log"))
    known = ["supervisor", *PART_NAMES, *extras]
    wanted = names or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ConfigurationError(f"unknown part {unknown[0]!r}: choose from {', '.join(known)}")
    return [log_dir / f"{name}.log" for name in wanted]


def follow(paths: list[Path], lines: int, keep_following: bool) -> None:
    """Print the last `lines` of each log, then (with `keep_following`) new lines as they come."""
    positions: dict[Path, int] = {}
    for path in paths:
        if not path.exists():
            print(f"==> {path} (no log yet)")
            positions[path] = 0
            continue
        text = path.read_text(errors="replace").splitlines()
        print(f"==> {path} <==")
        print("\n".join(text[-lines:]))
        positions[path] = path.stat().st_size
    while keep_following:
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < positions[path]:  # rotated
                positions[path] = 0
            if size > positions[path]:
                with path.open("rb") as handle:
                    handle.seek(positions[path])
                    chunk = handle.read()
                positions[path] = size
                for line in chunk.decode(errors="replace").splitlines():
                    print(f"[{path.stem}] {line}", flush=True)
        time.sleep(0.3)
