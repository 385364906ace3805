"""Saved progress of an apply, so an interrupted install continues where it stopped.

The record is written only after the target has been synced, so every operation it
claims as done is on disk. It names the payload (SHA-256 of its header, manifest and
leading signature blob) and the target, and is ignored if either differs. The final
whole-partition hash check still runs after a resumed apply, so a record that lies
costs a failed verification, never a bad slot.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from wellcar.atomic_file import write_file_atomically
from wellcar.payload.errors import ResumeStateError


@dataclass(frozen=True, slots=True)
class ApplyCheckpoint:
    payload_id: str
    target: str
    next_operation: int  # index into the payload's operations in payload order
    next_blob_offset: int  # offset within the blob area where the next blob starts


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> ApplyCheckpoint | None:
        try:
            raw = json.loads(self.path.read_text())
            return ApplyCheckpoint(
                payload_id=str(raw["payload_id"]),
                target=str(raw["target"]),
                next_operation=int(raw["next_operation"]),
                next_blob_offset=int(raw["next_blob_offset"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A torn or foreign file: restart cleanly rather than trust it.
            return None

    def save(self, checkpoint: ApplyCheckpoint) -> None:
        try:
            write_file_atomically(self.path, json.dumps(asdict(checkpoint)))
        except OSError as exc:
            raise ResumeStateError(
                f"cannot save apply progress to {self.path}: {exc.strerror}"
            ) from None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
