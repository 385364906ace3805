"""Installing a payload into the inactive slot of a disk, with the slot bookkeeping.

The order is what keeps a node bootable: the target slot is made unbootable *before* a
byte is written (``begin_write``), it is recorded as verified only after
:func:`apply_payload` returned (every hash and signature checked), and it is made
bootable — with a limited number of tries — only on request and only after that. A
failure at any step leaves the target unbootable and the running slot untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wellcar.disk import Slot, SlotInfo, SlotTable
from wellcar.payload.apply import ApplyResult, ApplySources, ApplyTargets, ProgressCallback
from wellcar.payload.apply import apply_payload as _apply_payload
from wellcar.payload.errors import TargetError
from wellcar.payload.reader import Opener
from wellcar.payload.resume import CheckpointFile
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import TargetRegion


@dataclass(frozen=True)
class SlotInstallResult:
    slot: Slot
    apply: ApplyResult
    info: SlotInfo


def slot_region(table: SlotTable, image: Path, slot: Slot) -> TargetRegion:
    partition = table.partition(slot)
    return TargetRegion(image, partition.byte_offset, partition.byte_size)


def install_into_slot(
    opener: Opener,
    image: Path,
    table: SlotTable,
    trusted_keys: TrustedKeys | None,
    version: str,
    *,
    slot: Slot | None = None,
    make_bootable: bool = False,
    tries: int = 1,
    checkpoint: CheckpointFile | None = None,
    on_progress: ProgressCallback | None = None,
    kernel: Path | None = None,
    initrd: Path | None = None,
) -> SlotInstallResult:
    """Write the payload into ``slot`` (default: the update target) of the disk ``image``."""
    target = slot or table.update_target
    if target is None:
        raise TargetError(f"{image}: no slot can be updated (no running slot is known)")
    active = table.active
    table.begin_write(target)  # refuses the running slot; unbootable from here on
    sources = ApplySources(slot_region(table, image, active) if active is not None else None)
    result = _apply_payload(
        opener,
        ApplyTargets(slot_region(table, image, target), kernel, initrd),
        trusted_keys,
        sources,
        checkpoint,
        on_progress,
    )
    table.mark_written(target)
    info = table.mark_verified(target, version, result.new_size, result.new_sha256.hex())
    if make_bootable:
        info = table.make_bootable(target, tries)
    return SlotInstallResult(target, result, info)
