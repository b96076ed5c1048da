"""One look at one room: gather what it holds, decide (pure, `rules.watch`), act.

Gather: the participants (one `ListParticipants`), what the worker links vouch for, how
long each agent's heartbeat has been silent, and, only when the decision asks for it
(`ask_fate`), what became of the room's last dispatch (one `ListDispatch`). Decide:
`rules.watch.assess_room`. Act: remove ghosts (by sid), delete a dispatch no worker took,
dispatch an agent (one per claim among watchdogs), or mark the room failed; each step only
while this watchdog leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, replace

from livekit import api

from ..core.errors import LiveKitAPIError, RoomRecoveryError, ServerUnreachableError
from ..core.views import dispatch_fate, dispatch_views, is_agent_info, participant_view
from ..protocol.heartbeat import heartbeat_of
from ..protocol.messages import dispatch_metadata
from ..protocol.room_status import STATUS_FAILED, recovering
from ..rules.attention import RoomSignals
from ..rules.model import Kind, ParticipantView, Removal, is_person
from ..rules.reach import GHOST_AFTER, Reach, judge_reach, only_dead_agents
from ..rules.recovery import verdict
from ..rules.watch import (
    DispatchFate,
    RoomAssessment,
    RoomHistory,
    assess_room,
    dispatch_on_its_way,
    dispatched,
    room_agent,
    waited_before,
)
from .context import WatchdogContext
from .metrics import count_kinds
from .rooms import WatchedRoom

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomFacts:
    """What one look gathered: the participants, and what is known of its agents' lives."""

    views: list[ParticipantView]
    silence: dict[str, float | None]  # agent identity → seconds its heartbeat is silent
    allowance: dict[str, float]  # agent identity → silence it may have (its rhythm)
    on_its_way: bool  # a linked worker runs a job for the room whose agent is not in yet


async def look_at_room(watchdog: WatchdogContext, name: str) -> bool:
    """Look at one room and act on it. Returns whether a person is waiting there.

    Gather (the participants, the links' and heartbeats' word, and, when the decision
    asks for it, what became of the last dispatch), decide (`rules.watch.assess_room`,
    pure), act (each step fenced: only the leader acts).
    """
    state = watchdog.book.get(name)
    if state is None:
        return False
    async with watchdog.gate, state.lock:
        infos = await watchdog.manager.list_participants(name)
        now = time.monotonic()
        if not infos:  # empty, or gone: quiet until something happens in it again
            state.history, state.counts, state.waiting = RoomHistory(), {}, False
            watchdog.links.forget_died(name, set())
            state.people = state.agents = ()
            watchdog.book.looked(name, RoomSignals(), now)
            return False
        facts = _facts(watchdog, name, state, infos, now)
        result = _assess(watchdog, state, facts, now)
        if result.ask_fate and state.history.pending is not None:
            dispatches = await watchdog.manager.list_dispatches(name)
            _learn_agent(watchdog, state, dispatches)
            fate = dispatch_fate(dispatches, state.history.pending)
            result = _assess(watchdog, state, facts, now, fate)
        await _act(watchdog, name, state, facts, result)
        state.waiting = result.waiting
        signals = RoomSignals(
            waiting=result.waiting,
            recovering=bool(result.ghosts) or state.replacing is not None,
            starting=facts.on_its_way,
            # a heartbeat read matters only to a person who would wait on its agent
            in_doubt=state.counts["person"] > 0
            and any(silent is not None for silent in facts.silence.values()),
        )
        watchdog.book.looked(name, signals, time.monotonic())
        return result.waiting


def _facts(
    watchdog: WatchdogContext,
    name: str,
    state: WatchedRoom,
    infos: list[api.ParticipantInfo],
    now: float,
) -> RoomFacts:
    """What the room holds now, and what the links and heartbeats say of its agents."""
    views = [participant_view(info) for info in infos]
    state.counts = count_kinds(views)
    state.people = tuple(v.identity for v in views if is_person(v))
    state.agents = tuple(info.identity for info in infos if is_agent_info(info))
    vouched = watchdog.links.vouched(name)  # their worker says they run: trust it
    # an agent whose process its worker saw die, or that died with its worker: dead however
    # LiveKit still lists it (a guide's agent sends no heartbeat; its node may be gone too)
    watchdog.links.forget_died(name, {info.identity for info in infos})
    died = watchdog.links.died(name)
    dead = {v.sid for v in views for death in died if verdict(v, death)}
    silence = {
        info.identity: math.inf
        if info.sid in dead
        else None
        if info.identity in vouched
        else watchdog.heartbeats.silence(
            name, info.identity, heartbeat_of(info.attributes), now, info.sid
        )
        for info in infos
        if is_agent_info(info)
    }
    allowance = {identity: watchdog.heartbeats.allowance(name, identity) for identity in silence}
    if not state.join_recorded:
        state.join_recorded = watchdog.metrics.record_join(infos)
    # a vouched agent not joined yet, or one its worker is replacing: one more would be two
    on_its_way = bool(vouched - {info.identity for info in infos}) or watchdog.links.replacing(name)
    return RoomFacts(views, silence, allowance, on_its_way)


