"""The page's web server: the voice page, its token endpoint, the leave beacon.

server  the aiohttp application (routes, headers, running it)
rules   what it decides without I/O: agents, timing, rooms, grants, leave keys, CSP
static  the page itself (index.html, app.js, style.css)
"""

from .server import create_app, running, serve

__all__ = ["create_app", "running", "serve"]
