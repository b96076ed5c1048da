"""Benchmark: how soon the operations view shows a person waiting, and what a refresh costs.

    .venv/bin/python bench/bench_ops_view.py [--trials 20] [--rooms 1000]

1. On a real livekit-server whose webhooks reach an in-process watchdog (default options, as
   `up` runs it), with the operations view open in Debian's Chromium: each trial, a person
   joins a new room that no agent serves, at a random moment. Two clocks start when its
   connect starts:
   * baseline: until the watchdog itself counts the person as waiting (read in-process
     every 10 ms): what the watchdog knows;
   * view: until the view's table shows the person's room as waiting (the page polls
     `/api/overview` every second, Playwright checks the DOM on each frame).
   The room is deleted after each trial.
2. In memory, no server: the time to build one `/api/overview` answer (JSON included) for a
   watchdog that knows `--rooms` rooms, a tenth of them with someone waiting.

Prints p50 and p95 of each; target: the view within 2 s of the join (issue 15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web
from livekit import api, rtc
from playwright.async_api import async_playwright

from room_recovery.core.settings import load_settings
from room_recovery.rules.watch import RoomHistory
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig, free_port
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.watchdog.overview import overview

KEY = "benchkey"
PREFIX = "bench-ops-"
CHROMIUM = "/usr/bin/chromium"


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    ]


def line(name: str, values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    p50, p95 = percentiles(values)
    return (
        f"{name:<34} n={len(values):<4} p50 {p50 * scale:8.3f} {unit}   "
        f"p95 {p95 * scale:8.3f} {unit}   max {max(values) * scale:8.3f} {unit}"
    )


async def watchdog_knows(watchdog: Watchdog, room: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = watchdog.book.get(room)
        if state is not None and state.waiting and state.people:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the watchdog never saw the person in {room}")
        await asyncio.sleep(0.01)


async def live_trials(trials: int) -> tuple[list[float], list[float]]:
    secret = secrets.token_urlsafe(32)
    hook_port = free_port()
    config = ServerConfig.on_free_ports(
        {KEY: secret}, log_level="warn", webhook_urls=(f"http://127.0.0.1:{hook_port}/webhook",)
    )
    settings = load_settings(
        livekit_url=config.url, livekit_api_key=KEY, livekit_api_secret=secret, room_prefix=PREFIX
    )
    known: list[float] = []
    shown: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        async with LiveKitServer(config, Path(folder)), async_playwright() as playwright:
            watchdog = Watchdog(settings, WatchdogOptions(agent_name="nobody-serves-this"))
            runner = web.AppRunner(create_app(watchdog), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", hook_port).start()
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            lkapi = api.LiveKitAPI(settings.http_url, KEY, secret)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{hook_port}/")
                await page.wait_for_function("() => window.opsView && window.opsView.loads > 0")
                for number in range(trials):
                    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
                    token = (
                        api.AccessToken(KEY, secret)
                        .with_identity(f"person-{number}")
                        .with_grants(api.VideoGrants(room_join=True, room=name))
                        .to_jwt()
                    )
                    # out of step with the view's one-second refresh, as people come
                    await asyncio.sleep(random.random())
                    person = rtc.Room()
                    joined = time.perf_counter()
                    await person.connect(settings.ws_url, token)

                    async def in_watchdog(room: str = name, start: float = joined) -> float:
                        await watchdog_knows(watchdog, room)
                        return time.perf_counter() - start

                    async def in_view(room: str = name, start: float = joined) -> float:
                        await page.wait_for_function(
                            "room => document.querySelector("
                            "`tr[data-room='${room}'][data-waiting='true']`)",
                            arg=room,
                            polling="raf",
                            timeout=15_000,
                        )
                        return time.perf_counter() - start

                    try:
                        knew, saw = await asyncio.gather(in_watchdog(), in_view())
                    finally:
                        await person.disconnect()
                        await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
                    known.append(knew)
                    shown.append(saw)
                    print(
                        f"trial {number + 1}: watchdog {knew:.2f} s, view {saw:.2f} s", flush=True
                    )
            finally:
                await lkapi.aclose()
                await browser.close()
                await runner.cleanup()
    return known, shown


def refresh_costs(rooms: int, repeats: int = 30) -> tuple[list[float], int]:
    """Seconds to build one overview answer (as JSON) for `rooms` known rooms."""
    settings = load_settings(livekit_api_secret="x" * 32, room_prefix=PREFIX)
    watchdog = Watchdog(settings, WatchdogOptions())
    now = time.monotonic()
    for number in range(rooms):
        state = watchdog.book.wake(f"{PREFIX}{number:05d}", now)
        state.people = (f"person-{number}",)
        if number % 10 == 0:
            state.waiting = True
            state.history = RoomHistory(waiting_since=now - number % 30)
        else:
            state.agents = (f"agent-{number}",)
    times: list[float] = []
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(json.dumps(overview(watchdog)))
        times.append(time.perf_counter() - started)
    return times, size


async def main(trials: int, rooms: int) -> int:
    known, shown = await live_trials(trials)
    costs, size = refresh_costs(rooms)
    print()
    print("a person joins a room without an agent; seconds until:")
    print(line("the watchdog knows (baseline)", known))
    print(line("the operations view shows it", shown))
    ratio = statistics.median(shown) / statistics.median(known)
    print(f"ratio of medians (view / watchdog): {ratio:.1f}x")
    print(f"target: the view within 2 s; p95 here {percentiles(shown)[1]:.2f} s")
    print()
    print(f"one /api/overview answer for {rooms} known rooms ({size // 1024} KB of JSON):")
    print(line("build + serialise", costs, "ms", 1000))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=1000)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.trials, arguments.rooms)))
