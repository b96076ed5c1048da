#!/usr/bin/env bash
# The spec's start script. Stops what room-recovery itself started before (nothing else),
# then starts the whole voice system in the background: LiveKit server, startup cleanup of
# stale rooms, the agent worker, the page and the watchdog. Options go to `room-recovery up`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/room-recovery ]; then
  echo "start_voice_system.sh: not set up yet; run ./setup.sh --install-only first" >&2
  exit 1
fi
.venv/bin/room-recovery down
exec .venv/bin/room-recovery up --detach "$@"
