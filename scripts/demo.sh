#!/usr/bin/env bash
# The main job on embedded defaults: build the OS (N), release and publish it to
# `wellcar serve` on SQLite, boot a node from it in QEMU, build N+1 and watch the node
# update itself (docs/demo.md). Needs root. Ctrl-C stops the node and the server.
# `scripts/demo.sh --simulated` runs the lighter server-only demo with 40 simulated nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/wellcar demo "$@"
