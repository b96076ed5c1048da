"""One step of the doctor's diagnosis, as every check reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One step of the diagnosis."""

    name: str
    status: str  # "ok", "fail" or "skipped"
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def skipped(name: str, reason: str) -> Check:
    """A check that could not run because an earlier one failed (`reason` says which)."""
    return Check(name, "skipped", f"not checked: {reason}")
