"""CleanupReport: what a cleanup removed, deleted, kept and failed to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RemovedParticipant:
    room: str
    identity: str
    reason: str


@dataclass(frozen=True)
class DeletedRoom:
    room: str
    reason: str


@dataclass(frozen=True)
class KeptParticipant:
    room: str
    identity: str


@dataclass(frozen=True)
class Failure:
    room: str
    identity: str | None
    error: str


@dataclass
class CleanupReport:
    """The outcome of one cleanup. With `dry_run`, it lists what would have been done."""

    dry_run: bool = False
    removed: list[RemovedParticipant] = field(default_factory=list)
    deleted: list[DeletedRoom] = field(default_factory=list)
    kept: list[KeptParticipant] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    rooms_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    @property
    def changed_anything(self) -> bool:
        return bool(self.removed or self.deleted)

    def merge(self, other: CleanupReport) -> None:
        """Add another report's entries to this one."""
        self.removed.extend(other.removed)
        self.deleted.extend(other.deleted)
        self.kept.extend(other.kept)
        self.failed.extend(other.failed)
        self.rooms_checked += other.rooms_checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        """One line for people: counts of each outcome."""
        verb = "would remove" if self.dry_run else "removed"
        gone = "would delete" if self.dry_run else "deleted"
        return (
            f"checked {self.rooms_checked} room(s): {verb} {len(self.removed)} participant(s), "
            f"{gone} {len(self.deleted)} room(s), kept {len(self.kept)}, "
            f"failed {len(self.failed)}"
        )
