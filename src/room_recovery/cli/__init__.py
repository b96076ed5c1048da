"""`room-recovery`: the command line (`main`).

app         the Typer app, its global options, `main` (errors as one line and an exit code)
invocation  global options before or after a command; what a command is given (`Run`)
output      consoles, tables, JSON, the progress bar, one-line errors
rooms       rooms, participants, remove, delete, clean, clean-stale
system      up, down, restart, status, logs
up_options  `up`'s options, checked, as SystemOptions
services    watch, web, doctor
"""

from .app import main

__all__ = ["main"]
