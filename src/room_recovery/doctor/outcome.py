"""One step of the doctor's diagnosis, as every check reports it: passed, failed or skipped."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIPPED = "skipped"  # could not run: an earlier check failed, or nothing to check


@dataclass(frozen=True)
class Check:
    """One step of the diagnosis: what was checked, what came out, and what would fix it."""

    name: str
    status: Outcome
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Outcome.OK


def skipped(name: str, reason: str) -> Check:
    """A check that could not run because an earlier one failed (`reason` says which)."""
    return Check(name, Outcome.SKIPPED, f"not checked: {reason}")
