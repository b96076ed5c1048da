"""`room-recovery doctor`: why did no agent come? See `checks` for the causes, in order."""

from .checks import DoctorOptions, diagnose, render, to_json
from .outcome import Check

__all__ = ["Check", "DoctorOptions", "diagnose", "render", "to_json"]
