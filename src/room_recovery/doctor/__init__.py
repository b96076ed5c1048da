"""`room-recovery doctor`: why did no agent come? See `checks` for the causes, in order."""

from .check import Check
from .checks import DoctorOptions, diagnose, render, to_json

__all__ = ["Check", "DoctorOptions", "diagnose", "render", "to_json"]
