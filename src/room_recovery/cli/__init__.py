"""`room-recovery`: the command line (`main`)."""

from .main import main

__all__ = ["main"]
