#!/usr/bin/env bash
# Run every check: setup (idempotent), lint, format, types, docs, the page's script, the alert
# rules (promtool), then the whole test suite against a real livekit-server, real agent
# workers and a real browser, spread over ROOM_RECOVERY_TEST_WORKERS pytest workers (5 on
# 2 cores: tests wait on processes, so 5 keep both cores ~95 % busy; 4 left a third idle).
#   ./test.sh                  everything
#   ./test.sh -m unit          the fast edit loop: decisions over plain data, no process
#   ./test.sh tests/test_cli.py -k json    arguments go to pytest (-n 0: no workers)
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --install-only
echo
echo "==> ruff (lint and format)"
.venv/bin/ruff check src tests bench scripts test_room_recovery.py
.venv/bin/ruff format --check src tests bench scripts test_room_recovery.py
echo "==> mypy"
.venv/bin/mypy
echo "==> docs (mkdocs build --strict)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
echo "==> page script (tsc, eslint, node --test)"
node_modules/.bin/tsc -p tsconfig.json
node_modules/.bin/eslint src/room_recovery/web/static tests/js eslint.config.js
node --test --test-reporter=dot tests/js/
echo "==> alert rules (promtool check rules, promtool test rules)"
promtool check rules alerts/room-recovery.rules.yml >/dev/null
promtool test rules alerts/room-recovery.test.yml
echo "==> pytest"
exec .venv/bin/pytest -n "${ROOM_RECOVERY_TEST_WORKERS:-5}" --dist loadfile --no-loadscope-reorder "$@"
