"""The Prometheus `up --prometheus` runs: Debian's `prometheus` (./setup.sh installs it),
scraping the watchdog, the page server and each livekit-server node's own metrics, with
alerts/room-recovery.rules.yml loaded.

It listens on 127.0.0.1 only, keeps two days of data in the state folder, scrapes every
`--prometheus-interval` seconds (5) and evaluates the alerts as often. The watchdog is told
where it is, so the operations view shows the alerts that fire and what people felt.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..core.defaults import local_url
from ..core.errors import ConfigurationError
from .part import PartSpec

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
RULES = PROJECT_ROOT / "alerts" / "room-recovery.rules.yml"
RETENTION = "2d"
LIVEKIT_METRICS_OFFSET = 3  # node k's own metrics: its HTTP port + 3 (after rtc tcp, udp)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def require_prometheus() -> str:
    """The prometheus binary; raises ConfigurationError saying how to get it."""
    binary = prometheus_binary()
    if binary is None:
        raise ConfigurationError(
            "up --prometheus needs prometheus (Debian's prometheus package; ./setup.sh "
            "installs it), or leave --prometheus out"
        )
    return binary


def rules_file() -> Path | None:
    """alerts/room-recovery.rules.yml of this checkout, or None (an installed package)."""
    return RULES if RULES.is_file() else None


def prometheus_config(
    watch_port: int | None, web_port: int | None, livekit_metrics: list[int], interval: float
) -> str:
    """prometheus.yml (JSON, which is valid YAML): one job per kind of part."""
    jobs = [
        ("room-recovery-watchdog", [watch_port] if watch_port else []),
        ("room-recovery-page", [web_port] if web_port else []),
        ("livekit", livekit_metrics),
    ]
    rules = rules_file()
    if rules is None:
        logger.warning(
            "alerts/room-recovery.rules.yml is not next to this installation: Prometheus "
            "runs without room-recovery's alerts (load them into it yourself)"
        )
    config = {
        "global": {
            "scrape_interval": _duration(interval),
            "evaluation_interval": _duration(interval),
        },
        "rule_files": [str(rules)] if rules else [],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
            for job, ports in jobs
            if ports
        ],
    }
    return json.dumps(config, indent=2)


def _duration(seconds: float) -> str:
    """Seconds as Prometheus writes a duration: 5s, 500ms."""
    return f"{round(seconds * 1000)}ms"


def prometheus_part(config: Path, data: Path, port: int) -> PartSpec:
    """The supervised part; healthy once Prometheus says it is ready."""
    return PartSpec(
        name="prometheus",
        argv=(
            require_prometheus(),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{port}",
        ),
        health_url=local_url(port, "/-/ready"),
        port=port,
        ready_timeout=30,
    )
