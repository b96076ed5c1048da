"""The processes `up` runs, in start order: LiveKit, the agents, the page, the watchdog,
and with --prometheus (or --nodes) a Prometheus watching them (`system.prometheus`).

`plan_system` works out once what `up` runs and where (`SystemPlan`: the nodes, the URLs
people connect to, the parts); `up`, `units` and the ready line read that plan.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..core.errors import ConfigurationError
from ..core.logs import JSON, LOG_FORMAT_VARIABLE
from ..core.settings import Settings
from ..protocol.links import WATCHDOG_URL_VARIABLE
from .files import write_private
from .livekit_server import ServerConfig, find_server_binary
from .options import NODE_PORT_STEP, SystemOptions, server_is_local, server_port
from .prometheus import (
    LIVEKIT_METRICS_OFFSET,
    prometheus_binary,
    prometheus_config,
    prometheus_part,
    require_prometheus,
)
from .supervisor import PartSpec

logger = logging.getLogger(__name__)

AGENT_READY_LINE = "registered worker"  # livekit-agents' INFO line on registration
REDIS_READY_LINE = "Ready to accept connections"  # redis-server's line once it serves
REDIS_URL_VARIABLE = "REDIS_URL"
AGENT_SETTLE = 15.0  # seconds alive after which a worker that never says so counts as started


def redis_url(settings: Settings, options: SystemOptions) -> str:
    """The Redis a cluster shares: REDIS_URL when set, else the redis-server `up` starts
    (with its password: see `redis_password`)."""
    if settings.redis_url or options.nodes < 2:
        return settings.redis_url
    return f"redis://:{redis_password(options)}@127.0.0.1:{options.redis_port}/0"


def redis_password(options: SystemOptions) -> str:
    """The password of the redis-server `up` starts: made once, kept 0600 in the state
    folder. Without one, any local user could take the watchdogs' election or write on
    LiveKit's bus."""
    path = options.state_dir / "redis" / "password"
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if not password:
        password = secrets.token_urlsafe(24)
        write_private(path, password + "\n")
    return password


def starts_redis(settings: Settings, options: SystemOptions) -> bool:
    return options.nodes > 1 and not settings.redis_url and server_is_local(settings)


@dataclass(frozen=True)
class SystemPlan:
    """What `up` runs and where, worked out once from the settings and the options."""

    settings: Settings
    options: SystemOptions
    nodes: tuple[ServerConfig, ...]  # the local livekit-server nodes; none for a remote server
    node_urls: tuple[str, ...]  # where people connect: LIVEKIT_URL, then each further node
    starts_redis: bool  # the nodes share a redis-server that `up` starts
    watchdog_urls: tuple[str, ...]  # where agent workers link to the watchdogs (--peer-watchdog)
    parts: tuple[PartSpec, ...]  # in start order
    prometheus: bool = False  # `up` runs Prometheus (`system.prometheus`)

    @property
    def local(self) -> bool:
        """`up` runs livekit-server itself (LIVEKIT_URL is on this machine)."""
        return bool(self.nodes)


def plan_system(settings: Settings, options: SystemOptions) -> SystemPlan:
    """The plan of the system `options` describe. Raises ConfigurationError for a plan that
    cannot work (several nodes of a remote server, a Redis LiveKit cannot use)."""
    if options.nodes > 1 and not server_is_local(settings):
        raise ConfigurationError(
            f"--nodes starts livekit-server nodes on this machine, but LIVEKIT_URL points at "
            f"{settings.livekit_url}: leave --nodes out to use that server (or cluster)"
        )
    prometheus = _runs_prometheus(options)
    nodes = tuple(_node_configs(settings, options, prometheus)) if server_is_local(settings) else ()
    urls = (settings.ws_url, *_further_node_urls(settings, nodes))
    redis = starts_redis(settings, options)
    parts = _parts(settings, options, nodes, urls, redis, prometheus)
    return SystemPlan(
        settings, options, nodes, urls, redis, watchdog_urls(options), parts, prometheus
    )


def _runs_prometheus(options: SystemOptions) -> bool:
    """--prometheus needs the prometheus binary; a cluster without it runs without one."""
    if not options.wants_prometheus:
        return False
    if options.prometheus:
        require_prometheus()
        return True
    if prometheus_binary() is None:
        logger.warning(
            "--nodes runs Prometheus when it is installed, and prometheus is not (Debian's "
            "prometheus package; ./setup.sh installs it): running without it"
        )
        return False
    return True


def _node_configs(
    settings: Settings, options: SystemOptions, metrics: bool = False
) -> list[ServerConfig]:
    """The config of each local livekit-server node; node k on LIVEKIT_URL's port + 10 k
    (and with `metrics`, its own Prometheus metrics on that port + 3)."""
    port = server_port(settings)
    own = (f"http://127.0.0.1:{options.watch_port}/webhook",) if options.with_watch else ()
    peers = tuple(f"{url}/webhook" for url in options.peer_watchdogs)
    webhooks = tuple(dict.fromkeys((*own, *options.webhooks, *peers)))
    shared = urlparse(redis_url(settings, options)) if options.nodes > 1 else None
    if shared is not None and shared.scheme != "redis":
        raise ConfigurationError(
            f"--nodes gives the livekit-server nodes REDIS_URL, but LiveKit takes only a "
            f"redis://host:port/db address, not {shared.scheme}://; set such a REDIS_URL "
            "or leave REDIS_URL empty and let up start redis-server"
        )
    redis = f"{shared.hostname}:{shared.port or 6379}" if shared else None
    password = (shared.password or "") if shared else ""
    db_text = shared.path.strip("/") if shared else ""
    db = int(db_text) if db_text.isdigit() else 0
    return [
        ServerConfig(
            http_port=port + NODE_PORT_STEP * k,
            rtc_tcp_port=port + NODE_PORT_STEP * k + 1,
            udp_port=port + NODE_PORT_STEP * k + 2,
            keys={settings.livekit_api_key: settings.livekit_api_secret},
            webhook_urls=webhooks,
            redis_address=redis,
            redis_password=password,
            redis_db=db,
            extra=(
                {"prometheus_port": port + NODE_PORT_STEP * k + LIVEKIT_METRICS_OFFSET}
                if metrics
                else {}
            ),
        )
        for k in range(options.nodes)
    ]


