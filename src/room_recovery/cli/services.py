"""The long-running services, and the doctor: watch, web, doctor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group
from rich.text import Text

from ..core.defaults import AGENT_HEALTH_PORT, WATCH_PORT, WEB_PORT, local_url
from ..rules.watch import WatchPolicy
from ..web.policy import DEFAULT_AGENT, PageConfig, parse_agents
from ..web.server import DEFAULT_HOST, DEFAULT_PORT
from . import output
from .invocation import Run, command

if TYPE_CHECKING:
    from ..doctor import Check

app = typer.Typer()

SMALLEST_SECONDS = 0.01  # Typer's ranges include their ends; these must be more than 0
_PAGE = PageConfig()
_MARKS = {"ok": ("✅", "green"), "fail": ("❌", "red"), "skipped": ("⏭️", "dim")}

Host = Annotated[str, typer.Option("--host", help="address to listen on")]
ROOM_ALERT = 100  # rooms open at once before the watchdog alerts and doctor calls it a problem
RoomAlert = Annotated[
    int, typer.Option("--room-alert", min=0, help="alert when more rooms than this are open")
]


@command(
    app,
    "Run the watchdog: receive LiveKit webhooks, dispatch an agent to anyone waiting "
    "without one, replace dead agents, clean stale rooms, export metrics.",
    streams_logs=True,
)
def watch(
    run: Run,
    host: Host = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="port for /webhook and /metrics")
    ] = WATCH_PORT,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            help="agent to dispatch when a room's own is unknown (the first named one); "
            "auto:LABEL for a worker without agent_name; repeat for more",
        ),
    ] = None,
    grace: Annotated[
        float, typer.Option("--grace", min=0, help="seconds a person waits before we act")
    ] = 3.0,
    max_dispatches: Annotated[
        int,
        typer.Option("--max-dispatches", min=0, help="dispatches before a room is marked failed"),
    ] = 3,
    cleanup_interval: Annotated[
        float,
        typer.Option(
            "--cleanup-interval", min=SMALLEST_SECONDS, help="seconds between stale cleanups"
        ),
    ] = 60.0,
    room_alert: RoomAlert = ROOM_ALERT,
    parts_status: Annotated[
        Path | None,
        typer.Option(
            "--parts-status",
            help="`up`'s status.json: export each part's restarts and whether it runs "
            "(`up` passes it)",
        ),
    ] = None,
    prometheus: Annotated[
        str,
        typer.Option(
            "--prometheus",
            help="a Prometheus that loads alerts/room-recovery.rules.yml: the operations "
            "view shows its firing alerts and what people felt (`up --prometheus` passes it)",
        ),
    ] = "",
) -> int:
    from ..watchdog import WatchdogOptions, serve

    choices = parse_agents(agent or [DEFAULT_AGENT])
    named = [choice.name for choice in choices if not choice.automatic]
    options = WatchdogOptions(
        agent_name=named[0] if named else "",
        automatic=any(choice.automatic for choice in choices),
        cleanup_interval=cleanup_interval,
        room_alert_threshold=room_alert,
        parts_status=parts_status,
        prometheus_url=prometheus.rstrip("/"),
        watch=WatchPolicy(grace=grace, max_dispatches=max_dispatches),
    )
    asyncio.run(serve(run.settings, host, port, options))
    return 0


@command(
    app,
    "Serve the voice agent page: agent selector, join timeout, retries with fresh rooms.",
    streams_logs=True,
)
def web(
    run: Run,
    host: Host = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="port; 0 picks a free one")
    ] = DEFAULT_PORT,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            metavar="NAME[=LABEL]",
            help=f"an agent to offer, by dispatch name; repeat for more (default {DEFAULT_AGENT})",
            show_default=False,
        ),
    ] = None,
    join_timeout: Annotated[
        float,
        typer.Option(
            "--join-timeout",
            min=SMALLEST_SECONDS,
            help="seconds to wait for the agent per attempt",
        ),
    ] = _PAGE.join_timeout,
    max_retries: Annotated[
        int,
        typer.Option("--max-retries", min=0, help="new rooms to try after the first attempt"),
    ] = _PAGE.max_retries,
    retry_step: Annotated[
        float,
        typer.Option("--retry-step", min=0, help="the n-th retry waits n times this many seconds"),
    ] = _PAGE.retry_step,
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            metavar="URL",
            help="a further LiveKit node of the cluster (LIVEKIT_URL is the first): new "
            "sessions go to the nodes that answer in turn; repeat for more",
            show_default=False,
        ),
    ] = None,
) -> int:
    from ..web import serve

    page = PageConfig(join_timeout=join_timeout, max_retries=max_retries, retry_step=retry_step)
    agents = agent or [DEFAULT_AGENT]
    asyncio.run(
        serve(run.settings, host=host, port=port, agents=agents, page_config=page, nodes=node or [])
    )
    return 0


@command(
    app,
    "Explain why no agent came: checks the server, keys, worker, agent names, waiting "
    "people, ghosts and room count, and says what to do. Exit 0 only when all is well.",
)
def doctor(
    run: Run,
    agent_health_url: Annotated[
        str | None,
        typer.Option(
            "--agent-health-url",
            help="the demo agent's health URL (default: the one `up` runs, else port 8083)",
        ),
    ] = None,
    page_url: Annotated[
        str | None,
        typer.Option(
            "--page-url", help="the page's server (default: the one `up` runs, else port 8080)"
        ),
    ] = None,
    room_alert: RoomAlert = ROOM_ALERT,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="also dispatch each of the page's agents into a throwaway room and wait for "
            "it to join (proves that a worker really serves it)",
        ),
    ] = False,
    probe_agent: Annotated[
        list[str] | None,
        typer.Option(
            "--probe-agent",
            metavar="NAME",
            help="probe this agent name (implies --probe); repeat for more",
            show_default=False,
        ),
    ] = None,
    probe_timeout: Annotated[
        float,
        typer.Option(
            "--probe-timeout", min=SMALLEST_SECONDS, help="seconds to wait for it to join"
        ),
    ] = 10.0,
) -> int:
    from .. import doctor as diagnosis
    from ..system.options import default_state_dir
    from ..system.status import read_status

    parts = (read_status(default_state_dir()) or {}).get("parts")
    ports = (
        {name: part.get("port") for name, part in parts.items()} if isinstance(parts, dict) else {}
    )
    agent_url: str | None = agent_health_url
    if agent_url is None and (ports.get("agent") or not ports):
        agent_url = local_url(ports.get("agent") or AGENT_HEALTH_PORT, "/health")
    # else the running system has no demo agent (`up --no-agent`): nothing to ask
    page = (page_url or local_url(ports.get("web") or WEB_PORT)).rstrip("/")
    options = diagnosis.DoctorOptions(
        agent_url,
        f"{page}/api/config",
        room_alert,
        probe=probe or bool(probe_agent),
        probe_agents=tuple(probe_agent or ()),
        probe_timeout=probe_timeout,
        service_urls=(
            ("page server", f"{page}/healthz"),
            ("watchdog", local_url(ports.get("watch") or WATCH_PORT, "/healthz")),
        ),
        services_expected=bool(ports.get("watch")),
    )
    checks = asyncio.run(diagnosis.diagnose(run.settings, options))
    if run.json:
        output.print_json(diagnosis.to_json(checks), indent=2)
    elif output.on_terminal():
        _show_verdict(checks)
    else:
        output.line(diagnosis.render(checks))
    return 0 if diagnosis.to_json(checks)["ok"] else 1


def _show_verdict(checks: list[Check]) -> None:
    """The diagnosis as a table, a check a row, with the fix under each failure."""
    verdict = output.table("", "CHECK", "RESULT")
    for check in checks:
        mark, style = _MARKS[check.status]
        result = Text(check.detail)
        if check.fix and check.status == "fail":
            result = Text.assemble(check.detail, "\n", (f"→ {check.fix}", "yellow"))
        verdict.add_row(mark, Text(check.name, style=style), result)
    failed = [c for c in checks if c.status == "fail"]
    summary = (
        Text("all is well", "bold green")
        if not failed
        else Text(f"{len(failed)} problem(s) found", "bold red")
    )
    output.show(Group(Text("room-recovery doctor: why no agent came", "bold"), verdict, summary))
