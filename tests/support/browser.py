"""The page in a real browser: Debian's Chromium driven by Playwright, with fake media.

`chromium()` launches a headless Chromium with a fresh profile; `pages_of()` opens pages
in fresh contexts and, at its end, screenshots each one into test-artifacts/ and closes
it; `page_server()` runs the page's web server in this process, on a free port.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
)

from room_recovery.core.settings import Settings, load_settings
from room_recovery.web import create_app, running
from room_recovery.web.policy import AgentChoice, PageConfig
from tests.support.livekit import ROOT, ServerInfo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
BASE_FLAGS = (
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
)
ALLOW_MEDIA = "--use-fake-ui-for-media-stream"  # says yes to every microphone prompt
PHONE: ViewportSize = {"width": 375, "height": 740}

OpenPage = Callable[..., Awaitable[Page]]


@asynccontextmanager
async def chromium(allow_media: bool = True) -> AsyncIterator[Browser]:
    """A headless Chromium (fresh profile); without `allow_media`, prompts are refused."""
    flags = [*BASE_FLAGS, ALLOW_MEDIA] if allow_media else list(BASE_FLAGS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=flags
        )
        try:
            yield browser
        finally:
            await browser.close()


def artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", node_name).strip("-")


@asynccontextmanager
async def pages_of(
    browser: Browser, name: str, *, no_errors: bool = False
) -> AsyncIterator[OpenPage]:
    """Open pages in fresh contexts; on exit, screenshot each one still open, then close.

    A CSP violation always fails the test; with `no_errors`, so does any console error or
    uncaught exception. `open_page(url, ready=False)` does not wait for the voice page's
    status (for other pages, such as the watchdog's operations view)."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []
    refused: list[str] = []  # what the page's Content-Security-Policy blocked
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        _console(name, message.type, message.text)
        if "Content Security Policy" in message.text:
            refused.append(message.text[:300])
        elif message.type == "error":
            errors.append(message.text[:300])

    async def open_page(
        url: str, *, viewport: ViewportSize | None = None, ready: bool = True
    ) -> Page:
        context = await browser.new_context(viewport=viewport or {"width": 900, "height": 800})
        contexts.append(context)
        page = await context.new_page()
        pages.append(page)
        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"[:300]))
        await page.goto(url)
        if ready:
            await wait_status(page, ("idle", "error"), timeout=10)
        return page

    try:
        yield open_page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for number, page in enumerate(pages, start=1):
            if page.is_closed():
                continue
            suffix = f"-{number}" if len(pages) > 1 else ""
            await page.screenshot(path=ARTIFACTS / f"{name}{suffix}.png", full_page=True)
        for context in contexts:
            await context.close()
    assert refused == [], f"the page's CSP blocked what the page needs: {refused}"
    assert not no_errors or errors == [], f"the page logged errors: {errors}"


def _console(name: str, kind: str, text: str) -> None:
    if kind in ("error", "warning"):
        # shortened: a failed WebSocket's message carries the whole (test) token
        print(f"[{name}] console.{kind}: {text[:160]}")


def web_settings(server: ServerInfo, **overrides: Any) -> Settings:
    """Settings of the page's server for the test LiveKit server."""
    values: dict[str, Any] = {
        "livekit_url": server.url,
        "livekit_api_key": server.api_key,
        "livekit_api_secret": server.api_secret,
        "room_prefix": "page-",
    }
    return load_settings(**(values | overrides))


@asynccontextmanager
async def page_server(
    settings: Settings,
    agents: Sequence[AgentChoice | str],
    page_config: PageConfig | None = None,
) -> AsyncIterator[str]:
    """The page's web server in this process on a free port; yields its base URL."""
    async with running(create_app(settings, agents, page_config), "127.0.0.1", 0) as url:
        yield url


# --- reading the page ------------------------------------------------------------------


async def state(page: Page) -> dict[str, Any]:
    """A copy of `window.roomRecovery`."""
    value: dict[str, Any] = await page.evaluate("JSON.parse(JSON.stringify(window.roomRecovery))")
    return value


async def wait_status(page: Page, statuses: str | Sequence[str], timeout: float) -> float:
    """Wait until the page's status is one of `statuses`; returns the seconds it took."""
    wanted = [statuses] if isinstance(statuses, str) else list(statuses)
    started = time.monotonic()
    try:
        await page.wait_for_function(
            "wanted => window.roomRecovery && wanted.includes(window.roomRecovery.status)",
            arg=wanted,
            timeout=timeout * 1000,
            polling="raf",
        )
    except Exception as exc:
        current = await state(page)
        raise AssertionError(
            f"page status not in {wanted} after {timeout}s: {current.get('status')!r} "
            f"({current.get('statusText')!r}); attempts {current.get('attempts')}"
        ) from exc
    return time.monotonic() - started


async def wait_for(page: Page, expression: str, timeout: float, what: str) -> None:
    """Wait until a JavaScript expression over `roomRecovery` (as `rr`) is true.

    Given as a function, which Playwright calls through the debugger protocol: a bare
    expression would be `eval`ed in the page, which the page's CSP (rightly) refuses.
    """
    try:
        await page.wait_for_function(
            f"() => {{ const rr = window.roomRecovery; return Boolean({expression}); }}",
            timeout=timeout * 1000,
        )
    except Exception as exc:
        current = await state(page)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}: status {current.get('status')!r}, "
            f"attempts {current.get('attempts')}"
        ) from exc


async def now_ms(page: Page) -> float:
    """The page's clock (Date.now()), to compare with attempt times."""
    value: float = await page.evaluate("Date.now()")
    return value
