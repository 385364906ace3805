#!/usr/bin/env bash
# The whole test suite: set-up, ruff, mypy --strict on src/, pytest (PostgreSQL included).
# Extra arguments go to pytest, e.g. scripts/test.sh -k omaha
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
echo "== mypy --strict src"
.venv/bin/mypy --strict src
echo "== pytest"
.venv/bin/pytest -q "$@"
