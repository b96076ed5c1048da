"""The watchdog service: a person waiting without an agent gets one within seconds.

`service.Watchdog` holds the loops and the per-room recovery; `http` serves webhooks,
metrics and health; `metrics` declares what is exported, with `parts` (`up`'s parts, from
its status.json); `alerts` reads what Prometheus says for the operations view. Decisions
are `rules.watch`.
"""

from .http import create_app, serve
from .service import Watchdog, WatchdogOptions

__all__ = ["Watchdog", "WatchdogOptions", "create_app", "serve"]
