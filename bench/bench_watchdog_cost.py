"""Benchmark: what the watchdog costs per healthy room, and how soon it heals among many.

    .venv/bin/python bench/bench_watchdog_cost.py [--sizes 0,100,500,1000] [--window 20]
                                                  [--kills 10]

On a real livekit-server, healthy rooms are filled in (each with a person and an agent that
hold only their signalling socket: `signal_participants.py`; the server removes such
participants a minute after they join, so each measurement gets rooms of its own, filled
just before it). At each size the watchdog runs in a process of its own, once per design:

* before: every room looked at every poll (the design before issue 14; `watch_all`);
* now:    only rooms that may need something (`rules.attention`); quiet rooms glanced at,
          paced, at most 2 a second.

After a warm-up (the first listing wakes every room; they settle and go quiet), the watchdog
process measures, over `--window` seconds: the LiveKit API calls it made a second and its
CPU time a second (user + system, all threads; 100 % = one core). No webhooks are sent:
what they add is per event, not per second.

Then, at the largest size and with the design of now, `--kills` times each, as in
`bench_agent_kinds.py`: a person joins a fresh room among the healthy ones, the demo agent
(linked to the watchdog) comes, and its job process, or its whole worker while a second is
registered, is SIGKILLed; the clock runs until a new agent is visible to the person. The
healthy rooms are filled in anew every few kills, as their participants last a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

import aiohttp
from livekit import rtc

from bench_agent_kinds import DEMO, PREFIX, Worker, agents_of, percentile, token, trial, until
from room_recovery.core.settings import Settings, load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.rules.attention import AttentionPolicy
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running

HERE = Path(__file__).resolve().parent
KEY = "benchkey"
FILL = f"{PREFIX}fill-"
DESIGNS = ("before", "now")
Result = dict[str, float]
Filler = subprocess.Popen[str]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def watchdog_process(url: str, secret: str, design: str, window: float, prefix: str) -> None:
    """The child: run one watchdog, measure it, print one JSON line; with `window` 0, serve
    its links and hold until standard input closes."""
    if window == 0:  # its log, on standard error, is kept beside the workers' logs
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = load_settings(
        livekit_url=url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=prefix
    )
    options = WatchdogOptions(
        agent_name=DEMO, attention=AttentionPolicy(watch_all=design == "before")
    )
    watchdog = Watchdog(settings, options)
    async with running(create_app(watchdog), "127.0.0.1", 0) as base:
        print(f"SERVING {base}", flush=True)
        if window == 0:
            await asyncio.to_thread(sys.stdin.read)
            return
        warm_until = time.monotonic() + 30
        await asyncio.sleep(2)  # the first listing and the looks it starts
        while time.monotonic() < warm_until and design == "now":
            if watchdog.book.close_count() == 0 and watchdog.loops["sweep"].runs > 1:
                break
            await asyncio.sleep(0.25)
        if design == "before":
            await asyncio.sleep(3)
        calls, cpu, started = watchdog.manager.api_calls, cpu_seconds(), time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - started
        result = {
            "rooms": len(watchdog.book.rooms),
            "close": watchdog.book.close_count(),
            "calls_per_second": (watchdog.manager.api_calls - calls) / elapsed,
            "cpu_share": (cpu_seconds() - cpu) / elapsed,
        }
        print("RESULT " + json.dumps(result), flush=True)


def child(
    url: str, secret: str, design: str, window: float, prefix: str, log: IO[str] | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--watchdog", design, "--url", url, "--secret", secret]
    return subprocess.Popen(
        [*argv, "--window", str(window), "--prefix", prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )


def read_line(process: subprocess.Popen[str], mark: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(mark):
            return line[len(mark) :].strip()
    raise RuntimeError(f"the child ended without a {mark.strip()} line")


async def measure(url: str, secret: str, design: str, size: int, window: float) -> Result:
    """Fill `size` healthy rooms of their own, then measure one watchdog over them."""
    prefix = f"{PREFIX}{design}{size}-"
    started = time.monotonic()
    filler = await asyncio.to_thread(fill, url, secret, prefix, size)
    filled = time.monotonic() - started
    process = child(url, secret, design, window, prefix)
    try:
        result = dict(json.loads(await asyncio.to_thread(read_line, process, "RESULT ")))
    finally:
        if process.stdin:
            process.stdin.close()
        await asyncio.to_thread(process.wait, 30)
        dropped = await asyncio.to_thread(unfill, filler)
    return {**result, "fill_seconds": filled, "dropped": dropped}


def fill(url: str, secret: str, prefix: str, count: int) -> Filler:
    argv = [sys.executable, str(HERE / "signal_participants.py"), url, KEY, secret, prefix]
    process = subprocess.Popen(
        [*argv, "0", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    read_line(process, "READY ")
    return process


def unfill(process: Filler) -> int:
    """Let the filler's participants go; returns how many the server dropped meanwhile."""
    if process.stdin:
        process.stdin.close()
    dropped = int(read_line(process, "LEFT ") or 0)
    process.wait(30)
    return dropped


def kill_row(name: str, seconds: list[float]) -> str:
    return (
        f"| {name:<34} | {len(seconds):>2} | {statistics.median(seconds):5.2f} | "
        f"{percentile(seconds, 0.95):5.2f} | {max(seconds):5.2f} |"
    )


