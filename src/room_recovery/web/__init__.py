"""The page's web server: the voice page, its token endpoint, the leave beacon, and what
people felt (each session's report, exported for Prometheus).

server  the aiohttp application (routes, headers, running it)
policy  what it decides without I/O: agents, timing, rooms, grants, leave keys, CSP
limits  how many tokens one client gets: a rate and a cap on open rooms
access  who gets a token (sign-in hook, bounds from settings) and LiveKit's reachability
nodes   the LiveKit nodes a person may connect to, each new session to the next that answers
outcomes  a session's report, checked; the page metrics; one report per grant
reports   /api/outcome and /metrics (this machine and ROOM_RECOVERY_METRICS_FROM only)
static  the page itself (index.html and its ES modules, style.css)
"""

from .access import header_secret
from .limits import TokenLimits
from .server import create_app, running, serve

__all__ = ["TokenLimits", "create_app", "header_secret", "running", "serve"]
