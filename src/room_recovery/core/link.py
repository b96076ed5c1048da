"""The client end of a link to the watchdog (`protocol.links`): connect, say hello, send.

A `LinkClient` keeps one WebSocket open to the watchdog for as long as its owner lives,
reconnecting with a short backoff (`up` starts the watchdog after the agents). On every
(re)connection it sends `hello()` afresh, so the watchdog always holds the current truth.
Its owner (the worker monitor, a job's own link, or `up` for a worker it runs) queues
messages with `send`; those sent while no link is up are dropped: the next hello carries
the state they described.

`ROOM_RECOVERY_WATCHDOG_URL` may list several watchdogs (a cluster's, comma-separated): a
`LinkGroup` keeps one `LinkClient` to each, so that whichever of them leads hears a
worker's news on its own link, and a pre-join cleanup asks them all (`ask_alive_all`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence

import aiohttp

from ..protocol import links
from .errors import RoomRecoveryError
from .settings import Settings, process_settings
from .tasks import cancel_and_wait

logger = logging.getLogger(__name__)

LINK_RETRY = (0.5, 1.0, 2.0, 5.0)  # seconds between attempts to reach the watchdog
LINK_PATIENCE = 4  # failed attempts (about 10 s) before a warning
ALIVE_TIMEOUT = 0.5  # seconds a pre-join cleanup waits for the watchdog's word on its agents


def split_urls(value: str) -> tuple[str, ...]:
    """The watchdogs a ROOM_RECOVERY_WATCHDOG_URL value lists (comma-separated), each once."""
    urls = (url.strip().rstrip("/") for url in value.split(","))
    return tuple(dict.fromkeys(url for url in urls if url))


def watchdog_urls() -> tuple[str, ...]:
    """Where the watchdogs listen (ROOM_RECOVERY_WATCHDOG_URL, set by `up`); () for none."""
    return split_urls(process_settings().room_recovery_watchdog_url)


async def ask_alive_all(
    urls: Sequence[str], settings: Settings, room: str, timeout: float = ALIVE_TIMEOUT
) -> set[str] | None:
    """The agents of `room` a worker vouches for on the link of any of these watchdogs.

    A watchdog restarted a moment ago may not hold every link yet, so an agent vouched for
    by any of them is alive; None when none of them could say (`ask_alive`)."""
    answers = await asyncio.gather(*(ask_alive(url, settings, room, timeout) for url in urls))
    heard = [answer for answer in answers if answer is not None]
    return set().union(*heard) if heard else None


async def ask_alive(
    url: str, settings: Settings, room: str, timeout: float = ALIVE_TIMEOUT
) -> set[str] | None:
    """The agents of `room` whose worker vouches for them, as the watchdog at `url` says.

    None when it cannot say (not reachable within `timeout`, refused, or on another machine
    in clear): then nobody knows whether they are alive. Never raises but for cancellation.
    """
    if links.needs_tls(url):
        return None
    token = links.link_token(
        settings.livekit_api_key, settings.livekit_api_secret, f"{socket.gethostname()}/prejoin"
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
            address = f"{url.rstrip('/')}{links.ALIVE_PATH}"
            async with http.get(address, params={"room": room}, headers=headers) as response:
                if response.status != 200:
                    text = (await response.text()).strip()
                    logger.warning("the watchdog at %s answered %s: %s", url, response.status, text)
                    return None
                body = await response.json()
    except TimeoutError:
        logger.warning("the watchdog at %s did not say who is alive within %gs", url, timeout)
        return None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        logger.warning("cannot ask the watchdog at %s who is alive: %s", url, exc or repr(exc))
        return None
    alive = body.get("alive") if isinstance(body, dict) else None
    if not isinstance(alive, list) or not all(isinstance(a, str) for a in alive):
        logger.warning("the watchdog at %s gave no list of agents: %.200r", url, body)
        return None
    return set(alive)


def link_problem(url: str, exc: BaseException) -> str:
    """What went wrong with the link to the watchdog, said so that it can be fixed."""
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status == 401:
        return (
            f"the watchdog at {url} refused this worker's link: the worker's and the "
            "watchdog's LIVEKIT_API_KEY/LIVEKIT_API_SECRET differ (or their clocks differ "
            "by more than a minute); give both the same keys"
        )
    return f"cannot reach the watchdog at {url}: {exc or type(exc).__name__}"


class LinkClient:
    """One link to the watchdog at `url`; `start()` it in a running event loop.

    `hello(link_id)` makes the hello sent on each (re)connection; `link_id` names this link
    in its credential (`protocol.links.link_token`) and must be in the hello.
    """

    def __init__(
        self,
        url: str,
        hello: Callable[[str], str],
        settings: Settings | None = None,
        *,
        name: str = "worker",
    ) -> None:
        self.url = url.rstrip("/")
        self.hello = hello
        self.name = name  # "worker", "job" or "up": for the log lines
        self.link_id = f"{socket.gethostname()}/{os.getpid()}/{name}/{secrets.token_hex(4)}"
        self._settings = settings
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.linked = asyncio.Event()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = process_settings()  # read once per process, shared
        return self._settings

    def start(self) -> bool:
        """Start linking; False (and one error line) when the link would cross machines
        in clear: it carries a credential, so it needs https:// (or wss://) there."""
        if links.needs_tls(self.url):
            logger.error(
                "not linking to the watchdog at %s: it is on another machine and the link "
                "would carry its credential in clear; put TLS in front of the watchdog and "
                "use https:// in %s (dead agents are found by the watchdog's other signals)",
                self.url,
                links.WATCHDOG_URL_VARIABLE,
            )
            return False
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"room-recovery-{self.name}-link")
        return True

    def send(self, message: str) -> None:
        if self.linked.is_set():
            self._outbox.put_nowait(message)

    async def close(self, last: str | None = None, timeout: float = 1.0) -> None:
        """Send `last` (if linked), then close the link; bounded by `timeout`."""
        task, self._task = self._task, None
        if task is None:
            return
        ws = self._ws
        if last is not None and ws is not None and self.linked.is_set():
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                async with asyncio.timeout(timeout):
                    await ws.send_str(last)
                    await ws.close()
        await cancel_and_wait(task)

    def _token(self) -> str:
        settings = self.settings
        return links.link_token(settings.livekit_api_key, settings.livekit_api_secret, self.link_id)

    async def _keep(self) -> None:
        failures = 0
        url = f"{self.url}{links.LINK_PATH}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, connect=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    headers = {"Authorization": f"Bearer {self._token()}"}
                    connecting = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=3)
                    async with http.ws_connect(url, headers=headers, timeout=connecting) as ws:
                        failures = 0
                        await self._serve(ws)
                    logger.warning("the watchdog closed the link; reconnecting")
                except (aiohttp.ClientError, OSError, TimeoutError, RoomRecoveryError) as exc:
                    if failures in (0, LINK_PATIENCE):  # `up` starts the watchdog after us
                        logger.log(
                            logging.INFO if failures == 0 else logging.WARNING,
                            "%s (retrying)",
                            link_problem(url, exc),
                        )
                    failures += 1
                finally:
                    self.linked.clear()
                await asyncio.sleep(LINK_RETRY[min(failures, len(LINK_RETRY) - 1)])

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._outbox = asyncio.Queue()
        await ws.send_str(self.hello(self.link_id))
        self._ws = ws
        self.linked.set()
        logger.info("🔗 linked to the watchdog", extra={"link": self.name, "watchdog": self.url})
        receive = asyncio.create_task(ws.receive())  # ends when the watchdog goes
        try:
            while not receive.done():
                send = asyncio.create_task(self._outbox.get())
                done, _ = await asyncio.wait({send, receive}, return_when=asyncio.FIRST_COMPLETED)
                if send in done:
                    await ws.send_str(send.result())
                else:
                    send.cancel()
        finally:
            self._ws = None
            await cancel_and_wait(receive)


class LinkGroup:
    """One `LinkClient` to each watchdog of `urls`, all saying the same (see the module)."""

    def __init__(
        self,
        urls: Sequence[str],
        hello: Callable[[str], str],
        settings: Settings | None = None,
        *,
        name: str = "worker",
    ) -> None:
        self.urls = tuple(urls)
        self.clients = [LinkClient(url, hello, settings, name=name) for url in self.urls]

    def start(self) -> bool:
        """Start every link; False when none could be started (`LinkClient.start`)."""
        started = [client.start() for client in self.clients]
        return any(started)

    def send(self, message: str) -> None:
        for client in self.clients:
            client.send(message)

    def hello_again(self) -> None:
        """Send each linked watchdog a fresh hello (the others get theirs when they link)."""
        for client in self.clients:
            if client.linked.is_set():
                client.send(client.hello(client.link_id))

    async def close(self, last: str | None = None, timeout: float = 1.0) -> None:
        """Send `last` on each link and close them all, together, within `timeout`."""
        await asyncio.gather(*(client.close(last, timeout) for client in self.clients))
