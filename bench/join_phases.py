"""Where a person's wait for the agent went, phase by phase, read from a chaos run's logs.

    .venv/bin/python bench/join_phases.py STATE_DIR SESSIONS.jsonl [--slow 1.0] [--fast 0.7]

STATE_DIR is the state folder a `bench/chaos.py --nodes N` run printed ("state ..."), and
SESSIONS.jsonl what its `--sessions-out` wrote. For the sessions no fault hit that had one
room, it finds in the LiveKit nodes' logs and the agent worker's JSON log when, in that
room:

    person     the person's signalling reached a node ("starting RTC session")
    request    the worker got LiveKit's job request ("received job request")
    cleaned    the guide's pre-join cleanup was done ("successfully cleaned")
    assigned   LiveKit assigned the job ("assigned job to worker")
    launched   the worker handed the job to a process (the monitor's "launched" line, from
               this version on; before it, assigned -> agent holds both)
    agent      the agent's signalling reached a node (its job process connecting)
    active     the agent was ACTIVE ("participant active")
    announced  the worker monitor had LiveKit announce it (UpdateParticipant)

and prints each phase's median and p90 for the slow sessions (time to the agent over
--slow) beside the fast ones (at most --fast), and "page side": what the session's own
time to the agent holds beyond person-to-announced (the token request, the connection, the
event reaching the person). LiveKit rotates its logs: sessions whose lines are gone are
left out, and the count printed says how many remain.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

ROOM = re.compile(r'"room": "([^"]+)"')
WHO = re.compile(r'"participant": "([^"]+)"')
NODE_EVENTS = {
    "starting RTC session": ("person", "agent"),
    "participant active": ("person_active", "active"),
}
PHASES = (
    ("person", "request"),
    ("request", "cleaned"),
    ("cleaned", "assigned"),
    ("assigned", "agent"),
    ("assigned", "launched"),
    ("launched", "agent"),
    ("agent", "active"),
    ("active", "announced"),
    ("person", "active"),
)


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def node_events(state: Path, rooms: set[str]) -> dict[str, dict[str, float]]:
    """The first time of each event per room, from every LiveKit node's log (rotated too)."""
    events: dict[str, dict[str, float]] = {room: {} for room in rooms}
    for name in sorted(glob.glob(str(state / "logs" / "livekit*.log*"))):
        with open(name, errors="replace") as lines:
            for line in lines:
                fields = line.split("\t")
                if len(fields) < 6 or not (room := ROOM.search(fields[5])):
                    continue
                seen = events.get(room.group(1))
                if seen is None:
                    continue
                who = WHO.search(fields[5])
                agent = who is not None and who.group(1).startswith("agent")
                message, at = fields[4], stamp(fields[0])
                if message in NODE_EVENTS:
                    seen.setdefault(NODE_EVENTS[message][agent], at)
                elif message == "assigned job to worker":
                    seen.setdefault("assigned", at)
                elif message.startswith("API RoomService.UpdateParticipant"):
                    seen.setdefault("announced", at)
    return events


def worker_events(state: Path, events: dict[str, dict[str, float]]) -> None:
    for name in glob.glob(str(state / "logs" / "agent-*.log")):
        with open(name, errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                seen = events.get(record.get("room", ""))
                if seen is None:
                    continue
                message = record.get("message", "")
                if message == "received job request":
                    seen.setdefault("request", stamp(record["timestamp"]))
                elif message.endswith("successfully cleaned"):
                    seen.setdefault("cleaned", stamp(record["timestamp"]))
                elif "launched: request hook" in message:
                    seen.setdefault("launched", stamp(record["timestamp"]))


def table(label: str, rows: list[tuple[float, dict[str, float]]]) -> None:
    print(f"{label}: {len(rows)} sessions")
    for start, end in (*PHASES, ("page side", "")):
        if end:
            spans = sorted(e[end] - e[start] for _, e in rows if start in e and end in e)
        else:
            spans = sorted(
                took - (max(e["active"], e.get("announced", 0.0)) - e["person"]) for took, e in rows
            )
        if spans:
            p90 = spans[int(0.9 * len(spans))]
            name = f"{start} -> {end}" if end else start
            print(f"  {name:<22} median {statistics.median(spans):6.3f}  p90 {p90:6.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path)
    parser.add_argument("sessions", type=Path)
    parser.add_argument("--slow", type=float, default=1.0)
    parser.add_argument("--fast", type=float, default=0.7)
    args = parser.parse_args()
    try:
        sessions = [json.loads(line) for line in args.sessions.open()]
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.sessions}: {exc}", file=sys.stderr)
        return 2
    if not (args.state / "logs").is_dir():
        print(f"{args.state} has no logs/: give the state folder chaos.py printed", file=sys.stderr)
        return 2
    calm = {
        s["rooms"][0]: s["time_to_agent"]
        for s in sessions
        if s["saw"] == ["none"] and s["time_to_agent"] is not None and len(s["rooms"]) == 1
    }
    events = node_events(args.state, set(calm))
    worker_events(args.state, events)
    needed = {"person", "request", "assigned", "agent", "active"}
    rows = [(calm[room], e) for room, e in events.items() if needed <= e.keys()]
    print(
        f"sessions no fault hit (vanishing people left out): {len(calm)}, in the logs {len(rows)}"
    )
    table(f"slow (over {args.slow:g} s)", [r for r in rows if r[0] > args.slow])
    table(f"fast (at most {args.fast:g} s)", [r for r in rows if r[0] <= args.fast])
    return 0


if __name__ == "__main__":
    sys.exit(main())
