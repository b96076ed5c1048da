"""`room-recovery up --nodes 2`: Debian's redis-server and two livekit-server nodes of one
cluster, run, watched and stopped like every other part; the page spreads people over the
nodes, and a person whose node is SIGKILLed is connected again, with an agent, by the page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from room_recovery.cli.up_options import up_options
from room_recovery.core.errors import ConfigurationError
from room_recovery.core.manager import RoomManager
from room_recovery.core.settings import load_settings
from room_recovery.core.views import participant_view
from room_recovery.rules.model import Kind, State
from room_recovery.rules.reach import GHOST_AFTER
from room_recovery.system.options import SystemOptions
from room_recovery.system.parts import plan_system
from room_recovery.web.nodes import Nodes, check_node_url, http_of
from tests.support.browser import artifact_name, chromium, pages_of, state, wait_status
from tests.support.livekit import ParticipantProcess, ServerInfo, eventually
from tests.support.system import System, brought_down, free_port_triple, spare_port


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[System]:
    """A system of two nodes; `down` afterwards, and nothing it started may be left running."""
    planned = System(tmp_path / "state", tmp_path, livekit_port=free_port_triple(nodes=2))
    with brought_down(planned) as under_test:
        yield under_test


# LiveKit keeps a participant whose connection died listed (ACTIVE) for about 20 s
GHOST_WINDOW = 25.0


def bind(sock: socket.socket, url: str) -> bool:
    try:
        sock.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    except OSError:
        return False
    return True


async def live(node: str, room: str, identity: str) -> bool:
    """Whether the server (asked through `node`) shows the person and an agent ACTIVE."""
    settings = load_settings(
        livekit_url=node, livekit_api_key="devkey", livekit_api_secret="secret"
    )
    async with RoomManager(settings=settings) as manager:
        views = [participant_view(i) for i in await manager.list_participants(room)]
    active = [v for v in views if v.state is State.ACTIVE]
    return any(v.kind is Kind.AGENT for v in active) and any(v.identity == identity for v in active)


async def listed(node: str, room: str) -> list[str]:
    """Who the server (asked through `node`) lists in `room`, with their state."""
    settings = load_settings(
        livekit_url=node, livekit_api_key="devkey", livekit_api_secret="secret"
    )
    async with RoomManager(settings=settings) as manager:
        views = [participant_view(i) for i in await manager.list_participants(room)]
    return [f"{v.identity}:{v.kind.value}:{v.state.value}" for v in views]


async def room_on(cluster: System, node: int) -> str:
    """A new room (no agent in it) that LiveKit placed on node `node` (1, 2): its allocator
    picks any node, so rooms are made until one lands there (as its log says)."""
    log = cluster.state_dir / "logs" / ("livekit.log" if node == 1 else f"livekit-{node}.log")
    [node_id] = re.findall(r'starting LiveKit server\s.*?"nodeID": "(ND_\w+)"', log.read_text())[
        :1
    ] or [""]
    settings = load_settings(
        livekit_url=cluster.url, livekit_api_key="devkey", livekit_api_secret="secret"
    )
    async with RoomManager(settings=settings) as manager:
        for _ in range(30):
            room = f"ghost-{uuid.uuid4().hex[:8]}"
            await manager.create_room(room, agent_name="no-such-agent")
            logs = "".join(
                (cluster.state_dir / "logs" / f).read_text()
                for f in ("livekit.log", f"livekit-{node}.log")
            )
            if re.search(rf'"room": "{room}", "selectedNodeID": "{node_id}"', logs):
                return room
    raise AssertionError(f"no room placed on node {node} ({node_id or 'id not in its log'})")


async def _the_ghosts_room_goes(cluster: System, node: str, room: str, killed_at: float) -> None:
    """A room on the node that died, whose person's client died with it: LiveKit lists the
    person ACTIVE still (its state in Redis, and no node to end it). The watchdog must not
    send agents to it for ever: no node answers for that person, so after GHOST_AFTER
    the room is deleted."""

    async def gone() -> bool:
        return not await listed(node, room)

    await eventually(gone, timeout=GHOST_AFTER + 30, what=f"the ghost's room {room} to go")
    print(f"the ghost's room went {time.monotonic() - killed_at:.0f} s after the kill")
    deleted = f"Deleted room {room}: every person listed in it (gone) is a ghost"

    async def said() -> bool:  # LiveKit drops the room before the watchdog hears back
        return deleted in (cluster.state_dir / "logs" / "watch.log").read_text()

    await eventually(said, timeout=10, what="the watchdog to say why it deleted the room")
    watch_log = (cluster.state_dir / "logs" / "watch.log").read_text()
    assert f"Room {room}: a person is waiting" not in watch_log  # no agent sent to a ghost


async def test_two_nodes_on_redis_share_the_people_and_a_killed_node_loses_nobody(
    cluster: System, request: pytest.FixtureRequest
) -> None:
    redis_port = spare_port()
    result = cluster.up("--nodes", "2", "--redis-port", str(redis_port), "--no-prometheus")
    assert result.returncode == 0, result.stderr + result.stdout
    # the Redis `up` started takes no command without its password, kept 0600
    password = cluster.state_dir / "redis" / "password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert password.read_text().strip() not in result.stdout + result.stderr
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=redis_port, socket_timeout=5).ping()
    second = f"ws://127.0.0.1:{cluster.livekit_port + 10}"
    assert f"LiveKit: {cluster.url}, {second}" in result.stdout
    parts = cluster.status()
    assert [name for name in parts] == ["redis", "livekit", "livekit-2", "agent", "web", "watch"]
    assert all(part["state"] == "healthy" for part in parts.values())
    page_url = f"http://127.0.0.1:{cluster.web_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{cluster.watch_port}/healthz") as answer:
            assert (await answer.json())["role"] == "leader"  # elected through the Redis
        body = {"agent": "demo-agent"}
        async with http.post(f"{page_url}/api/token", json=body) as answer:
            first_grant = await answer.json()

    async with (
        chromium() as browser,
        pages_of(browser, artifact_name(request.node.name)) as open_page,
    ):
        page = await open_page(f"{page_url}/")
        await page.get_by_role("button", name="Connect", exact=True).click()
        await wait_status(page, "connected", 30)
        before = await state(page)
        node = before["attempts"][-1]["node"]
        # the page's token went to the other node than the token before it
        assert {node, first_grant["url"]} == {cluster.url, second}
        assert await live(cluster.url, before["room"], before["identity"])

        # The page's node dies, and stays away: its port is taken, so `up` cannot start it
        # again. Wherever LiveKit placed the room, the person must be served by the node that
        # lives (where the only worker is connected: LIVEKIT_URL's node): the page takes them
        # there in a new attempt, or (seen once in ten runs, the signal having gone through
        # the live node) they stay connected, which that node proves by listing them ACTIVE
        # beyond the time it keeps someone whose connection died (GHOST_WINDOW).
        assert node == second
        dead, alive_node = second, cluster.url
        victim = cluster.pid_of("livekit-2")
        # and someone whose room lives on that node, whose client dies with it: a ghost
        ghost = ParticipantProcess(
            ServerInfo(dead, "devkey", "secret"), await room_on(cluster, 2), "gone"
        )
        await ghost.ready()
        with socket.socket() as squatter, contextlib.closing(ghost):
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            ghost.kill()
            await eventually(lambda: asyncio.sleep(0, bind(squatter, dead)), what="its port")
            squatter.listen()
            # listed still: it goes only by the watchdog's judgement, checked at the end
            assert "gone:standard:active" in await listed(alive_node, ghost.room)

            async def served_again() -> bool:
                now = await state(page)
                moved = len(now["attempts"]) >= 2
                stayed = time.monotonic() - killed_at > GHOST_WINDOW
                if not (moved or stayed) or now["status"] != "connected":
                    return False
                if now["connection"] != "connected":
                    return False
                return await live(alive_node, now["room"], now["identity"])

            try:
                await eventually(served_again, timeout=60, what="the person served again")
            except AssertionError as exc:  # say what the page went through
                raise AssertionError(f"{exc}; the page: {await state(page)}") from None
            final = await state(page)
            assert final.get("error") is None
            if len(final["attempts"]) >= 2:
                assert final["attempts"][-1]["node"] != dead  # on the node that lives
            await _the_ghosts_room_goes(cluster, alive_node, ghost.room, killed_at)


# --- the page server's choice of node (no server) ----------------------------------------


def test_new_sessions_go_round_the_nodes_that_answer() -> None:
    nodes = Nodes(["ws://a:7880", "ws://b:7890", "ws://a:7880"])
    assert nodes.urls == ["ws://a:7880", "ws://b:7890"]
    assert [nodes.pick() for _ in range(4)] == ["ws://a:7880", "ws://b:7890"] * 2
    nodes.mark("ws://b:7890", False)
    assert {nodes.pick() for _ in range(3)} == {"ws://a:7880"}
    nodes.mark("ws://a:7880", False)  # none answers: better try them all than none
    assert {nodes.pick() for _ in range(4)} == {"ws://a:7880", "ws://b:7890"}


def test_a_node_url_is_checked_and_given_as_websocket() -> None:
    assert check_node_url("https://lk.example.com/") == "wss://lk.example.com"
    assert http_of("ws://10.0.0.2:7880") == "http://10.0.0.2:7880"
    with pytest.raises(ConfigurationError, match=r"ws://10\.0\.0\.2:7880"):
        check_node_url("10.0.0.2:7880")


def test_every_node_sends_its_webhooks_to_each_watchdog_up_is_told_of(tmp_path: Path) -> None:
    settings = load_settings(livekit_url="ws://127.0.0.1:7880")
    other = "http://10.0.0.2:8082/webhook"
    options = SystemOptions(state_dir=tmp_path, nodes=2, prometheus=False, webhooks=(other,))
    own = f"http://127.0.0.1:{options.watch_port}/webhook"
    assert [node.webhook_urls for node in plan_system(settings, options).nodes] == [
        (own, other)
    ] * 2
    with pytest.raises(ConfigurationError, match=r"--webhook 'ftp://x' is not an http\(s\) URL"):
        options_of(tmp_path, webhooks=["ftp://x"])


def options_of(tmp_path: Path, **given: Any) -> SystemOptions:
    """`up --no-agent` with these options (up_options' names), the rest at their defaults."""
    defaults: dict[str, Any] = {"agent_name": "demo-agent", "agent_health_port": 8083}
    defaults |= {"web_port": 8080, "watch_port": 8082, "agent_command": []}
    defaults |= {"no_agent": True, "no_web": False, "no_watch": False}
    return up_options(state_dir=tmp_path, **(defaults | given))


def peer_options(tmp_path: Path, *peers: str) -> SystemOptions:
    mine = ["auto:mine=python my_agent.py start"]
    return options_of(
        tmp_path, agent_command=mine, nodes=2, prometheus=False, peer_watchdogs=list(peers)
    )


def test_a_peer_watchdog_gets_the_webhooks_and_a_link_from_each_worker(tmp_path: Path) -> None:
    settings = load_settings(livekit_url="ws://127.0.0.1:7880")
    peer = "http://127.0.0.1:8092"
    own = "http://127.0.0.1:8082"  # named as a peer too: still one link, one webhook
    options = peer_options(tmp_path, peer + "/", peer, "https://watch-3.example.com", own)
    plan = plan_system(settings, options)
    assert plan.nodes[0].webhook_urls == (
        f"{own}/webhook",
        f"{peer}/webhook",
        "https://watch-3.example.com/webhook",
    )
    assert plan.watchdog_urls == (own, peer, "https://watch-3.example.com")
    [worker] = [part for part in plan.parts if part.name == "agent-mine"]
    assert worker.env["ROOM_RECOVERY_WATCHDOG_URL"] == f"{own},{peer},https://watch-3.example.com"


@pytest.mark.parametrize(
    ("peer", "problem"),
    [
        ("watch-2:8082", "is not an http(s) URL"),
        ("http://127.0.0.1:8092/webhook", "has a path; give the watchdog's address alone"),
        ("http://10.0.0.2:8082", "on another machine in clear"),
    ],
)
def test_a_peer_watchdog_that_cannot_be_linked_to_is_refused_before_anything_starts(
    tmp_path: Path, peer: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        peer_options(tmp_path, peer)