def _first_for_a_newcomer(state: WatchedRoom, result: RoomAssessment) -> bool:
    """Whether the decision is the first dispatch for a person who has had no agent yet
    (not a replacement: a person whose agent died is sent one at once)."""
    return result.dispatch and not result.history.agent_died and state.history.last_sent is None


async def _on_its_way(watchdog: WatchdogContext, name: str, state: WatchedRoom) -> bool:
    """Whether a dispatch already made, LiveKit's own first of all, may still bring the
    room its agent (`rules.watch.dispatch_on_its_way`): then one more would make two, on
    two workers. One `ListDispatch`, asked only when about to dispatch; when LiveKit cannot
    say, nothing is on its way (a person is never left waiting for our doubt)."""
    try:
        dispatches = await watchdog.manager.list_dispatches(name)
    except RoomRecoveryError as exc:
        logger.info("Room %s: cannot list its dispatches (%s)", name, exc, extra={"room": name})
        return False
    _learn_agent(watchdog, state, dispatches)
    views, watch = dispatch_views(dispatches), watchdog.options.watch
    if not dispatch_on_its_way(views, time.time(), watch, watchdog.links.gone()):
        state.awaited = False
        return False
    if not state.awaited:
        state.awaited = True
        logger.info(
            "⏳ Room %s: a person waits, and a dispatch made already may still bring the "
            "agent (a worker is answering it, or launching its job); no second one yet",
            name,
            extra={"room": name},
        )
    return True


def _assess(
    watchdog: WatchdogContext,
    state: WatchedRoom,
    facts: RoomFacts,
    now: float,
    fate: DispatchFate | None = None,
) -> RoomAssessment:
    last = state.history.last_sent
    return assess_room(
        facts.views,
        facts.silence,
        state.history,
        now,
        watchdog.options.watch,
        facts.allowance,
        hold=facts.on_its_way,
        fate=fate,
        worker_ready=last is not None and state.ready_at > last,
        waited=waited_before(facts.views, time.time()),
    )


async def _act(
    watchdog: WatchdogContext,
    name: str,
    state: WatchedRoom,
    facts: RoomFacts,
    result: RoomAssessment,
) -> None:
    if result.ghosts or result.dispatch or result.mark_failed or result.dropped:
        await watchdog.leadership.fence()  # only the leader acts, never on a stale lease
    if result.ghosts and result.waiting:
        state.replacing = result.ghosts[0].identity
        await _tell_pages(watchdog, name, state.replacing)
    elif not result.waiting:
        state.replacing, state.awaited = None, False
    unanswered: set[str] = set()
    for ghost in result.ghosts:
        await watchdog.leadership.fence()
        removed = await _remove_ghost(watchdog, name, ghost)
        if removed is None:
            unanswered.add(ghost.sid)
        if removed:
            watchdog.heartbeats.forget(name, ghost.identity)
            watchdog.recovered(name, "ghost_removed", f"{ghost.identity}: {ghost.reason}")
            logger.info(
                "👻 Removed ghost agent %s from room %s (%s)",
                ghost.identity,
                name,
                ghost.reason,
                extra={"room": name, "identity": ghost.identity, "sid": ghost.sid},
            )
    listed = ((v.sid, v.kind is Kind.AGENT) for v in facts.views)
    if unanswered and only_dead_agents(listed, unanswered):
        reason = (
            f"it holds only dead agents ({', '.join(state.agents)}) that no LiveKit node "
            "answers for (their node died), and nobody else"
        )
        await _delete_ghost_room(watchdog, name, state, reason)
        return
    if result.dropped is not None:
        # no worker took it: not an attempt; deleted, so the room's list stays short
        watchdog.recovered(name, "dispatch_dropped", "no worker took the last dispatch")
        with contextlib.suppress(RoomRecoveryError):
            await watchdog.manager.delete_dispatch(name, result.dropped)
    history = result.history
    if result.dispatch:
        reach = await _reach(watchdog, name, state, facts.views)
        if reach is Reach.GHOSTS:
            reason = (
                f"every person listed in it ({', '.join(state.people)}) is a ghost: no "
                f"LiveKit node has answered for them for {GHOST_AFTER:g}s (their node died)"
            )
            await _delete_ghost_room(watchdog, name, state, reason)
            return
        if reach is Reach.DOUBT:  # no dispatch: the wait goes on, asked again next look
            state.history = replace(state.history, waiting_since=history.waiting_since)
            return
        if _first_for_a_newcomer(state, result) and await _on_its_way(watchdog, name, state):
            state.history = replace(state.history, waiting_since=history.waiting_since)
            return  # the same: the wait goes on
        dispatch_id = await _dispatch(
            watchdog, name, state, facts.views, result.cause or "agent_missing", history
        )
        history = dispatched(history, dispatch_id)
    if result.mark_failed:
        await _mark_failed(watchdog, name, len(history.dispatches))
    state.history = history


