"""One simulated node for the end-to-end test: a disk image file, its own root, the real agent.

    python tests/agent/node_process.py ROOT IMAGE

Each pass of the loop is one boot: ``FileSlotBackend.power_on()`` plays firmware and GRUB
(gptprio picks the slot and uses a try), then the agent runs until it reboots the node.
Starting the process again after a SIGKILL is a power loss. The machine's health is the
only thing simulated: versions listed in ``WELLCAR_TEST_BROKEN_VERSIONS`` fail their
health check command.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from wellcar.agent.assemble import build_parts
from wellcar.agent.config import load_config
from wellcar.agent.daemon import UpdateAgent
from wellcar.agent.health import CommandResult
from wellcar.agent.node_identity import load_identity
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.payload.targets import RegionWriter


class VersionHealth:
    """Units are all active; the health command fails on a broken version."""

    def __init__(self, backend: FileSlotBackend, broken: set[str]) -> None:
        self.backend = backend
        self.broken = broken

    def unit_state(self, unit: str) -> str:
        return "active"

    def run(self, command: Sequence[str], timeout: float) -> CommandResult:
        booted = self.backend.booted_slot()
        version = self.backend.slot_table().slot(booted).record.version or ""
        if version in self.broken:
            return CommandResult(exit_code=1, output=f"{version} is broken")
        return CommandResult(exit_code=0)


def slow_disk(seconds: float) -> None:
    """A slow disk: every write into a slot takes ``seconds`` (so a test can cut power
    in the middle of an install)."""
    original = RegionWriter.write_at

    def write_at(self: RegionWriter, offset: int, data: bytes | memoryview) -> None:
        time.sleep(seconds)
        original(self, offset, data)

    RegionWriter.write_at = write_at  # type: ignore[method-assign]


def main() -> int:
    root, image = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(
        filename=root / "agent.log",
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if slow := os.environ.get("WELLCAR_TEST_SLOW_DISK"):
        slow_disk(float(slow))
    broken = set(filter(None, os.environ.get("WELLCAR_TEST_BROKEN_VERSIONS", "").split(",")))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = load_config(root)
    backend = FileSlotBackend(image, config.state_dir)
    while not stop.is_set():
        backend.power_on()
        identity = load_identity(config, root)
        parts = build_parts(
            config, identity, backend, runner=VersionHealth(backend, broken), sessions=list
        )
        agent = UpdateAgent(parts)
        agent.run(stop)
        parts.http.close()
        if not agent.rebooting:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
