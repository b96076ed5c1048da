"""`room-recovery doctor`: why did no agent come? See `checks` for the causes, in order."""

from .checks import Check, DoctorOptions, diagnose, render, to_json

__all__ = ["Check", "DoctorOptions", "diagnose", "render", "to_json"]
