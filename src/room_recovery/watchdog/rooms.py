"""The rooms the watchdog knows, and which of them it looks at now (`rules.attention`).

Close rooms are looked at every poll. Quiet rooms wait in the order of their last look,
so the one glanced at longest ago is at the front: choosing which to glance at costs as
much as the rooms chosen, never a pass over every room.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from ..rules.attention import AttentionPolicy, Pacer, RoomSignals, close_reason
from ..rules.watch import RoomHistory


@dataclass
class WatchedRoom:
    """What the watchdog remembers of one room between looks."""

    history: RoomHistory = field(default_factory=RoomHistory)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    agent_name: str | None = None
    join_recorded: bool = False
    ready_at: float = 0.0  # when a worker for its agent last (re)registered
    replacing: str | None = None  # the dead agent whose replacement the room is waiting for
    awaited: bool = False  # held back for a dispatch made already (logged once)
    counts: dict[str, int] = field(default_factory=dict)  # participants by kind, last look
    people: tuple[str, ...] = ()  # identities at the last look
    agents: tuple[str, ...] = ()
    waiting: bool = False  # a person waited without a live agent at the last look
    looking: asyncio.Task[bool] | None = None  # a look at this room, while it runs
    last_event: float = 0.0  # when a webhook, link message or listing last woke it
    last_look: float = 0.0
    looks: int = 0  # looks at the room so far (each one a ListParticipants call)
    listed: int | None = None  # its participant count in the last room listing
    reason: str | None = "new"  # why it is looked at closely; None while quiet
    unanswered: dict[str, float] = field(default_factory=dict)  # person sid → since (rules.reach)

    def busy(self) -> bool:
        return self.looking is not None and not self.looking.done()


class RoomBook:
    """Every known room, split into the close ones and the quiet ones."""

    def __init__(self, policy: AttentionPolicy, now: float) -> None:
        self.policy = policy
        self.rooms: dict[str, WatchedRoom] = {}
        self._close: set[str] = set()
        self._quiet: OrderedDict[str, None] = OrderedDict()  # oldest look first
        self._pacer = Pacer(policy.revisit_rate, max(1.0, policy.revisit_rate), now)

    def get(self, name: str) -> WatchedRoom | None:
        return self.rooms.get(name)

    def wake(self, name: str, now: float) -> WatchedRoom:
        """Something happened in `name` (or it is new): look closely for a while."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = WatchedRoom()
        room.last_event = now
        room.reason = room.reason or "settling"
        self._quiet.pop(name, None)
        self._close.add(name)
        return room

    def looked(self, name: str, signals: RoomSignals, now: float) -> None:
        """Record a look: the room stays close while `close_reason` gives one."""
        room = self.rooms.get(name)
        if room is None:
            return
        room.last_look = now
        room.looks += 1
        room.reason = close_reason(signals, room.last_event, now, self.policy)
        if room.reason is None and not self.policy.watch_all:
            self._close.discard(name)
            self._quiet.pop(name, None)
            self._quiet[name] = None  # to the back: looked at just now
        else:
            self._quiet.pop(name, None)
            self._close.add(name)

    def forget(self, name: str) -> None:
        self.rooms.pop(name, None)
        self._close.discard(name)
        self._quiet.pop(name, None)

    def due(self, now: float) -> list[str]:
        """The rooms to look at in this poll: every close one, then the quiet rooms whose
        turn has come, oldest first, as many as the revisit rate allows."""
        due = [name for name in self._close if not self.rooms[name].busy()]
        glance: list[str] = []
        for name in self._quiet:
            room = self.rooms[name]
            if now - room.last_look < self.policy.revisit_after:
                break  # the rest were looked at even more recently
            if not room.busy():
                glance.append(name)
            if len(glance) >= self._pacer.burst:
                break
        return due + glance[: self._pacer.take(len(glance), now)]

    def longest_wait(self, now: float) -> float:
        """Seconds the person who has waited longest without a live agent has waited, as
        of the last looks (0 when nobody waits). Only close rooms can have such a person."""
        since = [
            room.history.waiting_since
            for name in self._close
            if (room := self.rooms[name]).waiting and room.history.waiting_since is not None
        ]
        return max(0.0, now - min(since)) if since else 0.0

    def close_count(self) -> int:
        return len(self._close)

    def quiet_count(self) -> int:
        return len(self._quiet)

    def waiting_count(self) -> int:
        """Rooms where a person waited at the last look (only close rooms can be such)."""
        return sum(1 for name in self._close if self.rooms[name].waiting)
