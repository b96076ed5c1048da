"""The defaults every part of room-recovery agrees on, in one place: the demo agent's name and
the local ports. `up` (`system.options.SystemOptions`), the CLI's options, the page server, the
watchdog, the demo worker and `doctor` read them here, so that a part started alone finds the
others where `up` would have put them. (Environment variables are read in `core.settings`.)
"""

from __future__ import annotations

DEMO_AGENT = "demo-agent"  # the demo worker's agent_name, and what the page offers first
LOCAL_HOST = "127.0.0.1"
WEB_PORT = 8080  # the page and its API (`room-recovery web`)
WORKER_HTTP_PORT = 8081  # livekit-agents' own HTTP server in production mode (`start`): not ours
WATCH_PORT = 8082  # the watchdog: /healthz, /metrics, the operations view
# The demo agent's health: not 8081, which livekit-agents' HTTP server takes in production
# mode (`start`), so a worker of yours run next to the demo agent would find it taken and exit.
AGENT_HEALTH_PORT = 8083
# The Prometheus `up --prometheus` starts: not 9090, which a Prometheus of the machine's own
# (Debian's package starts one as a service) may hold.
PROMETHEUS_PORT = 8084


def local_url(port: int, path: str = "") -> str:
    """`http://127.0.0.1:<port><path>`: where a part started by `up` on this machine answers."""
    return f"http://{LOCAL_HOST}:{port}{path}"
