"""The demo voice agent: no account, no network, no model. The demo's default agent.

It joins the room it is dispatched to (explicit dispatch by agent name, so the page can
choose among agents), publishes an audio track, greets the person (espeak-ng, or a tone
when espeak-ng is missing) and plays back what it hears. It runs with the pre-join cleanup
(`agent_hook`) and the graceful shutdown (`session_guard`) of this package.

    python -m room_recovery.demo_agent [--agent-name demo-agent] [--health-port 8081]

or `await run_worker(settings, DemoAgentOptions(...))` from Python. Its health endpoint,
`GET /health` on `--health-port`, answers 200 `{"registered": true, ...}` only while the
worker is registered with the server, 503 otherwise (livekit-agents' own `GET /` answers
"OK" even before registration).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web
from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobProcess

from . import demo_voice
from .agent_hook import DEFAULT_CLEANUP_TIMEOUT, make_request_handler
from .errors import RoomRecoveryError
from .messages import AgentSelection
from .session_guard import GuardOptions, guard_session, is_agent
from .settings import Settings, load_settings

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = "demo-agent"
DEFAULT_HEALTH_PORT = 8081
DEFAULT_GREETING = "Hello! I am the demo agent. Say something, and I will say it back."
GREETING_WAIT = 3.0  # seconds to wait for the person to subscribe before greeting anyway
TRACK_NAME = "agent-voice"


@dataclass(frozen=True)
class DemoAgentOptions:
    """How the demo agent's worker runs. Picklable: job processes receive it."""

    agent_name: str = DEFAULT_AGENT_NAME
    greeting: str = DEFAULT_GREETING
    guard: GuardOptions = field(default_factory=GuardOptions)
    prejoin_cleanup: bool = True
    cleanup_timeout: float = DEFAULT_CLEANUP_TIMEOUT
    num_idle_processes: int = 1  # a warm process makes the join fast
    max_jobs: int = 8  # the worker's load is its share of these, not the machine's CPU
    echo: bool = True


# --- the job ---------------------------------------------------------------------------


def prewarm(options: DemoAgentOptions, proc: JobProcess) -> None:
    """Render the greeting once per process, before any job arrives."""
    speech = demo_voice.render_speech(options.greeting)
    proc.userdata["greeting"] = speech if speech is not None else demo_voice.render_tone()


async def entrypoint(options: DemoAgentOptions, ctx: JobContext) -> None:
    """Join, guard the session, publish a voice, greet, echo. Returns once all is running."""
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    guard_session(ctx, options.guard, on_selection=_log_selection)
    greeting = ctx.proc.userdata.get("greeting")
    if greeting is None:
        greeting = demo_voice.render_tone()
    voice = Voice(ctx.room)
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
    """The agent's audio track, what it plays, and the echo of each person's track."""

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.source = rtc.AudioSource(demo_voice.SAMPLE_RATE, 1)
        self._queue: asyncio.Queue[demo_voice.Pcm] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()

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
            for chunk in demo_voice.frames(clip):
                frame = rtc.AudioFrame(
                    chunk, demo_voice.SAMPLE_RATE, 1, demo_voice.SAMPLES_PER_FRAME
                )
                await self.source.capture_frame(frame)

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
                    logger.info(
                        "Heard %.1fs from %s; saying it back",
                        utterance.size / demo_voice.SAMPLE_RATE,
                        identity,
                        extra={"identity": identity},
                    )
                    self._queue.put_nowait(utterance)
        finally:
            await stream.aclose()


# --- the worker ------------------------------------------------------------------------


@dataclass
class WorkerStatus:
    """What the health endpoint reports."""

    agent_name: str
    worker_id: str | None = None
    health_url: str | None = None
    server: AgentServer | None = None

    @property
    def registered(self) -> bool:
        # the SDK has no event for losing the connection; `_connecting` is set again while
        # it reconnects after a server restart, until the next `worker_registered`
        reconnecting = bool(getattr(self.server, "_connecting", False))
        failed = bool(getattr(self.server, "_connection_failed", False))
        return self.worker_id is not None and not reconnecting and not failed

    def to_dict(self) -> dict[str, Any]:
        active = len(self.server.active_jobs) if self.server and self.registered else 0
        return {
            "registered": self.registered,
            "agent_name": self.agent_name,
            "worker_id": self.worker_id,
            "active_jobs": active,
        }


def job_load(max_jobs: int, server: AgentServer) -> float:
    """The worker's load as the server sees it: its share of `max_jobs`, from 0 to 1.

    livekit-agents reports the machine's CPU use by default, and livekit-server sends no
    job to a worker whose reported load is at or above its `agents.target_load` (0.7),
    whatever the worker's own `load_threshold`: on a busy 2-core machine the person would
    wait for an agent that never comes. Jobs, not CPU, measure this agent's capacity.
    """
    return min(1.0, len(server.active_jobs) / max(max_jobs, 1))


def build_server(settings: Settings, options: DemoAgentOptions) -> AgentServer:
    """The demo agent's AgentServer (not started)."""
    server = AgentServer(
        ws_url=settings.ws_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        load_fnc=functools.partial(job_load, options.max_jobs),
        load_threshold=1.0,
        num_idle_processes=options.num_idle_processes,
        host="127.0.0.1",
        port=0,  # livekit-agents' own HTTP server: any free port
        setup_fnc=functools.partial(prewarm, options),
    )
    server.rtc_session(
        functools.partial(entrypoint, options),
        agent_name=options.agent_name,
        on_request=make_request_handler(
            settings, timeout=options.cleanup_timeout, clean=options.prejoin_cleanup
        ),
    )
    return server


