"""The system commands: up, down, restart, status, logs."""

from __future__ import annotations

import asyncio
import getpass
import inspect
import os
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from ..core.defaults import AGENT_HEALTH_PORT, DEMO_AGENT, PROMETHEUS_PORT, WATCH_PORT, WEB_PORT
from ..core.errors import ConfigurationError
from ..system import lifecycle
from ..system import status as system_status
from ..system import units as system_units
from ..system.options import (
    DEFAULT_REDIS_PORT,
    MAX_NODES,
    SystemOptions,
    default_state_dir,
)
from ..web.server import NODE_MODULES_ENV, find_node_modules
from . import output
from .invocation import Run, command
from .up_options import up_options

app = typer.Typer()

SMALLEST_WAIT = 0.1  # seconds; Typer's ranges include their ends, and a wait must be > 0

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="where pidfiles, logs and generated config live "
        "(ROOM_RECOVERY_STATE, default ~/.local/state/room-recovery)",
        show_default=False,
    ),
]


def _port(name: str, help: str) -> Any:
    return typer.Option(name, min=1, max=65535, help=help)


# Options `up` and `units` share: what runs, and where.
AgentName = Annotated[str, typer.Option("--agent-name", help="the demo agent's dispatch name")]
WebPort = Annotated[int, _port("--web-port", "the page's port")]
AgentHealthPort = Annotated[int, _port("--agent-health-port", "the agent's health port")]
WatchPort = Annotated[int, _port("--watch-port", "the watchdog's port")]


@command(
    app,
    "Start the whole voice system: LiveKit server, startup cleanup, agent, page, watchdog.",
    streams_logs=True,
)
def up(
    run: Run,
    state_dir: StateDir = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="run in the background and return")
    ] = False,
    no_agent: Annotated[
        bool, typer.Option("--no-agent", help="do not start the demo agent")
    ] = False,
    no_web: Annotated[
        bool, typer.Option("--no-web", help="do not start the page's web server")
    ] = False,
    no_watch: Annotated[bool, typer.Option("--no-watch", help="do not start the watchdog")] = False,
    agent_name: AgentName = DEMO_AGENT,
    agent_command: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-command",
            metavar="[auto:]NAME=COMMAND",
            help="also run your own agent worker with COMMAND: NAME=... for a worker "
            "registered with agent_name NAME, auto:NAME=... for one without agent_name "
            "(LiveKit's automatic dispatch, as the guide's letta_voice_agent.py: "
            "'auto:letta=python letta_voice_agent.py start'); repeat for more",
            show_default=False,
        ),
    ] = None,
    web_port: WebPort = WEB_PORT,
    agent_health_port: AgentHealthPort = AGENT_HEALTH_PORT,
    watch_port: WatchPort = WATCH_PORT,
    nodes: Annotated[
        int,
        typer.Option("--nodes", min=1, max=MAX_NODES, help="livekit-server nodes sharing Redis"),
    ] = 1,
    redis_port: Annotated[
        int, _port("--redis-port", "with --nodes: the port of the redis-server up starts")
    ] = DEFAULT_REDIS_PORT,
    prometheus: Annotated[
        bool | None,
        typer.Option(
            "--prometheus/--no-prometheus",
            help="run Prometheus (Debian's prometheus) scraping every part, with our alerts; "
            "on by default with --nodes 2 or more",
            show_default=False,
        ),
    ] = None,
    prometheus_port: Annotated[
        int, _port("--prometheus-port", "the port of the Prometheus up starts")
    ] = PROMETHEUS_PORT,
    prometheus_interval: Annotated[
        float,
        typer.Option(
            "--prometheus-interval",
            min=0.5,
            max=300,
            help="seconds between its scrapes and its alerts' evaluations",
        ),
    ] = 5.0,
    webhooks: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="also send LiveKit's webhooks to URL: another watchdog's /webhook, so that "
            "whichever watchdog leads hears of each room at once; repeat for more",
            show_default=False,
        ),
    ] = None,
    peer_watchdogs: Annotated[
        list[str] | None,
        typer.Option(
            "--peer-watchdog",
            metavar="URL",
            help="another watchdog of this cluster (http://HOST:8082; https:// on another "
            "machine): LiveKit sends it webhooks and up's agent workers link to it too, so "
            "that whichever watchdog leads hears of each room and each worker; repeat for more",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", min=SMALLEST_WAIT, help="with --detach: seconds to wait for health"),
    ] = 120,
) -> int:
    options = up_options(
        state_dir=state_dir,
        agent_name=agent_name,
        agent_health_port=agent_health_port,
        web_port=web_port,
        watch_port=watch_port,
        no_agent=no_agent,
        no_web=no_web,
        no_watch=no_watch,
        agent_command=agent_command or [],
        nodes=nodes,
        redis_port=redis_port,
        prometheus=prometheus,
        prometheus_port=prometheus_port,
        prometheus_interval=prometheus_interval,
        webhooks=webhooks or [],
        peer_watchdogs=peer_watchdogs or [],
    )
    if detach:
        argv = [arg for arg in run.argv if arg not in ("--detach", "--json")]
        _print_started(run, lifecycle.up_detached(run.settings, options, argv, wait))
        return 0
    return asyncio.run(lifecycle.up(run.settings, options, as_json=run.json))


