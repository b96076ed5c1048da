"""The pieces of a recovery test: agent workers of every kind, linked to a watchdog.

Kinds of agent, as users wire them:

* `demo`:  the demo agent (named dispatch, pre-join hook, session guard with heartbeat);
* `spec`:  `tests/workers/letta_voice_agent.py`: automatic dispatch, the guide's request
           handler verbatim (its import inside the handler), nothing of ours elsewhere;
* `named`: `tests/workers/named_agent.py`: named dispatch, our `request_handler`, no guard;
* `top`:   `tests/workers/letta_top_import.py`: the guide's handler, its import at the top;
* `entrypoint`: `tests/workers/letta_entrypoint_cleanup.py`: `ensure_clean_room` called
           from the entrypoint (in the job's process) instead of the request handler;
* `plain`: `tests/workers/plain_agent.py`: no room-recovery code at all;
* `broken`: `tests/workers/broken_agent.py`: takes every job, its agent never comes;
* `slow`:  `tests/workers/slow_hook_agent.py`: no room-recovery code, its request hook
           takes 2 s (a busy machine's).

The page's matrix (`test_recovery_page.py`) runs the first three (`KINDS`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from room_recovery.core.settings import load_settings
from room_recovery.protocol.links import WATCHDOG_URL_VARIABLE
from room_recovery.rules.watch import WatchPolicy
from room_recovery.watchdog import Watchdog, WatchdogOptions, create_app
from room_recovery.web import running
from tests.support.livekit import ROOT, ServerInfo
from tests.support.worker import WorkerProcess, job_processes

KINDS = ("demo", "spec", "named")
SCRIPTS = {
    "spec": "letta_voice_agent.py",
    "named": "named_agent.py",
    "top": "letta_top_import.py",
    "entrypoint": "letta_entrypoint_cleanup.py",
    "plain": "plain_agent.py",
    "broken": "broken_agent.py",
    "slow": "slow_hook_agent.py",
}
AUTOMATIC = (
    "spec",
    "top",
    "entrypoint",
    "plain",
    "broken",
    "slow",
)  # no agent_name: LiveKit's automatic dispatch
LINKS_AT_REGISTRATION = ("demo", "top")  # the others link at their first job, or never
LINKED = "linked to the watchdog"


def agent_name_for(kind: str) -> str:
    """The dispatch name a test uses for `kind` ("" for the automatic workers)."""
    return "" if kind in AUTOMATIC else f"rp-{kind}-{uuid.uuid4().hex[:6]}"


async def start_worker(
    kind: str,
    server: ServerInfo,
    agent_name: str,
    log: Path,
    workers: list[WorkerProcess],
    watchdog_url: str = "",
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """A worker of `kind`, registered (and, for the kinds that link at registration, linked
    to the watchdog at `watchdog_url`; the others link at their first job, or never);
    `env`: more of its environment."""
    env = dict(env or {})
    if watchdog_url:
        env[WATCHDOG_URL_VARIABLE] = watchdog_url
    if kind == "demo":
        worker = WorkerProcess.demo(server, agent_name, log, env=env)
        workers.append(worker)
        await worker.registered()
    else:
        if kind == "named":
            env["AGENT_NAME"] = agent_name
        command = [str(ROOT / "tests" / "workers" / SCRIPTS[kind]), "start"]
        worker = WorkerProcess(server, command, log, env=env, stdout_to_log=True)
        workers.append(worker)
        await worker.wait_for_log("registered worker", timeout=40)
    if watchdog_url and kind in LINKS_AT_REGISTRATION:
        await worker.wait_for_log(LINKED, timeout=10)
    return worker


@asynccontextmanager
async def linked_watchdog(
    server: ServerInfo, prefix: str, agent_name: str = "", **watch: float
) -> AsyncIterator[tuple[Watchdog, str]]:
    """A watchdog for rooms under `prefix`, its HTTP side (links) on a free port."""
    settings = load_settings(
        livekit_url=server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        room_prefix=prefix,
    )
    options = WatchdogOptions(
        agent_name=agent_name,
        automatic=not agent_name,
        sweep_interval=0.3,
        watch=WatchPolicy(**watch),  # type: ignore[arg-type]
    )
    watchdog = Watchdog(settings, options)
    async with running(create_app(watchdog), "127.0.0.1", 0) as url:
        yield watchdog, url


def serving(workers: list[WorkerProcess], server: ServerInfo) -> WorkerProcess:
    """The one worker whose job process is in a room."""
    [worker] = [w for w in workers if job_processes(w, server.url)]
    return worker
