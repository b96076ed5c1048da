"""Screenshots of the voice page and the watchdog's operations view, for the docs
(docs/page.md, docs/operations.md).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts the whole system with `room-recovery up --detach` (its own LiveKit server, demo
agent, page and watchdog on free ports, in a temporary state directory), then, in Debian's
Chromium with fake media:

* the page connected to the demo agent, once it listens (phone width, light; desktop, dark);
* the operations view while a person waits in a room without an agent (phone width, light),
  and once the watchdog has sent them one (desktop, dark).

It stops everything it started (`room-recovery down`) even when a step fails. Re-run it
after changing either view; the PNGs in docs/screenshots/ are what the docs show.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from livekit import api, rtc
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from room_recovery.system.livekit_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "room-recovery"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
KEY, SECRET = "devkey", "screenshots-secret-of-at-least-32-chars"
Scheme = Literal["light", "dark"]
PERSON = "person-without-agent"
WAITING = f"() => window.opsView?.overview?.room_list.some(r => r.people.includes('{PERSON}')"
WAITING += " && r.waiting_for !== null)"
SERVED = f"() => window.opsView?.overview?.room_list.some(r => r.people.includes('{PERSON}')"
SERVED += " && r.agents.length > 0) && window.opsView.overview.recoveries.length > 0"


@asynccontextmanager
async def system(state: Path) -> AsyncIterator[dict[str, str]]:
    """`room-recovery up --detach` on free ports; yields the URLs; `down` on exit."""
    ports = {name: free_port() for name in ("livekit", "web", "watch", "agent")}
    env = os.environ | {
        "LIVEKIT_URL": f"ws://127.0.0.1:{ports['livekit']}",
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "ROOM_PREFIX": "",
    }
    up = [
        str(CLI),
        "up",
        "--detach",
        "--state-dir",
        str(state),
        "--web-port",
        str(ports["web"]),
        "--watch-port",
        str(ports["watch"]),
        "--agent-health-port",
        str(ports["agent"]),
    ]
    run = subprocess.run
    started = await asyncio.to_thread(run, up, env=env, capture_output=True, text=True, timeout=180)
    try:
        if started.returncode != 0:
            raise SystemExit(f"room-recovery up failed:\n{started.stdout}{started.stderr}")
        yield {
            "livekit": env["LIVEKIT_URL"],
            "page": f"http://127.0.0.1:{ports['web']}/",
            "ops": f"http://127.0.0.1:{ports['watch']}/",
        }
    finally:
        down = [str(CLI), "down", "--state-dir", str(state)]
        await asyncio.to_thread(run, down, env=env, capture_output=True, timeout=60)


async def open_page(browser: Browser, url: str, viewport: ViewportSize, scheme: Scheme) -> Page:
    context = await browser.new_context(viewport=viewport, color_scheme=scheme)
    page = await context.new_page()
    await page.goto(url)
    return page


async def voice_page(browser: Browser, url: str, viewport: ViewportSize, scheme: Scheme) -> Page:
    """The page, connected, once the demo agent has greeted and listens."""
    page = await open_page(browser, url, viewport, scheme)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await page.wait_for_function(
        "() => window.roomRecovery?.conversation?.agentState === 'listening'"
        " && window.roomRecovery.conversation.agentStates.includes('speaking')",
        timeout=30_000,
    )
    return page


async def shoot(page: Page, path: Path) -> None:
    image = await page.screenshot(path=path, full_page=True)
    print(f"wrote {path.relative_to(ROOT)} ({len(image) // 1024} KB)")


async def waiting_person(livekit_url: str) -> rtc.Room:
    """A person in a room no agent was dispatched to: the watchdog sends one after 3 s."""
    token = (
        api.AccessToken(KEY, SECRET)
        .with_identity(PERSON)
        .with_grants(api.VideoGrants(room_join=True, room=f"lobby-{int(time.time())}"))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(livekit_url, token)
    return room


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="rr-shots-") as state:
        async with system(Path(state)) as urls, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            try:
                for viewport, scheme, name in (
                    (PHONE, "light", "phone"),
                    (DESKTOP, "dark", "desktop"),
                ):
                    page = await voice_page(browser, urls["page"], viewport, scheme)
                    await shoot(page, out / f"page-{name}-{scheme}.png")
                    await page.context.close()
                phone = await open_page(browser, urls["ops"], PHONE, "light")
                desktop = await open_page(browser, urls["ops"], DESKTOP, "dark")
                person = await waiting_person(urls["livekit"])
                try:
                    await phone.wait_for_function(WAITING, timeout=10_000)
                    await shoot(phone, out / "ops-phone-light.png")
                    await desktop.wait_for_function(SERVED, timeout=30_000)
                    await shoot(desktop, out / "ops-desktop-dark.png")
                finally:
                    await person.disconnect()
            finally:
                await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    arguments = parser.parse_args()
    if not CLI.exists():
        sys.exit("no .venv: run ./setup.sh first")
    arguments.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments.out.resolve()))
