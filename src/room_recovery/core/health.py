"""What a service says at `/healthz`: ok, failing (with why), or stalled (restart it).

The answer is JSON, `{"status": ..., "problems": [...], "loops": {...}}`, with HTTP 200 when
the status is "ok" and 503 otherwise, so a load balancer or the supervisor needs only the
code, and a person reading it (`status`, `doctor`) gets the reason:

* "stalled": one of the service's loops stopped finishing its iterations. The supervisor
  restarts a part that stays stalled (see `system.supervisor`).
* "failing": the service runs, but what it needs fails (LiveKit unreachable, a loop whose
  iterations fail). A restart would not help; the problems say what would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .loops import LoopHealth, problems

OK = "ok"
FAILING = "failing"
STALLED = "stalled"


@dataclass(frozen=True)
class Health:
    """One service's health at one moment."""

    stalled: Sequence[str] = ()
    failing: Sequence[str] = ()
    loops: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def of(cls, loops: Iterable[LoopHealth], now: float, failing: Sequence[str] = ()) -> Health:
        """The health of these loops, with other `failing` reasons added."""
        loops = list(loops)
        stalled, loop_failures = problems(loops, now)
        return cls(
            tuple(stalled),
            (*failing, *loop_failures),
            {loop.name: loop.to_dict(now) for loop in loops},
        )

    @property
    def status(self) -> str:
        if self.stalled:
            return STALLED
        return FAILING if self.failing else OK

    @property
    def http_status(self) -> int:
        return 200 if self.status == OK else 503

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "problems": [*self.stalled, *self.failing],
        }
        if self.loops:
            body["loops"] = self.loops
        return body
