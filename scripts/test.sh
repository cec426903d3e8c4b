#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv with the project and its test extras,
# a single-node SLURM (when run as root), then pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
# The dashboard's browser test drives Debian's chromium (Playwright's own download is not used).
if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || echo "test.sh: could not install chromium; the browser test will fail in CI" >&2
fi
if [ "$(id -u)" = 0 ] && [ -f scripts/setup-test-slurm.sh ]; then
  if ! bash scripts/setup-test-slurm.sh; then
    echo "test.sh: could not start a single-node SLURM; SLURM tests will fail in CI" >&2
  fi
fi
exec .venv/bin/python -m pytest tests -p no:cacheprovider -rs "$@"
