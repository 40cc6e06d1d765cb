#!/usr/bin/env bash
# Lint, format check and the whole test suite (`make test` runs setup first).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k parity -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
echo "[test] ruff format --check"
ruff format --check .
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
# `pytest`, not `python -m pytest`: the latter puts the source tree first on sys.path,
# where `sam2_ros` lacks the generated `msg`/`srv` modules of the install space.
pytest "$@"
