"""Helpers that put real participants into rooms of the test server."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from livekit import api, rtc

from room_recovery.system.livekit_server import stop_process

ROOT = Path(__file__).resolve().parents[2]
LEAVE_TIMEOUT = 10.0  # seconds a test participant's disconnect may take

logger = logging.getLogger(__name__)


async def leave(room: rtc.Room) -> None:
    """Disconnect a test participant, bounded: leaving is never what a test is about.

    Measured in a full run: the server logged the participant's leave, yet the rtc SDK's
    `disconnect()` never returned and the test hung until pytest's timeout.
    """
    try:
        await asyncio.wait_for(room.disconnect(), LEAVE_TIMEOUT)
    except TimeoutError:
        logger.warning("rtc disconnect of %s did not return within %gs", room.name, LEAVE_TIMEOUT)


@dataclass(frozen=True)
class ServerInfo:
    """How tests reach the session's livekit-server."""

    url: str
    api_key: str
    api_secret: str

    def token(self, room: str, identity: str, *, kind: str = "", metadata: str = "") -> str:
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room))
        )
        if kind:
            token = token.with_kind(kind)  # type: ignore[arg-type]
        if metadata:
            token = token.with_metadata(metadata)
        return token.to_jwt()

    def env(self) -> dict[str, str]:
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }


@asynccontextmanager
async def participant(
    server: ServerInfo, room: str, identity: str, *, kind: str = "", publish: bool = False
) -> AsyncIterator[rtc.Room]:
    """A live participant in this process, disconnected on exit."""
    lk_room = rtc.Room()
    await lk_room.connect(server.url, server.token(room, identity, kind=kind))
    try:
        if publish:
            source = rtc.AudioSource(48000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await lk_room.local_participant.publish_track(track, options)
        yield lk_room
    finally:
        await leave(lk_room)


class ParticipantProcess:
    """A participant in a child process: `kill()` leaves a ghost behind, like a closed tab."""

    def __init__(
        self, server: ServerInfo, room: str, identity: str, *, kind: str = "", publish: bool = False
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "tests.support.participant_process",
            server.url,
            server.token(room, identity, kind=kind),
        ]
        if publish:
            args.append("--publish")
        self.server, self.room, self.identity = server, room, identity
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )

    async def ready(self, timeout: float = 20.0) -> None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        if line.strip() != b"READY":
            raise RuntimeError(f"participant process failed to connect: {line!r}")
        # Joined is not enough: killed before its media connection is up, a participant is
        # dropped at once instead of left behind as a ghost (seen on a loaded machine).
        await eventually(self._active, timeout=timeout, what=f"{self.identity} to be ACTIVE")

    async def _active(self) -> bool:
        async with api.LiveKitAPI(
            self.server.url, self.server.api_key, self.server.api_secret
        ) as lk:
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=self.room))
        return any(
            p.identity == self.identity and p.state == api.ParticipantInfo.State.ACTIVE
            for p in listed.participants
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)

    def close(self) -> None:
        stop_process(self.process, 2.0, "participant")
        if self.process.stdout:
            self.process.stdout.close()


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Wait until `check()` is true, polling the server; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
