"""`room-recovery doctor`: why did no agent come? Walks the causes in order, says what to do.

checks        the checks, in order, and the diagnosis they make (`diagnose`, `render`)
outcome       one check's result: ok, fail or skipped, with the fix
worker_load   does your own worker take jobs (the load livekit-agents reports on /worker)
own_services  do room-recovery's own services (watchdog, page server) answer /healthz
"""

from .checks import DoctorOptions, diagnose, render, to_json
from .outcome import Check

__all__ = ["Check", "DoctorOptions", "diagnose", "render", "to_json"]
