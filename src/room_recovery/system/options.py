"""What `up` runs and where: the options of the voice system, and the user's own agents."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..core.defaults import AGENT_HEALTH_PORT, DEMO_AGENT, PROMETHEUS_PORT, WATCH_PORT, WEB_PORT
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..rules.model import AUTOMATIC, agent_ref, valid_agent_name

DEFAULT_REDIS_PORT = 6380  # not 6379: a redis-server of the machine's own may hold that one
NODE_PORT_STEP = 10  # node k (from 0) of `--nodes` listens on LIVEKIT_URL's port + 10 k
MAX_NODES = 9
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
PART_NAMES = ("redis", "livekit", "agent", "web", "watch", "prometheus")


@dataclass(frozen=True)
class ExtraAgent:
    """An agent of the user's own that `up` runs next to the demo one (`--agent-command`)."""

    name: str  # the name it registers for explicit dispatch (a label when `automatic`)
    argv: tuple[str, ...]
    automatic: bool = False  # it registers without agent_name: LiveKit's automatic dispatch

    @property
    def ref(self) -> str:
        """How the page and the watchdog name it: NAME, or auto:NAME."""
        return f"{AUTOMATIC}{self.name}" if self.automatic else self.name

    @property
    def part_name(self) -> str:
        return f"agent-{self.name}"


def parse_agent_command(spec: str) -> ExtraAgent:
    """`NAME=COMMAND` (`letta-agent=python letta_voice_agent.py start`) as an ExtraAgent.

    `auto:NAME=COMMAND` is a worker without an agent_name (LiveKit's automatic dispatch):
    NAME is then only its label on the page and in `status`.
    """
    example = (
        "for example --agent-command 'letta-agent=python letta_voice_agent.py start', or "
        "'auto:letta=python letta_voice_agent.py start' for a worker without agent_name"
    )
    ref, sep, command = spec.partition("=")
    name, automatic = agent_ref(ref.strip())
    if not sep or not command.strip():
        raise ConfigurationError(
            f"--agent-command {spec!r} must be NAME=COMMAND or auto:NAME=COMMAND, {example}"
        )
    if not valid_agent_name(name):
        raise ConfigurationError(
            f"--agent-command: agent name {name!r} may use only letters, digits, '.', '_' "
            f"and '-' (up to 64), {example}"
        )
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ConfigurationError(f"--agent-command for {name!r}: {exc} in {command!r}") from None
    return ExtraAgent(name, argv, automatic)


# Where `up` finds things on this machine: read here, as the rest of what `up` runs and where.


def cache_dir() -> Path:
    """The project's cache: ROOM_RECOVERY_CACHE, or ~/.cache/room-recovery."""
    configured = os.environ.get("ROOM_RECOVERY_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "room-recovery"


def configured_server_binary() -> str | None:
    """LIVEKIT_SERVER_BIN: a livekit-server of your own, used before the one setup built."""
    return os.environ.get("LIVEKIT_SERVER_BIN") or None


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
    agent_name: str = DEMO_AGENT
    agent_health_port: int = AGENT_HEALTH_PORT
    web_port: int = WEB_PORT
    watch_port: int = WATCH_PORT
    with_agent: bool = True
    with_web: bool = True
    with_watch: bool = True
    extra_agents: tuple[ExtraAgent, ...] = ()
    nodes: int = 1  # livekit-server nodes; more than one share Redis (LiveKit's distributed mode)
    redis_port: int = DEFAULT_REDIS_PORT  # the redis-server `up` starts for them
    prometheus: bool | None = None  # run Prometheus; None: when --nodes runs a cluster
    prometheus_port: int = PROMETHEUS_PORT
    prometheus_interval: float = 5.0  # seconds between its scrapes, and its alerts' evaluations
    # further receivers of the nodes' webhooks (--webhook): the other watchdogs, so that
    # whichever leads hears of a room at once, not at its next listing
    webhooks: tuple[str, ...] = ()
    # the other watchdogs of a cluster (--peer-watchdog): LiveKit sends them webhooks, and
    # up's agent workers link to them too, so that whichever leads hears their news
    peer_watchdogs: tuple[str, ...] = ()

    @property
    def wants_prometheus(self) -> bool:
        """Whether Prometheus was asked for (--prometheus), or comes with a cluster."""
        return self.prometheus if self.prometheus is not None else self.nodes > 1

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def agent_names(self) -> list[str]:
        """Every agent the page offers and the watchdog knows: the demo one, then the user's."""
        demo = [self.agent_name] if self.with_agent or not self.extra_agents else []
        return demo + [agent.ref for agent in self.extra_agents]

    @property
    def supervisor_pidfile(self) -> Path:
        return self.state_dir / "run" / "supervisor.pid"

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"

    @property
    def ops_url(self) -> str:
        """The watchdog's operations view."""
        return f"http://127.0.0.1:{self.watch_port}/"


def server_is_local(settings: Settings) -> bool:
    return (urlparse(settings.livekit_url).hostname or "") in LOCAL_HOSTS


def server_port(settings: Settings) -> int:
    parsed = urlparse(settings.livekit_url)
    return parsed.port or {"ws": 80, "http": 80, "wss": 443, "https": 443}[parsed.scheme]