@contextlib.asynccontextmanager
async def health_endpoint(status: WorkerStatus, host: str, port: int) -> AsyncIterator[str]:
    """Serve `GET /health` (and `GET /`) for `status`; yields its URL. Port 0 picks one."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response(status.to_dict(), status=200 if status.registered else 503)

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/", health)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}/health"
    finally:
        await runner.cleanup()


async def run_worker(
    settings: Settings | None = None,
    options: DemoAgentOptions | None = None,
    *,
    health_host: str = "127.0.0.1",
    health_port: int = DEFAULT_HEALTH_PORT,
    stop: asyncio.Event | None = None,
    on_registered: Callable[[WorkerStatus], None] | None = None,
) -> None:
    """Run the demo agent's worker until `stop` is set (or the task is cancelled).

    `on_registered` is called each time the worker registers with the server. Raises
    ConfigurationError for bad settings, and RoomRecoveryError when the worker gives up
    connecting to the server (after livekit-agents' 16 retries).
    """
    settings = settings or load_settings()
    options = options or DemoAgentOptions()
    # The demo uses no local model: do not load the VAD/turn weights into every process.
    os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
    server = build_server(settings, options)
    status = WorkerStatus(options.agent_name, server=server)

    def registered(worker_id: str, _server_info: object) -> None:
        status.worker_id = worker_id
        logger.info(
            "✅ Agent %s registered",
            options.agent_name,
            extra={
                "agent_name": options.agent_name,
                "worker_id": worker_id,
                "health": status.health_url,
            },
        )
        if on_registered is not None:
            on_registered(status)

    server.on("worker_registered", registered)
    stop = stop or asyncio.Event()
    async with health_endpoint(status, health_host, health_port) as url:
        status.health_url = url
        logger.info("Health endpoint at %s", url, extra={"health": url})
        running = asyncio.create_task(server.run(devmode=False, unregistered=False))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await server.aclose()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        if running.done() and not running.cancelled() and running.exception() is not None:
            raise RoomRecoveryError(f"agent worker stopped: {running.exception()}")


# --- the command -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="room-recovery agent",
        description="Run the offline demo voice agent (LIVEKIT_URL, LIVEKIT_API_KEY, "
        "LIVEKIT_API_SECRET from the environment or .env).",
    )
    parser.add_argument(
        "--agent-name",
        default=DEFAULT_AGENT_NAME,
        help="name for explicit dispatch (default %(default)s)",
    )
    parser.add_argument("--health-host", default="127.0.0.1")
    parser.add_argument(
        "--health-port",
        type=int,
        default=DEFAULT_HEALTH_PORT,
        help="port of GET /health; 0 picks a free one (default %(default)s)",
    )
    parser.add_argument("--greeting", default=DEFAULT_GREETING)
    parser.add_argument(
        "--grace",
        type=float,
        default=GuardOptions.grace,
        help="seconds to stay after the person left without goodbye",
    )
    parser.add_argument(
        "--first-join-timeout",
        type=float,
        default=GuardOptions.first_join_timeout,
        help="seconds to wait for a person before leaving an empty room",
    )
    parser.add_argument(
        "--cleanup-timeout",
        type=float,
        default=DEFAULT_CLEANUP_TIMEOUT,
        help="bound of the pre-join cleanup, under 3 s",
    )
    parser.add_argument(
        "--no-prejoin-cleanup",
        action="store_true",
        help="accept jobs without cleaning the room first",
    )
    parser.add_argument(
        "--idle-processes",
        type=int,
        default=1,
        help="warm job processes kept ready (default %(default)s)",
    )
    parser.add_argument(
        "--max-jobs",
        type=int,
        default=DemoAgentOptions.max_jobs,
        help="jobs this worker takes at once (default %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> DemoAgentOptions:
    return DemoAgentOptions(
        agent_name=args.agent_name,
        greeting=args.greeting,
        guard=GuardOptions(grace=args.grace, first_join_timeout=args.first_join_timeout),
        prejoin_cleanup=not args.no_prejoin_cleanup,
        cleanup_timeout=args.cleanup_timeout,
        num_idle_processes=args.idle_processes,
        max_jobs=args.max_jobs,
    )


def main(argv: list[str] | None = None) -> int:
    """`room-recovery agent`: run the demo agent until SIGINT/SIGTERM. Returns an exit code.

    Prints one line, `registered: agent NAME, health URL`, each time it registers.
    """
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        options = options_from_args(args)
        asyncio.run(_main(settings, options, args.health_host, args.health_port))
    except RoomRecoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


async def _main(settings: Settings, options: DemoAgentOptions, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def announce(status: WorkerStatus) -> None:
        print(f"registered: agent {status.agent_name}, health {status.health_url}", flush=True)

    try:
        await run_worker(
            settings, options, health_host=host, health_port=port, stop=stop, on_registered=announce
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


if __name__ == "__main__":
    # Import by the package name, so that job processes unpickle `room_recovery.demo_agent`
    # objects, not `__main__` ones.
    from room_recovery.demo_agent import main as _entry

    sys.exit(_entry())
