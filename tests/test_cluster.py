"""A LiveKit cluster: two livekit-server nodes sharing a real Redis (LiveKit's distributed
mode), and two watchdogs, one on each node's API, electing one leader through that Redis.
Workers given both watchdogs (ROOM_RECOVERY_WATCHDOG_URL, a list) link to each, so the
leader hears a worker's death on its own link, whichever of them leads."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from livekit import api

from room_recovery.core.settings import load_settings
from room_recovery.rules.attention import AttentionPolicy
from room_recovery.rules.watch import WatchPolicy
from room_recovery.system.livekit_server import LiveKitServer, ServerConfig
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running
from tests.support.livekit import ServerInfo, eventually
from tests.support.recovery import serving, start_worker
from tests.support.redis_server import redis_server
from tests.support.worker import WorkerProcess, job_processes, person

KEY = "clusterkey"
SECRET = "a-cluster-secret-long-enough-for-livekit-0123"
PREFIX = "cl-"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
async def nodes(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[ServerInfo]]:
    """Two nodes of one cluster, each on its own ports; rooms are placed on either."""
    address = redis_url.removeprefix("redis://").split("/")[0]
    async with AsyncExitStack() as stack:
        infos = []
        for number in (1, 2):
            config = ServerConfig.on_free_ports({KEY: SECRET}, redis_address=address)
            folder = tmp_path_factory.mktemp(f"node{number}")
            await stack.enter_async_context(LiveKitServer(config, folder, stop_grace=1.0))
            infos.append(ServerInfo(config.url, KEY, SECRET))
        yield infos


def watchdog_on(node: ServerInfo, redis: str, agent_name: str, grace: float = 0.5) -> Watchdog:
    """A watchdog on `node`'s API sending `agent_name` ("": LiveKit's automatic dispatch),
    to a person `grace` seconds without an agent."""
    settings = load_settings(
        livekit_url=node.url,
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
        room_prefix=PREFIX,
        redis_url=redis,
    )
    options = WatchdogOptions(
        agent_name=agent_name,
        automatic=not agent_name,
        sweep_interval=0.3,
        watch=WatchPolicy(grace=grace),
        attention=AttentionPolicy(settle=0.5),
    )
    return Watchdog(settings, options)


@pytest.fixture
async def two_watchdogs(
    nodes: list[ServerInfo], redis_url: str
) -> AsyncIterator[tuple[str, list[Watchdog]]]:
    """One watchdog on each node's API, one of them elected; yields the agent they send."""
    agent_name = f"cl-agent-{uuid.uuid4().hex[:6]}"
    async with AsyncExitStack() as stack:
        watchdogs = [
            await stack.enter_async_context(watchdog_on(node, redis_url, agent_name))
            for node in nodes
        ]

        async def one_leads() -> bool:
            return sum(w.leadership.leading for w in watchdogs) == 1

        await eventually(one_leads, timeout=10, what="one leader among the two watchdogs")
        yield agent_name, watchdogs


async def named_dispatches(node: ServerInfo, room: str) -> list[str]:
    async with api.LiveKitAPI(node.url, KEY, SECRET) as lkapi:
        dispatches = await lkapi.agent_dispatch.list_dispatch(room)
    return [d.agent_name for d in dispatches if d.agent_name]