async def close_rooms(base: str) -> float:
    """The watchdog child's close rooms, from its metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('room_recovery_watched_rooms{attention="close"}'):
            return float(line.split()[-1])
    return 0.0


async def first_dispatch(settings: Settings, workers: list[Worker], port: int) -> float:
    """Seconds until an agent comes to a fresh room, not counted: right after 2,000
    participants join, livekit-server here holds job requests for up to ~15 s."""
    room = rtc.Room()
    started = time.perf_counter()
    await room.connect(settings.ws_url, token(settings, f"{PREFIX}{uuid.uuid4().hex[:8]}", "demo"))
    try:
        await until(lambda: agents_of(room), 45, "an agent after the filling")
        return time.perf_counter() - started
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        await until(lambda: not any(w.job_pids(port) for w in workers), 30, "the job to end")


async def kills(
    config: ServerConfig, secret: str, size: int, count: int, folder: Path
) -> list[str]:
    """`count` kills of each fault among `size` healthy rooms, a few per filling (the
    server drops the healthy rooms' participants a minute after they join)."""
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=PREFIX
    )
    with (folder / "watchdog.log").open("w") as log:
        process = child(config.url, secret, "now", 0, PREFIX, log)
    pool: list[Worker] = []
    rows = []
    failures: dict[str, int] = {}  # trials cut short: the server held a dispatch
    try:
        base = await asyncio.to_thread(read_line, process, "SERVING ")
        env = {WATCHDOG_URL_VARIABLE: base}
        pool = [Worker("demo", settings, folder / f"demo-{n}.log", env) for n in (0, 1)]
        for fault in ("job", "worker"):
            workers = pool if fault == "worker" else pool[:1]
            for worker in workers:
                if worker.process is None or worker.process.poll() is not None:
                    await worker.start()
            times: list[float] = []
            while len(times) < count:
                prefix = f"{FILL}{fault}{len(times)}-"
                filled_at = time.monotonic()
                filler = await asyncio.to_thread(fill, config.url, secret, prefix, size)
                try:
                    for _ in range(80):  # the new rooms' first looks settle (20 s at most)
                        if await close_rooms(base) == 0:
                            break
                        await asyncio.sleep(0.25)
                    stalled = await first_dispatch(settings, workers, config.http_port)
                    print(f"a dispatch after the filling took {stalled:.1f} s", flush=True)
                    # trials while the healthy rooms' participants are surely still there
                    while len(times) < count and time.monotonic() < filled_at + 45:
                        elapsed, new, _ = await trial(
                            settings, "demo", fault, workers, config.http_port
                        )
                        times.append(elapsed)
                        print(f"{fault} {len(times)}: {elapsed:.2f} s, {new} new", flush=True)
                except (TimeoutError, IndexError) as exc:  # a dispatch the server held
                    failures[fault] = failures.get(fault, 0) + 1
                    print(f"{fault}: a trial failed ({exc}); filling in anew", flush=True)
                    if failures[fault] > 3:
                        break
                finally:
                    dropped = await asyncio.to_thread(unfill, filler)
                if dropped:
                    print(f"the server dropped {dropped} healthy participants", flush=True)
            if times:
                name = f"demo agent, {fault} killed"
                rows.append(kill_row(name, times) + f" {failures.get(fault, 0)} |")
    finally:
        for worker in pool:
            worker.stop()
        if process.stdin:
            process.stdin.close()
        await asyncio.to_thread(process.wait, 30)
    return rows


async def main(sizes: list[int], window: float, count: int, logs: Path | None) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    table: list[str] = []
    if logs is not None:
        os.makedirs(logs, exist_ok=True)
    keep = contextlib.nullcontext(str(logs)) if logs else None
    with keep or tempfile.TemporaryDirectory(prefix="bench-watchdog-cost-") as folder:
        async with LiveKitServer(config, Path(folder)):
            for size in sizes:
                results = {}
                for design in DESIGNS:
                    results[design] = await measure(config.url, secret, design, size, window)
                    print(f"{size} rooms, {design}: {results[design]}", flush=True)
                before, now = results["before"], results["now"]
                ratio = (
                    f"{before['calls_per_second'] / now['calls_per_second']:.0f}x"
                    if now["calls_per_second"] > 0
                    else "-"
                )
                table.append(
                    f"| {size:>5} | {before['calls_per_second']:8.1f} | "
                    f"{100 * before['cpu_share']:5.1f} % | {now['calls_per_second']:6.2f} | "
                    f"{100 * now['cpu_share']:5.1f} % | {ratio:>5} | "
                    f"{int(before['dropped'] + now['dropped'])} |"
                )
            kill_rows = await kills(config, secret, sizes[-1], count, Path(folder)) if count else []
    print()
    print(f"the watchdog's cost with healthy rooms ({window:g} s windows; CPU: 100 % = a core)")
    print("| rooms | before: calls/s | CPU | now: calls/s | CPU | fewer calls | dropped |")
    print("|------:|----------------:|----:|-------------:|----:|------:|---:|")
    for line in table:
        print(line)
    if kill_rows:
        print()
        print(f"at {sizes[-1]} healthy rooms: time from the SIGKILL to a new agent (seconds)")
        print("| agent, fault                       |  n |   p50 |   p95 |   max | failed |")
        print("|------------------------------------|----|-------|-------|-------|---|")
        for line in kill_rows:
            print(line)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100,500,1000")
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument(
        "--logs", type=Path, help="keep the server's, workers' and watchdog's logs here"
    )
    parser.add_argument("--watchdog", choices=DESIGNS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.watchdog:
        asyncio.run(
            watchdog_process(
                arguments.url,
                arguments.secret,
                arguments.watchdog,
                arguments.window,
                arguments.prefix,
            )
        )
        sys.exit(0)
    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    sys.exit(asyncio.run(main(sizes, arguments.window, arguments.kills, arguments.logs)))
