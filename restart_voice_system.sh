#!/usr/bin/env bash
# The spec's "nuclear option": stop everything room-recovery started, wipe its generated
# state (config, status; logs are kept), clean up, and start everything afresh in the
# background. Never touches processes it did not start.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/room-recovery ]; then
  echo "restart_voice_system.sh: not set up yet; run ./setup.sh --install-only first" >&2
  exit 1
fi
exec .venv/bin/room-recovery restart "$@"
