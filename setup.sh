#!/usr/bin/env bash
# Set up everything room-recovery needs on this machine, then run the demo.
#
#   ./setup.sh                 install (idempotent, fast when done before), then `room-recovery up`
#   ./setup.sh --install-only  install only (used by ./test.sh and CI)
#
# Installs: Debian packages (chromium, redis-server, prometheus, espeak-ng, sox), livekit-server built with Go
# into the project's cache (skipped when that version is already there), the Python virtual
# environment .venv with the project and its test tools, and the page's npm packages.
set -euo pipefail
cd "$(dirname "$0")"

LIVEKIT_VERSION="1.13.5"
CACHE="${ROOM_RECOVERY_CACHE:-$HOME/.cache/room-recovery}"
DEBIAN_PACKAGES=(chromium redis-server prometheus espeak-ng sox libportaudio2 curl systemd)
RUN_DEMO=1

for arg in "$@"; do
  case "$arg" in
    --install-only) RUN_DEMO=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try ./setup.sh --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "installing Debian packages needs root: run as root, or install: ${DEBIAN_PACKAGES[*]}"
  fi
}

step "Debian packages: ${DEBIAN_PACKAGES[*]}"
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  echo "already installed"
fi

step "livekit-server ${LIVEKIT_VERSION} (in ${CACHE}/bin)"
server="${CACHE}/bin/livekit-server"
if [ -x "$server" ] && "$server" --version 2>/dev/null | grep -q "version ${LIVEKIT_VERSION}\$"; then
  echo "already built: $("$server" --version)"
else
  command -v go >/dev/null || fail "Go is needed to build livekit-server (Go 1.26 or newer): install it, then run ./setup.sh again"
  mkdir -p "${CACHE}/bin" "${CACHE}/go"
  echo "building with Go (about 2 minutes the first time)..."
  GOPATH="${CACHE}/go" GOBIN="${CACHE}/go/bin" GOTOOLCHAIN=local GOFLAGS=-modcacherw \
    go install "github.com/livekit/livekit-server/cmd/server@v${LIVEKIT_VERSION}"
  install -m 0755 "${CACHE}/go/bin/server" "${server}.tmp"
  mv "${server}.tmp" "$server"
  echo "built: $("$server" --version)"
fi

step "Python environment (.venv)"
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
[ -n "$python" ] || fail "Python 3.11 or newer is needed: install it (apt-get install python3), then run ./setup.sh again"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.room-recovery-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "already up to date"
else
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[agent,demo,test]'
  echo "$want" > "$stamp"
  echo "installed"
fi

if [ -f package.json ]; then
  step "npm packages (node_modules)"
  command -v npm >/dev/null || fail "npm is needed for the page's livekit-client: apt-get install npm, then run ./setup.sh again"
  stamp="node_modules/.room-recovery-installed"
  want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "already up to date"
  else
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
fi

step "ready"
if [ "$RUN_DEMO" -eq 1 ]; then
  exec .venv/bin/room-recovery up
fi
echo "Everything is installed. Run the demo with: .venv/bin/room-recovery up"
