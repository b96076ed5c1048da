"""Real agent workers in child processes, and people who ask for them.

`WorkerProcess` runs `python -m room_recovery.demo` in its own process group, so that
`kill()` SIGKILLs the worker *and* its job processes at once, as a crash would: the agent
it had in a room stays there as a ghost. `close()` stops it gracefully, then by force.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from livekit import api, rtc

from room_recovery.agent.hook import dispatch_metadata
from room_recovery.protocol.heartbeat import HEARTBEAT_ATTRIBUTE
from tests.support.livekit import ROOT, ServerInfo, leave

REGISTERED = "registered: "


class WorkerProcess:
    """An agent worker in a child process (its own process group), logging to `log_path`."""

    def __init__(
        self,
        server: ServerInfo,
        command: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        stdout_to_log: bool = False,
    ) -> None:
        self.log_path = log_path
        self.agent_name = ""
        self.health_url: str | None = None
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            stdout=self._log if stdout_to_log else subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=os.environ | server.env() | {"PYTHONPATH": str(ROOT)} | (env or {}),
            start_new_session=True,
        )

    @classmethod
    def demo(
        cls,
        server: ServerInfo,
        agent_name: str,
        log_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """The demo agent (`python -m room_recovery.demo`), health on a free port."""
        command = [
            "-m",
            "room_recovery.demo",
            "--agent-name",
            agent_name,
            "--health-port",
            "0",
            *args,
        ]
        worker = cls(server, command, log_path, env=env)
        worker.agent_name = agent_name
        return worker

    async def registered(self, timeout: float = 40.0) -> str:
        """Wait until the demo worker says it registered; returns its health URL."""
        assert self.process.stdout is not None
        stdout = self.process.stdout

        async def read() -> str:
            while True:
                line = (await asyncio.to_thread(stdout.readline)).decode()
                if not line:
                    raise RuntimeError(f"worker exited ({self.process.poll()}): {self.log_tail()}")
                if line.startswith(REGISTERED):
                    return line.rsplit(" ", 1)[-1].strip()

        self.health_url = await asyncio.wait_for(read(), timeout)
        return self.health_url

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    async def wait_for_log(self, *parts: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until `count` lines of the worker's log contain every one of `parts`."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.log_text().splitlines() if all(p in ln for p in parts)]
            if len(lines) >= count:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited while waiting for {parts}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} log line(s) with {parts}"
                )
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the worker and its job processes (its whole process group), as a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def terminate(self) -> None:
        """SIGTERM, if it still runs (it then drains its jobs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def close(self, grace: float = 2.0) -> None:
        """SIGTERM, a bounded wait, then SIGKILL of the group; releases the pipes. The
        grace is short: a worker with a job drains it as long as its room lasts (see
        `close_all`), and an idle one exits well within it."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # job processes outlive a worker killed mid-shutdown: the group goes with it
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def close_all(workers: list[WorkerProcess], grace: float = 1.0) -> None:
    """Stop every worker: SIGTERM to all at once, one shared wait of `grace`, then SIGKILL.

    A worker drains its jobs on SIGTERM for as long as their rooms last, and a test's rooms
    do not end by themselves: a worker with a job would use any grace to the full, so the
    grace is short (an idle worker exits within it; one with a job is killed after it)."""
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.close(grace=max(0.0, deadline - time.monotonic()))


def person_token(
    server: ServerInfo,
    room: str,
    identity: str,
    agent_name: str | None = None,
    *,
    metadata: str | None = None,
    kind: str = "",
) -> str:
    """A person's token; with `agent_name`, it dispatches that agent when it creates the room.

    The dispatch metadata names the person (`dispatch_metadata`) unless `metadata` is given.
    """
    token = (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if kind:
        token = token.with_kind(kind)  # type: ignore[arg-type]
    if agent_name:
        dispatch = api.RoomAgentDispatch(
            agent_name=agent_name,
            metadata=dispatch_metadata(identity) if metadata is None else metadata,
        )
        token = token.with_room_config(api.RoomConfiguration(agents=[dispatch]))
    return token.to_jwt()


class Person:
    """A person in a room (rtc, in this process) who records who comes and goes."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.room = rtc.Room()
        self.events: list[tuple[str, str, str]] = []  # (event, identity, sid)
        self._changed = asyncio.Event()
        self.room.on("participant_connected", lambda p: self._record("joined", p))
        self.room.on("participant_disconnected", lambda p: self._record("left", p))
        self.room.on("disconnected", lambda *_: self._changed.set())
        self.room.on("participant_attributes_changed", lambda *_: self._changed.set())

    def _record(self, event: str, participant: rtc.RemoteParticipant) -> None:
        self.events.append((event, participant.identity, participant.sid))
        self._changed.set()

    def agents(self) -> list[rtc.RemoteParticipant]:
        return [
            p
            for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]

    async def wait_for(self, condition: str, check: object, timeout: float = 15.0) -> None:
        """Wait (on room events, no polling) until `check()` is true."""

        async def watch() -> None:
            while not check():  # type: ignore[operator]
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(watch(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}") from None

    async def wait_for_agent(self, timeout: float = 15.0) -> rtc.RemoteParticipant:
        await self.wait_for("an agent to join", lambda: bool(self.agents()), timeout)
        return self.agents()[0]

    async def wait_for_guarded_agent(self, timeout: float = 15.0) -> rtc.RemoteParticipant:
        """Until an agent joined and its session guard listens (its heartbeat is set).

        An agent is visible a moment before its entrypoint runs `guard_session`; a message
        sent in between reaches no handler and is lost.
        """

        def guarded() -> list[rtc.RemoteParticipant]:
            return [a for a in self.agents() if HEARTBEAT_ATTRIBUTE in a.attributes]

        await self.wait_for(
            "an agent whose session guard listens", lambda: bool(guarded()), timeout
        )
        return guarded()[0]

    async def wait_for_no_agent(self, timeout: float = 15.0) -> None:
        """Until the agent left, or the room was deleted (which disconnects the person too)."""
        await self.wait_for(
            "the agent to leave",
            lambda: not self.agents() or not self.room.isconnected(),
            timeout,
        )

    async def send(self, payload: bytes, topic: str = "") -> None:
        await self.room.local_participant.publish_data(payload, reliable=True, topic=topic)


@asynccontextmanager
async def person(
    server: ServerInfo,
    room: str,
    identity: str,
    agent_name: str | None = None,
    *,
    metadata: str | None = None,
    kind: str = "",
    publish: bool = False,
) -> AsyncIterator[Person]:
    """A connected Person (dispatching `agent_name` when the room is new); leaves on exit."""
    someone = Person(identity)
    token = person_token(server, room, identity, agent_name, metadata=metadata, kind=kind)
    await someone.room.connect(server.url, token)
    try:
        if publish:
            source = rtc.AudioSource(48000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await someone.room.local_participant.publish_track(track, options)
        yield someone
    finally:
        await leave(someone.room)


def job_processes(worker: WorkerProcess, server_url: str) -> list[int]:
    """Pids of the worker's job processes that are connected to the server (in a room)."""
    return connected_children(worker.process.pid, int(server_url.rsplit(":", 1)[1]))


def connected_children(parent: int, server_port: int) -> list[int]:
    """Pids of `parent`'s descendants with a TCP connection to `server_port`: a worker's
    job processes in a room. Idle warm processes and the forkserver hold no connection to
    the server; the worker's own process does, but it is the parent, not a descendant."""
    import psutil

    try:
        children = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    pids = []
    for child in children:
        try:
            connections = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.raddr and c.raddr.port == server_port for c in connections):
            pids.append(child.pid)
    return pids
