"""The LiveKit nodes a person may connect to: each new session goes to the next that answers.

With one node (LIVEKIT_URL) nothing changes. With several nodes of one cluster (`up --nodes
N`, or `web --node URL` for each further node) the page server hands each token the URL of
the next node in turn among those that answered their last check (GET / every 2 s). A
person whose node dies is disconnected; the page's retry then gets a node that answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlparse

import aiohttp

from ..core.errors import ConfigurationError
from ..core.loops import LoopHealth, run_loop
from ..core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

CHECK_EVERY = 2.0  # seconds between two checks of every node
CHECK_TIMEOUT = 1.0  # a node that does not answer GET / in this long is skipped


def http_of(url: str) -> str:
    """The HTTP URL of a node's WebSocket URL (ws -> http, wss -> https)."""
    parsed = urlparse(url)
    scheme = {"ws": "http", "wss": "https"}.get(parsed.scheme, parsed.scheme)
    return parsed._replace(scheme=scheme).geturl().rstrip("/")


def check_node_url(url: str) -> str:
    """`url` if it is a ws://, wss://, http:// or https:// URL with a host; else an error."""
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.hostname:
        raise ConfigurationError(
            f"--node {url!r} is not a LiveKit node's URL: give one like ws://10.0.0.2:7880"
        )
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    return parsed._replace(scheme=scheme).geturl().rstrip("/")


class Nodes:
    """The nodes, in order, and which of them answered their last check."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(dict.fromkeys(urls))  # in order, each once
        self.answering = set(self.urls)
        self._turn = 0
        self.health = LoopHealth("nodes", CHECK_EVERY, budget=CHECK_TIMEOUT + 1)

    @property
    def origins(self) -> list[str]:
        """Every node's WebSocket and HTTP URL, for the page's Content-Security-Policy."""
        return [u for url in self.urls for u in (url, http_of(url))]

    @property
    def loops(self) -> list[LoopHealth]:
        """The checking loop, when there is one (several nodes)."""
        return [self.health] if len(self.urls) > 1 else []

    def pick(self) -> str:
        """The next node in turn among those that answer (all of them if none does)."""
        candidates = [url for url in self.urls if url in self.answering] or self.urls
        url = candidates[self._turn % len(candidates)]
        self._turn += 1
        return url

    def mark(self, url: str, answers: bool) -> None:
        if answers == (url in self.answering):
            return
        if answers:
            self.answering.add(url)
            logger.info("LiveKit node %s answers again", url, extra={"node": url})
        else:
            self.answering.discard(url)
            logger.warning(
                "LiveKit node %s does not answer: new sessions go to the others",
                url,
                extra={"node": url},
            )

    async def _check_all(self, http: aiohttp.ClientSession) -> None:
        async def check(url: str) -> None:
            try:
                async with http.get(http_of(url) + "/") as response:
                    self.mark(url, response.status == 200)
            except (aiohttp.ClientError, OSError, TimeoutError):
                self.mark(url, False)

        await asyncio.gather(*(check(url) for url in self.urls))

    @contextlib.asynccontextmanager
    async def checking(self) -> AsyncIterator[None]:
        """Check the nodes in the background while the block runs (not with one node); the
        loop's health is `self.health`, which the page server's /healthz reports."""
        if len(self.urls) < 2:
            yield
            return
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            checks = run_loop(self.health, lambda: self._check_all(http), first_delay=0)
            task = asyncio.create_task(checks, name="room-recovery-nodes")
            try:
                yield
            finally:
                await cancel_and_wait(task)
