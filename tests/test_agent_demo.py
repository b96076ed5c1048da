"""The offline demo agent: it speaks, it answers, and its health says when it is registered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit import rtc

from room_recovery.core.errors import ConfigurationError
from room_recovery.core.settings import load_settings
from room_recovery.demo import voice as demo_voice
from room_recovery.demo.command import options_from_args, parse_args
from room_recovery.system.livekit_server import free_port
from tests.support.livekit import ServerInfo
from tests.support.worker import Person, WorkerProcess, person

AUDIBLE = 500.0  # RMS, about -36 dBFS


@pytest.fixture(scope="module")
async def worker(
    livekit_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    name = f"demo-agent-{uuid.uuid4().hex[:8]}"
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    process = WorkerProcess.demo(livekit_server, name, log, "--grace", "1")
    try:
        await process.registered()
        yield process
    finally:
        process.close()


async def agent_audio(user: Person, timeout: float = 10.0) -> rtc.AudioStream:
    """A stream of the agent's voice, as the person hears it."""
    agent = await user.wait_for_agent()
    subscribed: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    def on_subscribed(track: rtc.Track, _: object, who: rtc.RemoteParticipant) -> None:
        if who.identity == agent.identity and not subscribed.done():
            subscribed.set_result(track)

    user.room.on("track_subscribed", on_subscribed)
    for publication in agent.track_publications.values():
        if publication.track is not None and not subscribed.done():
            subscribed.set_result(publication.track)
    track = await asyncio.wait_for(subscribed, timeout)
    return rtc.AudioStream.from_track(track=track, sample_rate=48000, num_channels=1)


async def until_sound(stream: rtc.AudioStream, timeout: float) -> np.ndarray:
    """Frames until the first audible one, which is returned; AssertionError on timeout."""

    async def listen() -> np.ndarray:
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            if demo_voice.rms(samples) >= AUDIBLE:
                return samples
        raise AssertionError("the agent's track ended")

    try:
        return await asyncio.wait_for(listen(), timeout)
    except TimeoutError:
        raise AssertionError(f"heard nothing from the agent within {timeout}s") from None


async def next_samples(stream: rtc.AudioStream, seconds: float) -> np.ndarray:
    """The next `seconds` of the stream's samples, as they come."""
    chunks: list[np.ndarray] = []
    wanted = int(seconds * 48000)
    async for event in stream:
        chunks.append(np.frombuffer(event.frame.data, dtype=np.int16))
        if sum(chunk.size for chunk in chunks) >= wanted:
            break
    return np.concatenate(chunks).astype(np.float64)


async def until_quiet(stream: rtc.AudioStream, seconds: float, timeout: float) -> None:
    """Frames until `seconds` of silence in a row."""

    async def listen() -> None:
        quiet = 0.0
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            quiet = quiet + samples.size / 48000 if demo_voice.rms(samples) < AUDIBLE else 0.0
            if quiet >= seconds:
                return

    await asyncio.wait_for(listen(), timeout)