async def _tell_pages(watchdog: WatchdogContext, name: str, dead: str) -> None:
    """Mark the room recovering, for its pages. Advice only: when the room's node died
    (LiveKit cannot route the update) the look goes on to what makes the room whole."""
    try:
        await watchdog.manager.update_room_status(name, recovering("agent_died", dead))
    except (ServerUnreachableError, LiveKitAPIError) as exc:
        logger.info("Room %s: could not mark it recovering (%s)", name, exc, extra={"room": name})


async def _remove_ghost(watchdog: WatchdogContext, name: str, ghost: Removal) -> bool | None:
    """Remove a ghost agent by its sid: whether it was there, None when no node answered.

    LiveKit sends the removal to the agent's node: when that node died with it, no node
    answers, and the look goes on (the people waiting are asked next, `_reach`; a room
    left with such agents only is deleted) rather than failing at this step at every look.
    """
    try:
        return await watchdog.manager.remove_agent(name, ghost.identity, ghost.sid)
    except (ServerUnreachableError, LiveKitAPIError) as exc:
        logger.info(
            "Room %s: ghost agent %s could not be removed (%s); its node may have died with it",
            name,
            ghost.identity,
            exc,
            extra={"room": name, "identity": ghost.identity, "sid": ghost.sid},
        )
        return None


async def _reach(
    watchdog: WatchdogContext, name: str, state: WatchedRoom, views: list[ParticipantView]
) -> Reach:
    """Whether LiveKit reaches the people a dispatch would be for (`rules.reach`)."""
    people = [v for v in views if is_person(v)]
    answers = await asyncio.gather(*(watchdog.manager.reaches(name, v.identity) for v in people))
    doubted_before = bool(state.unanswered)
    verdict, state.unanswered = judge_reach(
        {v.sid: answer for v, answer in zip(people, answers, strict=True)},
        state.unanswered,
        time.monotonic(),
    )
    if verdict is Reach.DOUBT and not doubted_before:
        logger.warning(
            "❓ Room %s: LiveKit gets no answer from the node of %s; no agent is sent "
            "until it does (after %gs they count as ghosts of a dead node)",
            name,
            ", ".join(v.identity for v in people),
            GHOST_AFTER,
            extra={"room": name, "people": [v.identity for v in people]},
        )
    return verdict


async def _delete_ghost_room(
    watchdog: WatchdogContext, name: str, state: WatchedRoom, reason: str
) -> None:
    """Delete a room that LiveKit lists but will never end: what is in it, no node holds
    (DeleteRoom clears that state, re-homing the room first when its node is gone)."""
    await watchdog.leadership.fence()
    if await watchdog.manager.delete_room(name):
        watchdog.metrics.cleanups.labels("room_deleted").inc()
        watchdog.recovered(name, "ghost_room", reason)
        logger.warning("👻 Deleted room %s: %s", name, reason, extra={"room": name})
    state.history, state.unanswered = RoomHistory(), {}


def _learn_agent(
    watchdog: WatchdogContext, state: WatchedRoom, dispatches: list[api.AgentDispatch]
) -> None:
    if state.agent_name is None:
        names = [d.agent_name for d in dispatches]
        state.agent_name = room_agent(
            names, watchdog.options.agent_name, watchdog.options.automatic
        )


async def _dispatch(
    watchdog: WatchdogContext,
    room: str,
    state: WatchedRoom,
    views: list[ParticipantView],
    cause: str,
    history: RoomHistory,
) -> str | None:
    """Dispatch the room's agent (at most once per claim among watchdogs); its id."""
    if state.agent_name is None:
        _learn_agent(watchdog, state, await watchdog.manager.list_dispatches(room))
    agent_name = state.agent_name or ""
    if not await watchdog.leadership.claim(room, watchdog.options.watch.dispatch_wait):
        return None  # another watchdog dispatched to this room a moment ago
    person = next((v.identity for v in views if is_person(v)), "")
    dispatch_id = await watchdog.manager.dispatch_agent(
        room, agent_name, dispatch_metadata(person) if person else ""
    )
    agent = agent_name or "the automatic agent"
    attempt = len(history.dispatches)
    tries = f"attempt {attempt}/{watchdog.options.watch.max_dispatches}"
    if history.failed:
        tries = "again: the room was marked failed, and someone still waits"
    watchdog.recovered(room, cause, f"dispatched {agent} ({tries})")
    logger.info(
        "🚑 Room %s: %s; dispatching %s (%s)",
        room,
        "its agent died" if cause == "agent_died" else "a person is waiting without an agent",
        agent,
        tries,
        extra={"room": room, "cause": cause, "agent": agent_name, "attempt": attempt},
    )
    return dispatch_id


async def _mark_failed(watchdog: WatchdogContext, room: str, attempts: int) -> None:
    reason = (
        f"no agent joined after {attempts} dispatches; is an agent worker running and "
        "registered? Run `room-recovery doctor`"
    )
    await watchdog.manager.update_room_status(room, {"status": STATUS_FAILED, "reason": reason})
    watchdog.recovered(room, "room_failed", reason)
    logger.warning("❌ Room %s: %s", room, reason, extra={"room": room})
