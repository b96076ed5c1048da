"""A participant in its own process, to be SIGKILLed the way a closed browser disappears.

    python -m tests.support.participant_process URL TOKEN [--publish]

Connects, optionally publishes a microphone-like audio track, prints READY, then waits
until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from livekit import rtc


async def main(url: str, token: str, publish: bool) -> None:
    room = rtc.Room()
    await room.connect(url, token)
    if publish:
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--publish", action="store_true")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.url, args.token, args.publish))
    except KeyboardInterrupt:
        sys.exit(0)
