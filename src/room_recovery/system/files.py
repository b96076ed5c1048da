"""Files that hold secrets: readable by their owner only.

`livekit.yaml` holds the API secret. It is written 0600 (also when it existed with wider
permissions); a state folder that room-recovery creates is 0700. A folder that exists
already (`--state-dir ~`) keeps its permissions: the file's own are what protect it.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> None:
    """Create `path` 0700 if it is missing (parents as usual); leave an existing one alone."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR, exist_ok=True)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only, atomically."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE)  # an old temporary may have had wider bits
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            descriptor = -1
            handle.write(text)
    finally:
        if descriptor != -1:
            os.close(descriptor)
    temporary.replace(path)
