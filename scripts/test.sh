#!/usr/bin/env bash
# The test suite on a fresh machine. `.ci/run` calls exactly this.
#
#   bash scripts/test.sh          every test: unit, and integration against a real Redis-compatible
#                                 broker, Celery workers, SLURM, PostgreSQL and Chromium
#   bash scripts/test.sh --fast   the unit tier only: no apt, no SLURM set-up (under 2 minutes)
#
# Further arguments go to pytest (`-k`, `-m "not slow"`, `-n 0` for one test after another, ...).
# The full run is parallel (pytest-xdist, $JUQUEUE_TEST_WORKERS processes, default 4: most
# integration tests wait on timers and processes, not on the CPU), the longest tests first
# (tests/conftest.py), while Chromium and SLURM are installed and started in the background;
# the tests that need them wait for that set-up (tests/machine_setup.py). Every run ends with
# the 25 slowest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
FAST=0
if [ "${1:-}" = "--fast" ]; then FAST=1; shift; fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider -rs --durations=25)

if [ "$FAST" = 1 ]; then
  exec "${PYTEST[@]}" tests/unit -n 2 --dist worksteal "$@"
fi

# Machine set-up in the background (apt holds one lock: Chromium, then SLURM, one after the other).
SETUP_DIR="$(mktemp -d)"
export JUQUEUE_TEST_SETUP_DONE="$SETUP_DIR/done"
(
  rc=0
  if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
      || { echo "test.sh: could not install chromium; the browser test will fail in CI" >&2; rc=1; }
  fi
  if [ "$(id -u)" = 0 ] && [ -f scripts/setup-test-slurm.sh ]; then
    bash scripts/setup-test-slurm.sh \
      || { echo "test.sh: could not start a single-node SLURM; SLURM tests will fail in CI" >&2; rc=1; }
  fi
  echo "$rc" >"$JUQUEUE_TEST_SETUP_DONE.tmp" && mv "$JUQUEUE_TEST_SETUP_DONE.tmp" "$JUQUEUE_TEST_SETUP_DONE"
) >"$SETUP_DIR/log" 2>&1 &
SETUP_PID=$!
finish() {
  wait "$SETUP_PID" 2>/dev/null || true
  if [ -s "$SETUP_DIR/log" ]; then echo "----- machine set-up -----"; cat "$SETUP_DIR/log"; fi
  rm -rf "$SETUP_DIR"
}
trap finish EXIT
"${PYTEST[@]}" tests -n "${JUQUEUE_TEST_WORKERS:-4}" --dist worksteal "$@"