def node_name(k: int) -> str:
    return "livekit" if k == 0 else f"livekit-{k + 1}"


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


def watchdog_urls(options: SystemOptions) -> tuple[str, ...]:
    """Where agent workers link (`protocol.links`): `up`'s watchdog, then its peers (each
    once: a peer may name `up`'s own)."""
    own = (f"http://127.0.0.1:{options.watch_port}",) if options.with_watch else ()
    return tuple(dict.fromkeys((*own, *options.peer_watchdogs)))


def _link_env(options: SystemOptions) -> dict[str, str]:
    """Where agent workers find the watchdogs for their links (`protocol.links`)."""
    urls = watchdog_urls(options)
    return {WATCHDOG_URL_VARIABLE: ",".join(urls)} if urls else {}


def server_config_path(options: SystemOptions, k: int = 0) -> Path:
    return options.state_dir / f"{node_name(k)}.yaml"


def write_server_config(plan: SystemPlan) -> None:
    """livekit.yaml (one per node) for the local server; it holds the API secret: 0600.
    With the redis-server `up` starts, its redis.conf too (0600: it holds its password)."""
    for k, config in enumerate(plan.nodes):
        write_private(server_config_path(plan.options, k), config.to_yaml())
    if plan.starts_redis:
        write_private(redis_config_path(plan.options), redis_config(plan.options))
    if plan.prometheus:
        options = plan.options
        livekit = [int(str(node.extra["prometheus_port"])) for node in plan.nodes]
        watch = options.watch_port if options.with_watch else None
        web = options.web_port if options.with_web else None
        text = prometheus_config(watch, web, livekit, options.prometheus_interval)
        write_private(prometheus_config_path(options), text)


def prometheus_config_path(options: SystemOptions) -> Path:
    return options.state_dir / "prometheus" / "prometheus.yml"


def redis_config_path(options: SystemOptions) -> Path:
    return options.state_dir / "redis" / "redis.conf"


def redis_config(options: SystemOptions) -> str:
    """redis-server's config: loopback only, no persistence, a password."""
    folder = options.state_dir / "redis"
    return "\n".join(
        [
            f"port {options.redis_port}",
            "bind 127.0.0.1",
            'save ""',
            "appendonly no",
            f'dir "{folder}"',
            "set-proc-title no",  # its command line stays the one in its pidfile
            f"requirepass {redis_password(options)}",
            "",
        ]
    )


def _redis_part(options: SystemOptions) -> PartSpec:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigurationError(
            "up --nodes needs redis-server (Debian's redis-server package; ./setup.sh "
            "installs it), or REDIS_URL pointing at a Redis you run"
        )
    return PartSpec(
        name="redis",
        argv=(binary, str(redis_config_path(options))),  # its password is in the file, not ps
        port=options.redis_port,
        settle=3.0,
        ready_line=REDIS_READY_LINE,
    )


def _parts(
    settings: Settings,
    options: SystemOptions,
    nodes: tuple[ServerConfig, ...],
    urls: tuple[str, ...],
    with_redis: bool,
    with_prometheus: bool = False,
) -> tuple[PartSpec, ...]:
    """The parts `up` runs, in start order."""
    parts = []
    if with_redis:
        parts.append(_redis_part(options))
    if nodes:
        for k, config in enumerate(nodes):
            config_path = server_config_path(options, k)  # written once `up`'s checks pass
            parts.append(
                PartSpec(
                    name=node_name(k),
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
                ["web", "--port", str(options.web_port), *_agent_flags(options)]
                + [flag for url in urls[1:] for flag in ("--node", url)],
                f"http://127.0.0.1:{options.web_port}/healthz",
                options.web_port,
            )
        )
    if options.with_watch:
        parts.append(
            _python_part(
                "watch",
                [
                    "watch",
                    "--port",
                    str(options.watch_port),
                    *_agent_flags(options),
                    "--parts-status",
                    str(options.state_dir / "status.json"),
                    *(["--prometheus", options.prometheus_url] if with_prometheus else []),
                ],
                f"http://127.0.0.1:{options.watch_port}/healthz",
                options.watch_port,
                {REDIS_URL_VARIABLE: redis_url(settings, options)} if options.nodes > 1 else {},
            )
        )
    if with_prometheus:
        folder = prometheus_config_path(options).parent
        parts.append(
            prometheus_part(folder / "prometheus.yml", folder / "data", options.prometheus_port)
        )
    return tuple(parts)


def _further_node_urls(settings: Settings, nodes: tuple[ServerConfig, ...]) -> list[str]:
    """Where people connect to each local node after the first (LIVEKIT_URL's)."""
    host = urlparse(settings.ws_url).hostname or "127.0.0.1"
    scheme = urlparse(settings.ws_url).scheme
    return [f"{scheme}://{host}:{c.http_port}" for c in nodes[1:]]


def _agent_flags(options: SystemOptions) -> list[str]:
    return [flag for name in options.agent_names for flag in ("--agent", name)]
