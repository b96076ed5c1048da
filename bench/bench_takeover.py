"""Benchmark: how soon a standby watchdog leads after the leader is SIGKILLed.

    .venv/bin/python bench/bench_takeover.py [--kills 10]

On a real livekit-server and Debian's redis-server, two `room-recovery watch` processes
share REDIS_URL; one leads (`room_recovery_leader` is 1 in its /metrics). Each trial
SIGKILLs the leader and times until the other's /metrics says it leads; the killed one is
started again, as a standby, before the next trial. The lease is 3 s, renewed every second:
expect between 2 and 4 s, since the lock outlives its holder by what remained of its lease.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from room_recovery.system.livekit_server import LiveKitServer, ServerConfig, free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.redis_server import redis_server  # noqa: E402 (the tests' own helper)

KEY = "benchkey"


class Watch:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "room_recovery.cli", "watch", "--port", str(self.port)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )

    async def leads(self, session: aiohttp.ClientSession) -> bool | None:
        """1 in its metrics: True; 0: False; not answering: None."""
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return None
        for line in text.splitlines():
            if line.startswith("room_recovery_leader "):
                return float(line.split()[1]) == 1.0
        return None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


async def until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s")
        await asyncio.sleep(0.02)


async def main(kills: int) -> int:
    secret = secrets.token_urlsafe(32)
    config = ServerConfig.on_free_ports({KEY: secret}, log_level="warn")
    times: list[float] = []
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as redis:
        async with LiveKitServer(config, Path(folder)), aiohttp.ClientSession() as session:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ROOM_"))}
            env |= {
                "LIVEKIT_URL": config.url,
                "LIVEKIT_API_KEY": KEY,
                "LIVEKIT_API_SECRET": secret,
                "ROOM_PREFIX": "bt-",
                "REDIS_URL": redis,
            }
            pair = [Watch(env, Path(folder) / f"watch-{n}.log") for n in (0, 1)]
            try:
                for watch in pair:
                    watch.start()

                async def one_leads() -> bool:
                    states = [await w.leads(session) for w in pair]
                    return sorted(states, key=str) == [False, True]

                for number in range(kills):
                    await until(one_leads, 30)
                    states = [await w.leads(session) for w in pair]
                    leader, standby = pair if states[0] else pair[::-1]
                    leader.kill()
                    started = time.perf_counter()

                    async def took_over(standby: Watch = standby) -> bool:
                        return bool(await standby.leads(session))

                    await until(took_over, 15)
                    times.append(time.perf_counter() - started)
                    print(f"kill {number + 1}: the standby led after {times[-1]:.2f} s", flush=True)
                    leader.start()  # back as the standby
            finally:
                for watch in pair:
                    watch.stop()
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print()
    print("| kills | p50 | p95 | max |")
    print("|---:|---:|---:|---:|")
    print(f"| {len(times)} | {statistics.median(times):.2f} s | {p95:.2f} s | {max(times):.2f} s |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    sys.exit(asyncio.run(main(parser.parse_args().kills)))
