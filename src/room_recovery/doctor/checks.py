"""`room-recovery doctor`: why did no agent come? Walks the causes in order and says what to do.

The checks, each building on the ones before it:

1. the LiveKit server answers at LIVEKIT_URL;
2. it accepts LIVEKIT_API_KEY / LIVEKIT_API_SECRET;
3. an agent worker answers its health check and is registered with the server;
4. the page dispatches an agent name that the worker serves; your own worker (livekit-agents'
   `/worker` on 8081) does not report a load that makes LiveKit send it no jobs;
   (with `probe`) each agent really comes: it is dispatched into a throwaway room, which
   is deleted afterwards; this works for any worker, also ones without a health endpoint;
   room-recovery's watchdog and page server answer their /healthz (loops running, LiveKit
   reachable);
5. no room has a person waiting without an agent;
6. no ghost participants (stale by the policy, or agents whose heartbeat went silent);
7. the number of rooms is below the alert threshold.

A failed check says what holds and which command fixes it; checks that depend on a
failed one are reported as skipped. The exit code is 0 only when every check passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from livekit import api

from ..core.defaults import AGENT_HEALTH_PORT, DEMO_AGENT, WEB_PORT, local_url
from ..core.errors import AuthenticationError, RoomRecoveryError, ServerUnreachableError
from ..core.manager import RoomManager
from ..core.settings import Settings
from ..core.views import is_agent_info, participant_view
from ..protocol.heartbeat import heartbeat_of
from ..rules.liveness import HEARTBEAT_TIMEOUT, HeartbeatTracker
from ..rules.model import AUTOMATIC, Kind, State, agent_ref, is_person
from ..rules.staleness import StalePolicy, stale_removals
from .outcome import Check, Outcome, skipped
from .own_services import services_healthy
from .worker_load import DEFAULT_WORKER_URL, worker_takes_jobs

WAITING_GRACE = 5.0  # seconds a person may wait for an agent before the doctor calls it a cause


@dataclass(frozen=True)
class DoctorOptions:
    agent_health_url: str | None = local_url(AGENT_HEALTH_PORT, "/health")  # None: no demo agent
    page_config_url: str | None = local_url(WEB_PORT, "/api/config")
    room_alert_threshold: int = 100
    probe: bool = False  # dispatch each agent into a throwaway room and wait for it
    probe_agents: tuple[str, ...] = ()  # which; empty: the page's agents, else the worker's
    probe_timeout: float = 10.0
    worker_url: str | None = DEFAULT_WORKER_URL  # livekit-agents' own /worker of your worker
    service_urls: tuple[tuple[str, str], ...] = ()  # (name, /healthz URL) of our services
    services_expected: bool = False  # `up` runs them: one that does not answer is a failure


@dataclass
class _Facts:
    """What the checks learn, for the checks after them."""

    worker_agent: str | None = None
    offered: list[str] | None = None  # the agents the page offers, when it answered
    rooms: list[api.Room] | None = None
    participants: dict[str, list[api.ParticipantInfo]] | None = None


async def diagnose(settings: Settings, options: DoctorOptions) -> list[Check]:
    """Run every check in order. Never raises for what it diagnoses."""
    checks: list[Check] = []
    facts = _Facts()
    async with (
        RoomManager(settings=settings, request_timeout=5) as manager,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
    ):
        server = await _server_answers(settings, http)
        checks.append(server)
        if server.ok:
            checks.append(await _keys_accepted(settings, manager, facts))
        else:
            checks.append(skipped("API key and secret accepted", "the server does not answer"))
        checks.append(await _worker_registered(options, http, facts))
        checks.append(await _page_agent_served(options, http, facts))
        if options.worker_url is not None:
            checks.append(await worker_takes_jobs(http, options.worker_url))
        if options.service_urls:
            urls = dict(options.service_urls)
            checks.append(await services_healthy(http, urls, options.services_expected))
        if options.probe:
            checks.extend(await _probe_agents(options, manager, facts))
        if facts.rooms is None:
            reason = "the server's rooms cannot be read"
            checks.append(skipped("nobody waiting without an agent", reason))
            checks.append(skipped("no ghost participants", reason))
            checks.append(skipped("room count", reason))
        else:
            await _load_participants(manager, facts)
            checks.append(_nobody_waiting(facts))
            checks.append(await _no_ghosts(settings, manager, facts))
            checks.append(_room_count(options, facts))
    return checks


async def _server_answers(settings: Settings, http: aiohttp.ClientSession) -> Check:
    name = "LiveKit server answers"
    try:
        async with http.get(settings.http_url + "/") as response:
            if response.status == 200:
                return Check(name, Outcome.OK, f"livekit-server answers at {settings.livekit_url}")
            detail = (
                f"{settings.livekit_url} answered HTTP {response.status}: not a LiveKit server?"
            )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        detail = f"nothing answers at {settings.livekit_url} ({type(exc).__name__})"
    return Check(
        name,
        Outcome.FAIL,
        detail,
        "start it with `room-recovery up`, or set LIVEKIT_URL to your server's address",
    )


async def _keys_accepted(settings: Settings, manager: RoomManager, facts: _Facts) -> Check:
    name = "API key and secret accepted"
    try:
        facts.rooms = await manager.list_rooms()
    except AuthenticationError:
        return Check(
            name,
            Outcome.FAIL,
            f"the server rejected API key {settings.livekit_api_key!r}",
            "make LIVEKIT_API_KEY / LIVEKIT_API_SECRET match a key pair of the server "
            "(`--dev` uses devkey / secret)",
        )
    except (ServerUnreachableError, RoomRecoveryError) as exc:
        return Check(
            name, Outcome.FAIL, str(exc), "see the server's log: `room-recovery logs livekit`"
        )
    return Check(name, Outcome.OK, f"API key {settings.livekit_api_key!r} accepted")


async def _worker_registered(
    options: DoctorOptions, http: aiohttp.ClientSession, facts: _Facts
) -> Check:
    name = "agent worker registered"
    url = options.agent_health_url
    if url is None:
        return skipped(
            name,
            "the running system has no demo agent (`up --no-agent`); "
            "`room-recovery doctor --probe` proves that your own agents come",
        )
    try:
        async with http.get(url) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return Check(
            name,
            Outcome.FAIL,
            f"no agent worker answers at {url}",
            "start it with `room-recovery up` (or `room-recovery agent`); if it runs "
            "elsewhere, pass its health URL with --agent-health-url",
        )
    agent = body.get("agent_name")
    facts.worker_agent = agent if isinstance(agent, str) else None
    if status == 200 and body.get("registered"):
        return Check(name, Outcome.OK, f"worker {facts.worker_agent!r} is registered with LiveKit")
    return Check(
        name,
        Outcome.FAIL,
        f"worker {facts.worker_agent!r} runs but is not registered with LiveKit, so every "
        "dispatch to it is dropped",
        "check the worker's LIVEKIT_URL and keys, and its log: `room-recovery logs agent`",
    )


async def _page_agent_served(
    options: DoctorOptions, http: aiohttp.ClientSession, facts: _Facts
) -> Check:
    name = "the page's agents are served"
    if options.page_config_url is None:
        return skipped(name, "no page URL given")
    try:
        async with http.get(options.page_config_url) as response:
            config: dict[str, Any] = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return skipped(name, f"the page's server does not answer at {options.page_config_url}")
    offered = _agent_names(config.get("agents"))
    facts.offered = offered
    if facts.worker_agent is None:
        return skipped(name, "no registered worker to compare with")
    if facts.worker_agent in offered or not offered:
        return Check(name, Outcome.OK, f"the page offers {offered or 'the default agent'}")
    return Check(
        name,
        Outcome.FAIL,
        f"the page dispatches {offered}, but the worker registers as {facts.worker_agent!r}: "
        "no worker serves the page's choice, so no agent comes",
        "use the same agent name on both sides (`room-recovery up --agent-name NAME`)",
    )


async def _probe_agents(options: DoctorOptions, manager: RoomManager, facts: _Facts) -> list[Check]:
    names = list(options.probe_agents or facts.offered or [facts.worker_agent or DEMO_AGENT])
    if facts.rooms is None:
        reason = "the server's rooms cannot be read"
        return [skipped(f"agent {name!r} comes when dispatched", reason) for name in names]
    return list(await asyncio.gather(*(_agent_comes(manager, n, options) for n in names)))


async def _agent_comes(manager: RoomManager, ref: str, options: DoctorOptions) -> Check:
    """Create a room the way the page's first join does (with `ref`'s dispatch in it, or none
    for an automatic agent) and wait for an agent to join it."""
    agent_name, automatic = agent_ref(ref)
    name = (
        f"an automatic-dispatch agent ({agent_name}) comes to a new room"
        if automatic
        else f"agent {agent_name!r} comes when dispatched"
    )
    room = f"{manager.settings.room_prefix}doctor-probe-{secrets.token_hex(4)}"
    started = time.monotonic()
    try:
        await manager.create_room(room, None if automatic else agent_name)
        while (elapsed := time.monotonic() - started) < options.probe_timeout:
            # Only an agent that is fully connected (ACTIVE) counts, and only then is the
            # room deleted: an agent still joining reconnects to a deleted room, which
            # creates it again, empty, until LiveKit's empty_timeout (measured here).
            views = [participant_view(info) for info in await manager.list_participants(room)]
            if any(v.kind is Kind.AGENT and v.state is State.ACTIVE for v in views):
                return Check(
                    name, Outcome.OK, f"an agent joined test room {room} in {elapsed:.1f} s"
                )
            await asyncio.sleep(0.2)
    except RoomRecoveryError as exc:
        return Check(name, Outcome.FAIL, f"could not dispatch it: {exc}", "see the checks above")
    finally:
        with contextlib.suppress(RoomRecoveryError):
            await manager.delete_room(room)
    if automatic:
        return Check(
            name,
            Outcome.FAIL,
            f"no agent joined test room {room} within {options.probe_timeout:g} s: no worker "
            "without an agent_name is registered, or it is full (a worker on a busy machine "
            "reports its CPU as load and gets no jobs above load_threshold 0.7), or its "
            "request handler rejects or fails the job",
            "start your worker without agent_name, give it load_fnc=job_load and "
            "load_threshold=math.inf (see the README), and read its log (`room-recovery logs "
            f"agent-{agent_name}`)",
        )
    return Check(
        name,
        Outcome.FAIL,
        f"no agent joined test room {room} within {options.probe_timeout:g} s: no worker is "
        f"registered as {agent_name!r} (LiveKit then drops the dispatch), or it is full, or "
        "its request handler rejects or fails the job",
        f"start a worker whose agent_name is {agent_name!r} and read its log "
        "(`room-recovery logs agent`, or agent-NAME for your own)",
    )


def _agent_names(agents: object) -> list[str]:
    names = []
    for agent in agents if isinstance(agents, list) else []:
        if isinstance(agent, str):
            names.append(agent)
        elif isinstance(agent, dict) and isinstance(agent.get("name"), str):
            names.append(f"{AUTOMATIC}{agent['name']}" if agent.get("automatic") else agent["name"])
    return names


async def _load_participants(manager: RoomManager, facts: _Facts) -> None:
    rooms = facts.rooms or []
    listed = await asyncio.gather(*(manager.list_participants(r.name) for r in rooms))
    facts.participants = {room.name: people for room, people in zip(rooms, listed, strict=True)}


def _nobody_waiting(facts: _Facts) -> Check:
    name = "nobody waiting without an agent"
    now = time.time()
    waiting = []
    for room, infos in (facts.participants or {}).items():
        views = [participant_view(i) for i in infos]
        people = [v for v in views if is_person(v)]
        if people and not any(v.kind is Kind.AGENT for v in views):
            longest = now - min(p.joined_at for p in people)
            if longest > WAITING_GRACE:
                waiting.append(f"{room} ({longest:.0f}s)")
    if not waiting:
        return Check(name, Outcome.OK, "every person in a room has an agent")
    return Check(
        name,
        Outcome.FAIL,
        f"a person waits without an agent in: {', '.join(waiting)}",
        "run the watchdog (`room-recovery up` starts it), which dispatches an agent; or "
        "check the worker (above) and `room-recovery logs agent`",
    )


async def _no_ghosts(settings: Settings, manager: RoomManager, facts: _Facts) -> Check:
    name = "no ghost participants"
    participants = facts.participants or {}
    stale = StalePolicy(settings.room_stale_timeout)
    now = time.time()
    ghosts = [
        f"{removal.identity} in {room} ({removal.reason})"
        for room, infos in participants.items()
        for removal in stale_removals([participant_view(i) for i in infos], now, stale)
    ]
    ghosts.extend(await _silent_agents(manager, participants))
    if not ghosts:
        return Check(name, Outcome.OK, "no stale participants and no silent agents")
    return Check(
        name,
        Outcome.FAIL,
        "ghosts: " + "; ".join(ghosts),
        "`room-recovery clean-stale` removes stale ones (the watchdog does it by itself)",
    )


async def _silent_agents(
    manager: RoomManager, participants: dict[str, list[api.ParticipantInfo]]
) -> list[str]:
    """Agents whose heartbeat does not change over a little more than its timeout."""
    tracker = HeartbeatTracker()
    beating = {
        (room, i.identity)
        for room, infos in participants.items()
        for i in infos
        if is_agent_info(i)
        and tracker.silence(room, i.identity, heartbeat_of(i.attributes), time.monotonic(), i.sid)
        is not None
    }
    if not beating:
        return []
    await asyncio.sleep(HEARTBEAT_TIMEOUT + 0.2)
    silent = []
    for room in {room for room, _ in beating}:
        for info in await manager.list_participants(room):
            if (room, info.identity) not in beating:
                continue
            silence = tracker.silence(
                room, info.identity, heartbeat_of(info.attributes), time.monotonic(), info.sid
            )
            if silence is not None and silence > HEARTBEAT_TIMEOUT:
                silent.append(f"{info.identity} in {room} (heartbeat silent; its process died)")
    return silent


def _room_count(options: DoctorOptions, facts: _Facts) -> Check:
    count = len(facts.rooms or [])
    name = "room count"
    if count <= options.room_alert_threshold:
        return Check(name, Outcome.OK, f"{count} room(s) open")
    return Check(
        name,
        Outcome.FAIL,
        f"{count} rooms are open, more than {options.room_alert_threshold}: rooms accumulate",
        "`room-recovery clean-stale` (the watchdog does it every minute)",
    )


def render(checks: list[Check]) -> str:
    """The diagnosis for people, one line a check, with the fix under each failure."""
    marks = {Outcome.OK: "✅", Outcome.FAIL: "❌", Outcome.SKIPPED: "⏭️ "}
    lines = ["room-recovery doctor: why no agent came"]
    for check in checks:
        lines.append(f"  {marks[check.status]} {check.name}: {check.detail}")
        if check.fix and check.status is Outcome.FAIL:
            lines.append(f"       → {check.fix}")
    failed = [c for c in checks if c.status is Outcome.FAIL]
    lines.append("all is well" if not failed else f"{len(failed)} problem(s) found")
    return "\n".join(lines)


def to_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.status is not Outcome.FAIL for c in checks),
        "checks": [asdict(c) for c in checks],
    }