async def test_the_demo_agent_greets_the_person_out_loud(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        stream = await agent_audio(user)
        try:
            await until_sound(stream, timeout=10)
        finally:
            await stream.aclose()


async def test_the_demo_agent_says_back_what_it_hears(
    livekit_server: ServerInfo, worker: WorkerProcess, room_name: str
) -> None:
    async with person(livekit_server, room_name, "user1", worker.agent_name) as user:
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await user.room.local_participant.publish_track(track, options)
        stream = await agent_audio(user)
        try:
            await until_sound(stream, timeout=10)  # the greeting
            # its end: a second of quiet (a pause between its sentences, or a busy machine's
            # gap in its audio, once passed for the end at 0.5 s and the echo heard its rest)
            await until_quiet(stream, seconds=1.0, timeout=15)
            # the person says "aaa" (a 440 Hz tone), then is quiet
            said = demo_voice.render_tone((440.0,), seconds=0.6, level=0.5)
            quiet = np.zeros(48000, dtype=np.int16)
            for chunk in demo_voice.frames(np.concatenate([said, quiet])):
                await source.capture_frame(rtc.AudioFrame(chunk, 48000, 1, len(chunk) // 2))
            onset = await until_sound(stream, timeout=10)
            # one 10 ms frame holds 4 cycles: too few to tell a pitch; hear 0.3 s of it
            heard = np.concatenate([onset, await next_samples(stream, seconds=0.3)])
            level = (heard - heard.mean()) * np.hanning(heard.size)
            spectrum = np.abs(np.fft.rfft(level, n=48000))
            assert abs(int(np.argmax(spectrum)) - 440) <= 20  # its answer is the person's tone
        finally:
            await stream.aclose()
            await source.aclose()


async def test_the_health_endpoint_says_registered_once_registered(
    worker: WorkerProcess,
) -> None:
    assert worker.health_url is not None
    async with aiohttp.ClientSession() as session, session.get(worker.health_url) as response:
        assert response.status == 200
        body = await response.json()
    assert body["registered"] is True
    assert body["agent_name"] == worker.agent_name
    assert body["worker_id"]


async def test_the_health_endpoint_says_not_registered_when_no_server_answers(
    livekit_server: ServerInfo, tmp_path: Path
) -> None:
    nowhere = ServerInfo(f"ws://127.0.0.1:{free_port()}", "key", "x" * 40)
    port = free_port()
    lonely = WorkerProcess(
        nowhere,
        ["-m", "room_recovery.demo", "--agent-name", "lonely", "--health-port", str(port)],
        tmp_path / "lonely.log",
    )
    try:
        await lonely.wait_for_log("Health endpoint at", timeout=20)
        url = f"http://127.0.0.1:{port}/health"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 503
            assert (await response.json())["registered"] is False
    finally:
        lonely.close()


def test_espeak_speech_is_rendered_offline() -> None:
    speech = demo_voice.render_speech("Hello")
    assert speech is not None, "espeak-ng is installed by setup.sh"
    assert speech.size > 0.3 * demo_voice.SAMPLE_RATE
    assert demo_voice.rms(speech) > AUDIBLE


def test_a_clip_is_cut_into_whole_frames_of_the_length_asked_the_last_one_padded() -> None:
    clip = np.arange(1, 7201, dtype=np.int16)  # 150 ms at 48 kHz
    cut = demo_voice.frames(clip, 100)
    assert [len(chunk) // 2 for chunk in cut] == [4800, 4800]
    played = np.frombuffer(b"".join(cut), dtype=np.int16)
    assert np.array_equal(played[:7200], clip)
    assert not played[7200:].any()
    assert len(demo_voice.frames(clip)) == 15  # 10 ms by default


def test_the_utterance_detector_returns_speech_after_a_pause() -> None:
    detector = demo_voice.UtteranceDetector(silence_s=0.3)
    tone = demo_voice.render_tone((300.0,), seconds=0.5, level=0.5)
    silence = np.zeros(demo_voice.SAMPLE_RATE, dtype=np.int16)
    found = []
    for chunk in demo_voice.frames(np.concatenate([silence, tone, silence])):
        utterance = detector.push(np.frombuffer(chunk, dtype=np.int16))
        if utterance is not None:
            found.append(utterance)
    assert len(found) == 1
    assert 0.5 <= found[0].size / demo_voice.SAMPLE_RATE <= 1.0


def test_the_demo_agents_job_counts_default_to_12_jobs_and_3_warm_processes() -> None:
    options = options_from_args(parse_args([]))
    assert (options.max_jobs, options.num_idle_processes) == (12, 3)


def test_the_warm_processes_come_from_the_flag_else_the_environment_else_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_env = load_settings(livekit_url="ws://x", room_recovery_agent_idle_processes=1)
    assert options_from_args(parse_args([]), from_env).num_idle_processes == 1
    flag = parse_args(["--idle-processes", "2"])
    assert options_from_args(flag, from_env).num_idle_processes == 2
    monkeypatch.delenv("ROOM_RECOVERY_AGENT_IDLE_PROCESSES", raising=False)  # conftest's
    unset = load_settings(livekit_url="ws://x")
    assert options_from_args(parse_args([]), unset).num_idle_processes == 3
    empty = load_settings(livekit_url="ws://x", room_recovery_agent_idle_processes="")
    assert options_from_args(parse_args([]), empty).num_idle_processes == 3  # as documented
    with pytest.raises(ConfigurationError, match="ROOM_RECOVERY_AGENT_IDLE_PROCESSES"):
        load_settings(livekit_url="ws://x", room_recovery_agent_idle_processes=-1)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--max-jobs", "0", "'0' is not a whole number >= 1"),
        ("--idle-processes", "-1", "'-1' is not a whole number >= 0"),
        ("--idle-processes", "x", "'x' is not a whole number >= 0"),
    ],
)
def test_a_bad_job_count_is_refused_in_one_line(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args([flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err