def _print_started(run: Run, summary: dict[str, Any], stopped: Sequence[str] = ()) -> None:
    if run.json:
        output.print_json(summary | {"stopped": list(stopped)})
        return
    for name in stopped:
        output.line(f"stopped {name}")
    output.line(f"The voice system is up (supervisor pid {summary['supervisor_pid']}).")
    if summary["page_url"]:
        output.line(f"  page:    {summary['page_url']}")
    if summary.get("ops_url"):
        output.line(f"  ops:     {summary['ops_url']}")
    if summary.get("prometheus_url"):
        output.line(f"  metrics: {summary['prometheus_url']}/alerts")
    output.line(f"  LiveKit: {', '.join(summary['livekit_urls'])}")
    output.line(f"  logs:    {summary['log_dir']}/   status: room-recovery status")


def _up_options_of(run: Run, argv: list[str]) -> SystemOptions:
    """The options of `room-recovery ARGV`, an `up` (as saved in the supervisor's pidfile)."""
    root = run.context.find_root()
    group = root.command
    assert isinstance(group, TyperGroup)
    unusable = f"cannot start the system again with {' '.join(argv)!r}"
    try:
        with group.make_context(root.info_name, list(argv)) as saved:
            name_at = len(argv) - len(saved.args) - 1
            up_command = group.get_command(saved, "up")
            if name_at < 0 or argv[name_at] != "up" or up_command is None:
                raise ConfigurationError(f"{unusable}: they do not start `up`")
            with up_command.make_context("up", list(saved.args), parent=saved) as parsed:
                params: Mapping[str, Any] = parsed.params
    except typer.TyperException as exc:
        raise ConfigurationError(f"{unusable}: {exc.format_message()}") from None
    # `up`'s parameters carry up_options' names: pass each on as it was parsed
    names = inspect.signature(up_options).parameters
    given = {name: params[name] for name in names} | {
        "agent_command": params["agent_command"] or [],
        "webhooks": params["webhooks"] or [],
        "peer_watchdogs": params["peer_watchdogs"] or [],
    }
    return up_options(**given)


