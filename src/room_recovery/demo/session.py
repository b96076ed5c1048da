"""The demo agent's job: join, guard the session, publish a voice, greet, echo.

Its worker is `demo.worker`; its command line `demo.command` (`room-recovery agent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, JobProcess

from ..agent.guard import GuardOptions, guard_session, is_agent
from ..agent.hook import DEFAULT_CLEANUP_TIMEOUT
from ..core.defaults import DEMO_AGENT
from ..protocol.agent_state import AGENT_STATE_ATTRIBUTE, AgentState
from ..protocol.messages import AgentSelection
from . import voice as demo_voice

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = DEMO_AGENT
DEFAULT_GREETING = "Hello! I am the demo agent. Say something, and I will say it back."
GREETING_WAIT = 3.0  # seconds to wait for the person to subscribe before greeting anyway
TRACK_NAME = "agent-voice"
STATE_TIMEOUT = 1.0  # a state that cannot be published in this long is skipped
# the voice is handed to LiveKit 100 ms at a time: each hand-over is a round trip through
# the SDK's FFI, and at 10 ms they took most of a job's CPU (LiveKit still sends 10 ms packets)
PLAY_CHUNK_MS = 100
PLAY_CHUNK = demo_voice.samples_per_frame(PLAY_CHUNK_MS)  # samples


@dataclass(frozen=True)
class DemoAgentOptions:
    """How the demo agent's worker runs. Picklable: job processes receive it."""

    agent_name: str = DEFAULT_AGENT_NAME
    greeting: str = DEFAULT_GREETING
    guard: GuardOptions = field(default_factory=GuardOptions)
    prejoin_cleanup: bool = True
    cleanup_timeout: float = DEFAULT_CLEANUP_TIMEOUT
    # warm processes make the join fast: with 1, a third of the jobs at 6 people at once
    # waited for a process to start; with 3, one in thirty
    num_idle_processes: int = 3
    # the worker's load counts these, not the machine's CPU (job_load). At 7-10 % of a core
    # each, 12 fill about half of a 2-core machine; 8 was full at 6 people at once, whose
    # previous jobs were still closing
    max_jobs: int = 12
    echo: bool = True


def prewarm(options: DemoAgentOptions, proc: JobProcess) -> None:
    """Render the greeting once per process, before any job arrives."""
    speech = demo_voice.render_speech(options.greeting)
    proc.userdata["greeting"] = speech if speech is not None else demo_voice.render_tone()


async def entrypoint(options: DemoAgentOptions, ctx: JobContext) -> None:
    """Join, guard the session, publish a voice, greet, echo. Returns once all is running."""
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    guard_session(ctx, options.guard, on_selection=_log_selection)
    voice = Voice(ctx.room)
    await voice.set_state("initializing")
    greeting = ctx.proc.userdata.get("greeting")
    if greeting is None:
        greeting = demo_voice.render_tone()
    await voice.publish()
    ctx.add_shutdown_callback(voice.aclose)
    voice.start(greeting, echo=options.echo)


def _log_selection(selection: AgentSelection, sender: rtc.RemoteParticipant) -> None:
    logger.info(
        "%s selected agent %s (%s)",
        sender.identity,
        selection.agent_name,
        selection.agent_id,
        extra={"identity": sender.identity, "agent_name": selection.agent_name},
    )


class Voice:
    """The agent's audio track, what it plays, and the echo of each person's track.

    It publishes its state as LiveKit's agent front ends expect (`lk.agent.state`):
    initializing until it speaks, speaking while a clip plays, thinking between hearing
    an utterance and saying it back, listening otherwise.
    """

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.source = rtc.AudioSource(demo_voice.SAMPLE_RATE, 1)
        self._queue: asyncio.Queue[demo_voice.Pcm] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()
        self.state: AgentState | None = None

    async def set_state(self, state: AgentState) -> None:
        """Publish the agent's state (best effort: a slow connection skips it)."""
        if state == self.state:
            return
        self.state = state
        try:
            async with asyncio.timeout(STATE_TIMEOUT):
                await self.room.local_participant.set_attributes({AGENT_STATE_ATTRIBUTE: state})
        except Exception as exc:  # a closing connection must not end the voice
            logger.debug("agent state %s not published: %s", state, exc or type(exc).__name__)

    async def publish(self) -> None:
        track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        self.room.on("local_track_subscribed", lambda *_: self._subscribed.set())
        await self.room.local_participant.publish_track(track, options)

    def start(self, greeting: demo_voice.Pcm, *, echo: bool) -> None:
        self._spawn(self._speak())
        self._spawn(self._greet(greeting))
        if not echo:
            return
        self.room.on("track_subscribed", self._on_track_subscribed)
        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._on_track_subscribed(publication.track, publication, participant)

    async def aclose(self) -> None:
        """Stop playing and listening; close the audio source."""
        self.room.off("track_subscribed", self._on_track_subscribed)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.source.aclose()

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("demo agent voice task failed", exc_info=task.exception())

    async def _greet(self, greeting: demo_voice.Pcm) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), GREETING_WAIT)
        self._queue.put_nowait(greeting)

    async def _speak(self) -> None:
        while True:
            clip = await self._queue.get()
            await self.set_state("speaking")
            for chunk in demo_voice.frames(clip, PLAY_CHUNK_MS):
                frame = rtc.AudioFrame(chunk, demo_voice.SAMPLE_RATE, 1, PLAY_CHUNK)
                await self.source.capture_frame(frame)
            await self.source.wait_for_playout()
            if self._queue.empty():
                await self.set_state("listening")

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not is_agent(participant):
            self._spawn(self._echo(track, participant.identity))

    async def _echo(self, track: rtc.Track, identity: str) -> None:
        """Play back each utterance heard on the track (not while the agent is speaking)."""
        detector = demo_voice.UtteranceDetector()
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=demo_voice.SAMPLE_RATE, num_channels=1
        )
        try:
            async for event in stream:
                if self._queue.qsize() or self.source.queued_duration > 0:
                    continue  # the agent is talking: do not record itself through the person
                samples = np.frombuffer(event.frame.data, dtype=np.int16)
                utterance = detector.push(samples)
                if utterance is not None:
                    await self.set_state("thinking")
                    logger.info(
                        "Heard %.1fs from %s; saying it back",
                        utterance.size / demo_voice.SAMPLE_RATE,
                        identity,
                        extra={"identity": identity},
                    )
                    self._queue.put_nowait(utterance)
        finally:
            await stream.aclose()
