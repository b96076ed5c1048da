"""The operations view's data, without I/O: which rooms come first, what a room line says,
the journal of recent recoveries, and the time-to-agent distribution."""

from __future__ import annotations

import json
import time

from room_recovery.core.settings import load_settings
from room_recovery.rules.watch import RoomHistory
from room_recovery.watchdog import Watchdog, WatchdogOptions
from room_recovery.watchdog.journal import Journal
from room_recovery.watchdog.metrics import Metrics
from room_recovery.watchdog.overview import overview, room_line
from room_recovery.watchdog.rooms import WatchedRoom


def watched(**fields: object) -> WatchedRoom:
    room = WatchedRoom()
    for name, value in fields.items():
        setattr(room, name, value)
    return room


def test_a_person_waiting_is_listed_with_how_long_and_who() -> None:
    room = watched(
        waiting=True,
        people=("alice",),
        history=RoomHistory(waiting_since=100.0, dispatches=(101.0,)),
        reason="waiting",
    )
    line = room_line("r-1", room, now=104.0).to_dict()
    assert line["people"] == ["alice"] and line["agents"] == []
    assert line["waiting_for"] == 4.0
    assert line["dispatches"] == 1 and line["attention"] == "waiting"


def test_a_served_room_is_not_waiting_even_if_it_waited_before() -> None:
    room = watched(waiting=False, history=RoomHistory(waiting_since=1.0), reason=None)
    line = room_line("r-2", room, now=50.0)
    assert line.waiting_for is None and line.attention == "quiet"


def test_rooms_come_most_urgent_first() -> None:
    lines = [
        room_line("quiet", watched(reason=None), 10.0),
        room_line("close", watched(reason="settling"), 10.0),
        room_line("short", watched(waiting=True, history=RoomHistory(waiting_since=9.0)), 10.0),
        room_line("long", watched(waiting=True, history=RoomHistory(waiting_since=2.0)), 10.0),
    ]
    assert [line.name for line in sorted(lines, key=lambda line: line.urgency())] == [
        "long",
        "short",
        "close",
        "quiet",
    ]


def test_the_journal_keeps_the_newest_recoveries_first_and_bounded() -> None:
    journal = Journal(size=3)
    for number in range(5):
        journal.add(f"room-{number}", "agent_missing", at=float(number))
    assert [item.room for item in journal.recent()] == ["room-4", "room-3", "room-2"]
    assert journal.recent()[0].to_dict() == {
        "at": 4.0,
        "room": "room-4",
        "cause": "agent_missing",
        "detail": "",
    }


def test_the_join_distribution_counts_each_bucket_alone() -> None:
    metrics = Metrics()
    for seconds in (0.4, 0.45, 12.0, 99.0):
        metrics.agent_join_seconds.observe(seconds)
    buckets = dict(metrics.join_distribution())
    assert buckets[0.5] == 2 and buckets[15.0] == 1 and buckets[float("inf")] == 1
    assert sum(buckets.values()) == 4


def test_the_overview_counts_who_waits_and_lists_the_most_urgent_rooms_first() -> None:
    settings = load_settings(livekit_api_secret="a-secret-of-more-than-32-characters!")
    watchdog = Watchdog(settings, WatchdogOptions(room_alert_threshold=2))
    now = time.monotonic()
    for name, people, since in (("calm", ("c",), None), ("two", ("a", "b"), now - 5)):
        room = watchdog.book.wake(name, now)
        room.people, room.waiting = people, since is not None
        room.history = RoomHistory(waiting_since=since)
    watchdog.journal.add("two", "agent_missing", "dispatched demo-agent (attempt 1/3)")
    data = overview(watchdog, limit=1)
    assert data["rooms"]["waiting"] == 1 and data["rooms"]["people_waiting"] == 2
    assert data["rooms"]["threshold"] == 2 and data["rooms"]["alert"] is False
    assert [room["name"] for room in data["room_list"]] == ["two"] and data["more"] == 1
    assert data["recoveries"][0]["cause"] == "agent_missing"
    json.dumps(data, allow_nan=False)  # what the view fetches is plain JSON
