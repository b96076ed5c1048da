"""The watchdog's recent recoveries, for the operations view: a bounded list in memory.

The metrics count recoveries by cause; the journal keeps the last few with their room and
detail, so an operator sees *which* rooms were repaired and why, without a log search.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass

JOURNAL_SIZE = 50


@dataclass(frozen=True)
class Recovery:
    """One recovery action: when (Unix time), where, why (a metrics cause), and detail."""

    at: float
    room: str
    cause: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Journal:
    """The last `size` recoveries, newest last."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self._items: deque[Recovery] = deque(maxlen=size)

    def add(self, room: str, cause: str, detail: str = "", at: float | None = None) -> Recovery:
        item = Recovery(time.time() if at is None else at, room, cause, detail)
        self._items.append(item)
        return item

    def recent(self) -> list[Recovery]:
        """Newest first."""
        return list(reversed(self._items))

    def __len__(self) -> int:
        return len(self._items)
