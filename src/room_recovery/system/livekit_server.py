"""Running a local livekit-server: its binary, its config file, and its process.

Used by the supervisor (`room-recovery up`), the test fixtures and the benchmarks. The
process is started in its own session; stopping it sends SIGTERM, waits a bounded time
(the server waits for participants to leave on SIGTERM), then SIGKILLs that same pid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from ..core.errors import ProcessError
from .files import write_private
from .options import cache_dir, configured_server_binary
from .processes import die_with_parent

logger = logging.getLogger(__name__)

SERVER_VERSION = "1.13.5"
SETUP_HINT = "run ./setup.sh, which builds it"
MIN_SECRET_LENGTH = 32  # livekit-server refuses shorter secrets outside development mode


def find_server_binary() -> Path:
    """The livekit-server that setup built (or LIVEKIT_SERVER_BIN, or one on PATH)."""
    candidates = [configured_server_binary(), str(cache_dir() / "bin" / "livekit-server")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    raise ProcessError(
        f"livekit-server not found (looked in {cache_dir() / 'bin'} and on PATH): {SETUP_HINT}"
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing holds right now (TCP or UDP, by `kind`), below the
    kernel's ephemeral range: a port from that range is handed to outgoing connections
    too, and one taken between this check and the server's bind fails its start (seen with
    tests running in parallel)."""
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_floor())
    for _ in range(200):
        port = random.randrange(low, high)
        if _bindable(port, kind):
            return port
    with socket.socket(socket.AF_INET, kind) as sock:  # all taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


PORT_RANGE = (10_000, 32_000)


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return PORT_RANGE[1]


def _bindable(port: int, kind: int) -> bool:
    # on every address: livekit-server binds its UDP port on each interface, not just loopback
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("0.0.0.0", port))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ServerConfig:
    """The parts of a livekit-server config this project sets."""

    http_port: int
    rtc_tcp_port: int
    udp_port: int
    keys: dict[str, str]
    bind: str = "127.0.0.1"
    webhook_urls: tuple[str, ...] = ()
    redis_address: str | None = None
    redis_password: str = ""
    redis_db: int = 0
    log_level: str = "info"
    empty_timeout: int = 300
    departure_timeout: int = 20
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def development(self) -> bool:
        """Short secrets (the spec's `devkey: secret`) need development mode to be accepted."""
        return any(len(secret) < MIN_SECRET_LENGTH for secret in self.keys.values())

    @classmethod
    def on_free_ports(cls, keys: dict[str, str], **options: object) -> ServerConfig:
        return cls(
            http_port=free_port(),
            rtc_tcp_port=free_port(),
            udp_port=free_port(socket.SOCK_DGRAM),
            keys=keys,
            **options,  # type: ignore[arg-type]
        )

    @property
    def url(self) -> str:
        return f"ws://{self.bind}:{self.http_port}"

    def to_yaml(self) -> str:
        """The config file's text (JSON, which is valid YAML)."""
        config: dict[str, object] = {
            "port": self.http_port,
            "bind_addresses": [self.bind],
            "log_level": self.log_level,
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.udp_port,
                "use_external_ip": False,
                "node_ip": self.bind,
            },
            "keys": self.keys,
            "development": self.development,
            "room": {
                "empty_timeout": self.empty_timeout,
                "departure_timeout": self.departure_timeout,
            },
        }
        if self.webhook_urls:
            config["webhook"] = {"api_key": next(iter(self.keys)), "urls": list(self.webhook_urls)}
        if self.redis_address:
            redis: dict[str, object] = {"address": self.redis_address, "db": self.redis_db}
            config["redis"] = redis | (
                {"password": self.redis_password} if self.redis_password else {}
            )
        config.update(self.extra)
        return json.dumps(config, indent=2)


async def wait_until_answering(
    http_url: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll GET / until the server answers 200, the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while True:
            if process is not None and process.poll() is not None:
                raise ProcessError(f"livekit-server exited with code {process.returncode} at start")
            try:
                async with session.get(http_url + "/") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"livekit-server did not answer at {http_url} within {timeout:g} s"
                )
            await asyncio.sleep(0.05)


def stop_process(
    process: subprocess.Popen[bytes], grace: float = 5.0, name: str = "process"
) -> int:
    """SIGTERM, a bounded wait, then SIGKILL of that same process. Returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            logger.info("%s (pid %d) still running after %gs, killing it", name, process.pid, grace)
            process.kill()
            process.wait(5)
    return process.returncode


class LiveKitServer:
    """A livekit-server process of our own: `async with LiveKitServer(config, folder)`."""

    def __init__(
        self,
        config: ServerConfig,
        folder: Path,
        ready_timeout: float = 20.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.config = config
        self.folder = folder
        self.ready_timeout = ready_timeout
        # on SIGTERM the server waits for its participants to leave: at most this long
        self.stop_grace = stop_grace
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "livekit.yaml"

    @property
    def log_path(self) -> Path:
        return self.folder / "livekit.log"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.bind}:{self.config.http_port}"

    async def start(self) -> None:
        binary = find_server_binary()
        write_private(self.config_path, self.config.to_yaml())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (starts at once, never blocks)
                [str(binary), "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        logger.info(
            "started livekit-server", extra={"pid": self.process.pid, "url": self.config.url}
        )
        try:
            await wait_until_answering(self.http_url, self.ready_timeout, self.process)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self, grace: float | None = None) -> None:
        if self.process is not None:
            stop_process(
                self.process, self.stop_grace if grace is None else grace, "livekit-server"
            )

    async def __aenter__(self) -> LiveKitServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
