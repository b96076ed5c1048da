"""`up`'s options as SystemOptions: checked, with the user's own agents parsed, before
anything starts (`up`, and `restart`, which reads them back from the running `up`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from ..core.defaults import PROMETHEUS_PORT
from ..core.errors import ConfigurationError
from ..core.extras import DEMO_MODULES, missing_modules
from ..protocol import links
from ..system.options import (
    DEFAULT_REDIS_PORT,
    ExtraAgent,
    SystemOptions,
    default_state_dir,
    parse_agent_command,
)


def up_options(
    *,
    state_dir: Path | str | None,
    agent_name: str,
    agent_health_port: int,
    web_port: int,
    watch_port: int,
    no_agent: bool,
    no_web: bool,
    no_watch: bool,
    agent_command: Sequence[str],
    nodes: int = 1,
    redis_port: int = DEFAULT_REDIS_PORT,
    prometheus: bool | None = None,
    prometheus_port: int = PROMETHEUS_PORT,
    prometheus_interval: float = 5.0,
    webhooks: Sequence[str] = (),
    peer_watchdogs: Sequence[str] = (),
) -> SystemOptions:
    """The SystemOptions of `up`'s options; raises ConfigurationError for bad ones.

    Also when the demo agent is to run but its extra is not installed, so that `up`
    fails before it starts anything.
    """
    extra_agents = _extra_agents(agent_command, agent_name, with_demo=not no_agent)
    missing = missing_modules(*DEMO_MODULES)
    if not no_agent and missing:
        raise ConfigurationError(
            f"up starts the demo agent, which needs {missing[0]} (not installed): "
            "pip install 'room-recovery[demo]', or pass --no-agent to leave it out"
        )
    return SystemOptions(
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        agent_name=agent_name,
        agent_health_port=agent_health_port,
        web_port=web_port,
        watch_port=watch_port,
        with_agent=not no_agent,
        with_web=not no_web,
        with_watch=not no_watch,
        extra_agents=extra_agents,
        nodes=nodes,
        redis_port=redis_port,
        prometheus=prometheus,
        prometheus_port=prometheus_port,
        prometheus_interval=prometheus_interval,
        webhooks=tuple(_webhook_url(url) for url in webhooks),
        peer_watchdogs=tuple(dict.fromkeys(_peer_url(url) for url in peer_watchdogs)),
    )


def _http_url(option: str, url: str, wanted: str) -> str:
    """`url` if it is an http(s) URL with a host, else a ConfigurationError that says so."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(f"{option} {url!r} is not an http(s) URL; give {wanted}")
    return url


def _webhook_url(url: str) -> str:
    """A --webhook: an http(s) URL with a host, else a ConfigurationError that says so."""
    wanted = "another watchdog's webhook address, for example http://10.0.0.2:8082/webhook"
    return _http_url("--webhook", url, wanted)


def _peer_url(url: str) -> str:
    """A --peer-watchdog: a watchdog's base address, else a ConfigurationError that says so.
    Worker links carry a credential: to another machine only over TLS (`links.needs_tls`)."""
    example = "for example http://127.0.0.1:8092, or https://watch-2.example.com"
    parsed = urlparse(_http_url("--peer-watchdog", url, f"another watchdog's address, {example}"))
    if parsed.path.strip("/") or parsed.query:
        raise ConfigurationError(
            f"--peer-watchdog {url!r} has a path; give the watchdog's address alone, {example}"
        )
    if links.needs_tls(url):
        raise ConfigurationError(
            f"--peer-watchdog {url!r} is on another machine in clear: worker links carry a "
            "credential, so put TLS in front of that watchdog and give its https:// address"
        )
    return url.rstrip("/")


def _extra_agents(
    specs: Sequence[str], demo_name: str, *, with_demo: bool
) -> tuple[ExtraAgent, ...]:
    agents = tuple(parse_agent_command(spec) for spec in specs)
    names = [agent.name for agent in agents]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError(f"--agent-command names agent {name!r} twice")
        if name == demo_name and with_demo:
            raise ConfigurationError(
                f"--agent-command: {name!r} is the demo agent's name; choose another name, "
                "or leave the demo agent out with --no-agent"
            )
    return agents