@command(app, "Stop everything `up` started (and nothing else).")
def down(run: Run, state_dir: StateDir = None) -> int:
    stopped = lifecycle.down(SystemOptions(state_dir=state_dir or default_state_dir()))
    if run.json:
        output.print_json({"stopped": stopped})
    else:
        output.line("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


@command(
    app,
    "The nuclear option: stop what `up` started, wipe its generated state, start afresh "
    "in the background with the options the running system was started with.",
)
def restart(run: Run, state_dir: StateDir = None) -> int:
    options = SystemOptions(state_dir=state_dir or default_state_dir())
    # start again as it was started (same ports, same agents), or as a plain `up`
    argv = lifecycle.running_up_arguments(options) or ["up"]
    if state_dir and "--state-dir" not in argv:
        argv = [*argv, "--state-dir", str(state_dir)]
    started = _up_options_of(run, argv)  # before anything stops: it may refuse them
    stopped = lifecycle.down(options)
    lifecycle.wipe_data(options)
    _print_started(run, lifecycle.up_detached(run.settings, started, argv, wait=120), stopped)
    return 0


@command(
    app,
    "Write systemd units for the watchdog, the page server and the demo agent, and their "
    "settings (0600), so a deployment runs without `up`.",
)
def units(
    run: Run,
    out: Annotated[
        Path, typer.Option("--out", help="the folder to write them to (created if needed)")
    ],
    user: Annotated[
        str | None,
        typer.Option("--user", help="run the services as this user, never root (default: you)"),
    ] = None,
    no_agent: Annotated[
        bool, typer.Option("--no-agent", help="no unit for the demo agent")
    ] = False,
    agent_name: AgentName = DEMO_AGENT,
    web_port: WebPort = WEB_PORT,
    agent_health_port: AgentHealthPort = AGENT_HEALTH_PORT,
    watch_port: WatchPort = WATCH_PORT,
) -> int:
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"--out {out} is a file; give a folder for the units")
    options = up_options(
        state_dir=None,
        agent_name=agent_name,
        agent_health_port=agent_health_port,
        web_port=web_port,
        watch_port=watch_port,
        no_agent=no_agent,
        no_web=False,
        no_watch=False,
        agent_command=[],
    )
    web_env = {"web": {NODE_MODULES_ENV: str(find_node_modules(run.settings).resolve())}}
    try:
        files = system_units.write_units(
            run.settings, options, out, Path.cwd(), _service_user(user), web_env
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot write the units to {out}: {exc.strerror}") from None
    commands = system_units.install_commands(files)
    if run.json:
        units_of = {name: str(path) for name, path in files.units.items()}
        output.print_json({"env_file": str(files.env_file), "units": units_of, "install": commands})
        return 0
    output.line(f"wrote {files.env_file} (0600: it holds the API secret)")
    for path in files.units.values():
        output.line(f"wrote {path}")
    output.line("install and start them with:")
    for line in commands:
        output.line(f"  {line}")
    return 0


def _service_user(given: str | None) -> str:
    """The user the services run as: `--user`, else whoever runs `units`; never root."""
    name = given or getpass.getuser()
    if name == "root" or (given is None and os.geteuid() == 0):
        raise ConfigurationError(
            "the services need no root and must not run as root (the page server faces the "
            "network): name their user with --user, for example --user room-recovery after "
            "`useradd --system room-recovery`"
        )
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ConfigurationError(
            f"--user {name!r}: there is no such user on this machine; create it "
            f"(`useradd --system {name}`) or name another"
        ) from None
    return name


@command(app, "Show each part: pid, port, healthy or not; and the rooms.")
def status(run: Run, state_dir: StateDir = None) -> int:
    options = SystemOptions(state_dir=state_dir or default_state_dir())
    report = asyncio.run(system_status.collect_status(run.settings, options))
    if run.json:
        output.print_json(report, indent=2, default=str)
    else:
        _print_status(report)
    parts = report["parts"]
    healthy = isinstance(parts, dict) and all(p.get("healthy") for p in parts.values())
    return 0 if report["running"] and healthy else 1


def _print_status(status: dict[str, Any]) -> None:
    if not status["running"]:
        output.line(
            Text("the voice system is not running (start it with `room-recovery up`)", "yellow")
        )
    else:
        output.line(f"supervisor: pid {status['supervisor_pid']}")
    if status["parts"]:
        parts = output.table(show_header=False)
        for name, part in status["parts"].items():
            parts.add_row(
                Text(name, style="bold"),
                f"pid {part.get('pid') if part.get('running') else '-'}",
                f"port {part.get('port') or '-'}",
                _health(part),
                f"restarts {part['restarts']}",
            )
        output.show(parts, indent=2)
    for name, part in status["parts"].items():
        if part.get("problem") and part.get("running"):
            output.line(Text(f"  {name}: {part['problem']}", "red"))
    failed = [name for name, part in status["parts"].items() if part.get("state") == "failed"]
    if failed:
        output.line(
            Text(
                f"FAILED: {', '.join(failed)} kept crashing; see the log "
                f"(`room-recovery logs {failed[0]}`), then `room-recovery restart`",
                "red",
            )
        )
    if status.get("page_url") and status["running"]:
        output.line(f"page:  {status['page_url']}")
    if status.get("ops_url") and status["running"]:
        output.line(f"ops:   {status['ops_url']} (the watchdog's operations view)")
    output.line(f"rooms: {status['rooms']}")
    output.line(f"logs:  {status['log_dir']}")


def _health(part: dict[str, Any]) -> Text:
    if part.get("state") == "failed":
        return Text("FAILED", "bold red")
    if part.get("healthy"):
        return Text("healthy", "green")
    return Text("NOT healthy", "red")


@command(app, "Show the logs of the parts (all when none is named).")
def logs(
    run: Run,
    parts: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PART", help="supervisor, livekit, agent, web, watch", show_default=False
        ),
    ] = None,
    state_dir: StateDir = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, help="lines of each log to show")
    ] = 40,
) -> int:
    if run.json:
        raise ConfigurationError(
            "--json is not available for `logs`: it prints the log files as they are (the "
            "lines of room-recovery's own parts are JSON already); leave out --json"
        )
    options = SystemOptions(state_dir=state_dir or default_state_dir())
    paths = system_status.log_paths(options, parts or [])
    system_status.follow(paths, lines, follow)
    return 0
