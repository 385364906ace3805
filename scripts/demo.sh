#!/usr/bin/env bash
# The main job on embedded defaults: the update server on SQLite with a demo fleet
# walking through a rollout. Open http://127.0.0.1:8000/docs; Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/wellcar demo "$@"