async def test_a_person_on_one_node_gets_the_only_worker_connected_to_the_other(
    nodes: list[ServerInfo],
    two_watchdogs: tuple[str, list[Watchdog]],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    agent_name, _ = two_watchdogs
    first, second = nodes
    worker = WorkerProcess.demo(second, agent_name, tmp_path / "worker.log")
    workers.append(worker)
    await worker.registered()
    room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    # a plain join on the first node: only a watchdog's dispatch can bring the agent, and
    # the job travels over LiveKit's Redis bus to the worker on the second node
    async with person(first, room, "user-1") as someone:
        await someone.wait_for_agent(timeout=20)
        assert await named_dispatches(first, room) == [agent_name]  # once, by one leader


async def test_a_dead_agent_is_replaced_once_with_two_watchdogs_alive(
    nodes: list[ServerInfo],
    two_watchdogs: tuple[str, list[Watchdog]],
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    agent_name, watchdogs = two_watchdogs
    first, second = nodes
    # the watchdogs' own signal (the heartbeat), not the worker's monitor
    env = {"ROOM_RECOVERY_WORKER_MONITOR": "off"}
    worker = WorkerProcess.demo(second, agent_name, tmp_path / "worker.log", env=env)
    workers.append(worker)
    await worker.registered()
    room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    async with person(first, room, "user-2", agent_name) as someone:
        dead = await someone.wait_for_guarded_agent(timeout=20)

        async def job_started() -> bool:
            return bool(job_processes(worker, second.url))

        await eventually(job_started, timeout=10, what="the agent's job process")
        os.kill(job_processes(worker, second.url)[0], signal.SIGKILL)

        def replaced() -> bool:
            return any(agent.sid != dead.sid for agent in someone.agents())

        await someone.wait_for("a new agent", replaced, timeout=20)
        leader = next(w for w in watchdogs if w.leadership.leading)

        async def settled() -> bool:  # healthy again: no further dispatch can follow
            state = leader.book.get(room)
            # an agent judged by its heartbeat keeps its room close ("in_doubt"), not waiting
            return state is not None and not state.waiting and state.reason in (None, "in_doubt")

        await eventually(settled, timeout=15, what="the room to be healthy again")
        # the token's dispatch, then exactly one replacement from the two watchdogs
        assert await named_dispatches(second, room) == [agent_name, agent_name]


async def test_a_killed_workers_agent_is_replaced_through_the_leaders_own_link(
    nodes: list[ServerInfo], redis_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    first, second = nodes
    async with AsyncExitStack() as stack:
        dogs, urls = [], []
        # automatic dispatch, as the guide's worker registers, and the usual grace (a watchdog
        # also waits while LiveKit's own dispatch is answered: test_one_agent.py)
        for node in nodes:
            dog = watchdog_on(node, redis_url, "", grace=WatchPolicy().grace)
            dogs.append(await stack.enter_async_context(dog))
            urls.append(
                await stack.enter_async_context(running(create_app(dogs[-1]), "127.0.0.1", 0))
            )

        async def one_leads() -> bool:
            return sum(w.leadership.leading for w in dogs) == 1

        await eventually(one_leads, timeout=10, what="one leader among the two watchdogs")
        leader = next(w for w in dogs if w.leadership.leading)
        standby = next(w for w in dogs if w is not leader)
        # the standby listed first: the leader is no first choice of the workers
        listed = f"{urls[dogs.index(standby)]},{urls[dogs.index(leader)]}"
        pool = list(
            await asyncio.gather(
                *(
                    start_worker("spec", second, "", tmp_path / f"{n}.log", workers, listed)
                    for n in ("a", "b")
                )
            )
        )
        room = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        async with person(first, room, "user-3", publish=True) as user:
            dead = await user.wait_for_agent(timeout=20)

            async def both_hold_the_job() -> bool:
                return all(dog.links.vouched(room) for dog in dogs)

            await eventually(both_hold_the_job, what="both watchdogs to hear of the job")
            victim = serving(pool, second)
            mark = len(user.events)
            victim.kill()  # the worker and its job processes, as a crash

            def replaced() -> bool:
                return any(agent.sid != dead.sid for agent in user.agents())

            # through the link: well within the 20 s a silent ghost stays listed ACTIVE
            await user.wait_for("a new agent", replaced, timeout=10)
            assert leader.links.lost_workers == standby.links.lost_workers == 1
            await user.wait_for("the dead agent to leave", lambda: len(user.agents()) == 1, 5)
            joined = [sid for event, _, sid in user.events[mark:] if event == "joined"]
            assert joined == [user.agents()[0].sid]  # one replacement, by the leader alone
            survivor = next(w for w in pool if w is not victim)
            assert job_processes(survivor, second.url)
