"""The demo agent's voice, offline: speech from espeak-ng (or a tone), and an echo.

Pure audio, no LiveKit: 16-bit mono PCM at `SAMPLE_RATE`, as numpy arrays.

* `render_speech(text)`: espeak-ng's voice, resampled; None when espeak-ng is missing or fails.
* `render_tone()`: two short beeps, the fallback greeting.
* `UtteranceDetector`: feed it frames of what the person says; it returns each utterance
  once the person has been quiet for a moment, for the agent to play back.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_MS = 10
ESPEAK_TIMEOUT = 10.0

Pcm = npt.NDArray[np.int16]


def render_speech(text: str, voice: str = "en") -> Pcm | None:
    """`text` spoken by espeak-ng at SAMPLE_RATE, or None when espeak-ng is unavailable."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        logger.info("espeak-ng is not installed: the demo agent greets with a tone")
        return None
    try:
        wav = subprocess.run(
            [binary, "-v", voice, "--stdout", text],
            capture_output=True,
            check=True,
            timeout=ESPEAK_TIMEOUT,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("espeak-ng failed (%s): the demo agent greets with a tone", exc)
        return None
    parsed = _parse_wav(wav)
    if parsed is None:
        logger.warning("espeak-ng wrote no usable WAV: the demo agent greets with a tone")
        return None
    samples, rate = parsed
    return resample(samples, rate)


def _parse_wav(wav: bytes) -> tuple[Pcm, int] | None:
    """Samples and rate of a mono 16-bit WAV. espeak-ng's streamed header has bogus sizes,
    so the data chunk is taken to the end of the bytes."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        return None
    fmt = wav.find(b"fmt ")
    data = wav.find(b"data")
    if fmt < 0 or data < 0:
        return None
    channels = int.from_bytes(wav[fmt + 10 : fmt + 12], "little")
    rate = int.from_bytes(wav[fmt + 12 : fmt + 16], "little")
    bits = int.from_bytes(wav[fmt + 22 : fmt + 24], "little")
    if channels != 1 or bits != 16 or rate <= 0:
        return None
    payload = wav[data + 8 :]
    payload = payload[: len(payload) - len(payload) % 2]
    samples = np.frombuffer(payload, dtype="<i2").astype(np.int16)
    return (samples, rate) if samples.size else None


def resample(samples: Pcm, rate: int) -> Pcm:
    """Linear resampling to SAMPLE_RATE: plenty for a demo voice."""
    if rate == SAMPLE_RATE:
        return samples
    duration = samples.size / rate
    target = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    source = np.arange(samples.size) / rate
    return np.interp(target, source, samples.astype(np.float64)).astype(np.int16)


def render_tone(
    frequencies: tuple[float, ...] = (660.0, 880.0), seconds: float = 0.25, level: float = 0.3
) -> Pcm:
    """Beeps, one per frequency, with short fades so they do not click."""
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(times, seconds - times) / 0.01)
    gap = np.zeros(SAMPLE_RATE // 20)
    parts = []
    for frequency in frequencies:
        parts += [np.sin(2 * np.pi * frequency * times) * fade * level * 32767, gap]
    return np.concatenate(parts).astype(np.int16)


def frames(samples: Pcm, frame_ms: int = FRAME_MS) -> list[bytes]:
    """The samples cut into `frame_ms` frames, the last one padded with silence."""
    size = samples_per_frame(frame_ms)
    padding = -samples.size % size
    padded = np.concatenate([samples, np.zeros(padding, dtype=np.int16)])
    return [chunk.tobytes() for chunk in padded.reshape(-1, size)]


def samples_per_frame(frame_ms: int) -> int:
    """Samples in one frame of `frame_ms` at SAMPLE_RATE."""
    return SAMPLE_RATE * frame_ms // 1000


def rms(samples: Pcm) -> float:
    """Root mean square level, in 16-bit sample units (0 for silence, ~23000 full-scale sine)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@dataclass
class UtteranceDetector:
    """Cuts a stream of frames into utterances by energy: speech, then `silence_s` of quiet.

    `threshold` is an RMS level (about -36 dBFS by default); utterances shorter than
    `min_speech_s` are dropped (clicks), longer than `max_s` are cut.
    """

    threshold: float = 500.0
    silence_s: float = 0.6
    min_speech_s: float = 0.15
    max_s: float = 8.0
    _chunks: list[Pcm] = field(default_factory=list)
    _speech_s: float = 0.0
    _quiet_s: float = 0.0

    def push(self, samples: Pcm, rate: int = SAMPLE_RATE) -> Pcm | None:
        """Feed one frame; returns a finished utterance, or None."""
        duration = samples.size / rate
        voiced = rms(samples) >= self.threshold
        if not self._chunks and not voiced:
            return None
        self._chunks.append(samples)
        if voiced:
            self._speech_s += duration
            self._quiet_s = 0.0
        else:
            self._quiet_s += duration
        total = sum(c.size for c in self._chunks) / rate
        if self._quiet_s >= self.silence_s or total >= self.max_s:
            return self._finish()
        return None

    def _finish(self) -> Pcm | None:
        chunks, speech = self._chunks, self._speech_s
        self._chunks, self._speech_s, self._quiet_s = [], 0.0, 0.0
        if speech < self.min_speech_s:
            return None
        return np.concatenate(chunks)
