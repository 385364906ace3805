"""What the agent keeps in ``STATE_DIR`` (``/var/lib/<brand>``), named in one place.

Every file and directory the agent writes under its state directory is a path of
:class:`StateDir`; no other module spells these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_STATE_DIR", "StateDir"]

DEFAULT_STATE_DIR = "/var/lib/{brand}"  # STATE_DIR when update.conf does not set it

STATUS_FILE = "status.json"  # AgentStatus (0644: `status` reads it without root)
LOCK_FILE = "agent.lock"  # flock'ed by the running (or blocked) agent; holds its pid
SOCKET_FILE = "agent.sock"  # the control socket (0600)
BOOT_ASSESSMENT_FILE = "boot-assessment.json"  # the boot assessor's verdicts
APPLY_PROGRESS_FILE = "apply-progress.json"  # checkpoint of a payload apply in progress
FULL_RESPONSE_FILE = "full-response"  # update_engine's prefs/full-response
DOWNLOAD_DIR = "download"  # <sha256>.partial while downloading, <sha256>.payload when done
TRUST_DIR = "trust"  # the TUF metadata cache
SLOT_STATUS_FILE = "slots.json"  # slot status of the machine's disk (BlockDeviceSlotBackend)
NODE_STATE_FILE = "node.json"  # the simulated node's power state (FileSlotBackend)


@dataclass(frozen=True, slots=True)
class StateDir:
    """The paths under one state directory."""

    path: Path

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def socket(self) -> Path:
        return self.path / SOCKET_FILE

    @property
    def boot_assessment(self) -> Path:
        return self.path / BOOT_ASSESSMENT_FILE

    @property
    def apply_progress(self) -> Path:
        return self.path / APPLY_PROGRESS_FILE

    @property
    def full_response(self) -> Path:
        """Where the last Omaha reply with an update is kept (update_engine's
        prefs/full-response, read by postinstall hooks for extra packages)."""
        return self.path / FULL_RESPONSE_FILE

    @property
    def download(self) -> Path:
        return self.path / DOWNLOAD_DIR

    @property
    def trust(self) -> Path:
        """The TUF metadata cache: what this node last trusted, kept across reboots so a
        mirror cannot roll it back."""
        return self.path / TRUST_DIR

    @property
    def slot_status(self) -> Path:
        return self.path / SLOT_STATUS_FILE

    @property
    def node_state(self) -> Path:
        return self.path / NODE_STATE_FILE
