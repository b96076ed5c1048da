"""Which rooms the watchdog looks at: cost follows trouble, not the number of rooms."""

from __future__ import annotations

import pytest

from room_recovery.rules.attention import (
    AttentionPolicy,
    Pacer,
    RoomSignals,
    close_reason,
    next_page,
)
from room_recovery.watchdog.rooms import RoomBook

POLICY = AttentionPolicy(settle=3.0, revisit_after=10.0, revisit_rate=2.0)
HEALTHY = RoomSignals()


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        (RoomSignals(waiting=True), "waiting"),
        (RoomSignals(recovering=True), "recovering"),
        (RoomSignals(starting=True), "starting"),
        (RoomSignals(in_doubt=True), "in_doubt"),
    ],
)
def test_a_room_that_may_need_something_is_looked_at_closely(
    signals: RoomSignals, reason: str
) -> None:
    assert close_reason(signals, last_event=0.0, now=100.0, policy=POLICY) == reason


def test_a_healthy_room_is_looked_at_closely_only_while_an_event_settles() -> None:
    assert close_reason(HEALTHY, last_event=100.0, now=102.9, policy=POLICY) == "settling"
    assert close_reason(HEALTHY, last_event=100.0, now=103.0, policy=POLICY) is None


def test_the_pacer_allows_a_burst_then_its_rate() -> None:
    pacer = Pacer(rate=2.0, burst=2.0, now=0.0)
    assert pacer.take(5, now=0.0) == 2
    assert pacer.take(5, now=0.0) == 0
    assert pacer.take(5, now=0.5) == 1
    assert pacer.take(5, now=100.0) == 2  # never more than the burst, however long it waited


def test_pages_go_round_every_room_once_per_round() -> None:
    names = [f"room-{i:02d}" for i in range(7)]
    seen: list[str] = []
    after = ""
    for _ in range(3):
        page, after = next_page(names, after, 3)
        assert len(page) == 3
        seen.extend(page)
    assert sorted(set(seen)) == names  # 9 looks over 7 rooms: each once, two twice
    assert next_page(names, "", 10) == (names, "")


def book_with(*names: str) -> RoomBook:
    book = RoomBook(POLICY, now=0.0)
    for name in names:
        book.wake(name, now=0.0)
    return book


def test_a_new_room_is_looked_at_at_once() -> None:
    assert book_with("a").due(now=0.0) == ["a"]


def test_a_quiet_room_is_not_looked_at_until_its_turn_to_be_glanced_at() -> None:
    book = book_with("a")
    book.looked("a", HEALTHY, now=5.0)  # healthy, and the join has settled
    assert book.quiet_count() == 1 and book.close_count() == 0
    assert book.due(now=6.0) == []
    assert book.due(now=14.9) == []
    assert book.due(now=15.0) == ["a"]


def test_an_event_wakes_a_quiet_room() -> None:
    book = book_with("a")
    book.looked("a", HEALTHY, now=5.0)
    book.wake("a", now=6.0)
    assert book.due(now=6.0) == ["a"]
    book.looked("a", HEALTHY, now=6.25)
    assert book.due(now=6.5) == ["a"]  # settling
    book.looked("a", HEALTHY, now=9.0)
    assert book.due(now=9.25) == []


def test_a_waiting_person_keeps_the_room_close() -> None:
    book = book_with("a")
    book.looked("a", RoomSignals(waiting=True), now=50.0)
    assert book.due(now=50.25) == ["a"]


def test_quiet_rooms_are_glanced_at_oldest_first_and_at_the_revisit_rate() -> None:
    rooms = [f"r{i}" for i in range(10)]
    book = book_with(*rooms)
    for i, name in enumerate(rooms):
        book.looked(name, HEALTHY, now=5.0 + i / 100)
    glanced: list[str] = []
    now = 20.0
    while now < 25.0:  # 5 s at the revisit rate of 2 a second: about 10 glances
        due = book.due(now)
        for name in due:
            book.looked(name, HEALTHY, now)
        glanced.extend(due)
        now += 0.25
    assert glanced[:3] == ["r0", "r1", "r2"]
    assert 9 <= len(glanced) <= 12
    assert len(set(glanced)) == len(glanced)  # none twice before every other had its turn


def test_the_design_before_looks_at_every_room_every_poll() -> None:
    book = RoomBook(AttentionPolicy(watch_all=True), now=0.0)
    book.wake("a", now=0.0)
    book.looked("a", HEALTHY, now=60.0)
    assert book.due(now=60.25) == ["a"]
