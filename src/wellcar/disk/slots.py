"""The A/B slot model: two /usr partitions, one running, one receiving the next update.

A slot's state combines two sources. The GPT attributes (gptprio) decide bootability and
are what GRUB reads; the slot-status file records what was written into the slot and how
far that got. :func:`derive_state` is the whole rule. :class:`SlotTable` runs the update
transitions and refuses the unsafe ones (writing the running slot, booting unverified
content, leaving nothing bootable).

The disk is reached through :class:`PartitionAttributeStore`, so a block-device backend
can replace the image-file one (:class:`ImageFileGpt`) without touching the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from .boot_entries import slot_from_boot_hint
from .errors import (
    InvalidAttributeError,
    NoBootablePartitionError,
    PartitionNotFoundError,
    SlotStateError,
    SlotStatusError,
)
from .gpt import AttributeUpdate, Partition
from .gpt_image import GptDisk, read_gpt, write_partition_attributes
from .gptprio import FIELD_MAX, GptPrio, gptprio_next, prioritize
from .layout import Slot
from .partition_types import FLATCAR_USR
from .slot_status import (
    ContentPhase,
    SlotRecord,
    SlotStatus,
    default_status_path,
    load_slot_status,
    save_slot_status,
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class SlotState(StrEnum):
    EMPTY = "empty"  # nothing usable in it (never written, or being rewritten)
    WRITTEN = "written"  # an update was written, not yet verified
    VERIFIED = "verified"  # the update's digest matched; may be made bootable
    BOOTABLE = "bootable"  # gptprio may boot it (tries left), or it is booted on trial
    GOOD = "good"  # booted and found healthy (successful flag)
    BAD = "bad"  # marked bad, or used up its tries without being found good


def derive_state(prio: GptPrio, record: SlotRecord, *, active: bool) -> SlotState:
    """The state of a slot from its gptprio bits, its record and whether it is running.

    The GPT wins whenever the slot can boot, because that is what GRUB will do. A slot
    with a priority but neither tries nor the successful flag has used up its tries: if
    it is the running slot it is on trial (booted, waiting for mark_good), otherwise its
    boot failed and gptprio passed it over.
    """
    if prio.priority > 0:
        if prio.successful:
            return SlotState.GOOD
        if prio.tries > 0 or active:
            return SlotState.BOOTABLE
        return SlotState.BAD
    return {
        ContentPhase.EMPTY: SlotState.EMPTY,
        ContentPhase.WRITING: SlotState.EMPTY,
        ContentPhase.WRITTEN: SlotState.WRITTEN,
        ContentPhase.VERIFIED: SlotState.VERIFIED,
        ContentPhase.BAD: SlotState.BAD,
    }[record.phase]


class PartitionAttributeStore(Protocol):
    """Read the GPT, and write the attribute field of partitions: all a SlotTable needs."""

    @property
    def location(self) -> Path: ...

    def read_gpt(self) -> GptDisk: ...

    def write_attributes(self, updates: Sequence[AttributeUpdate]) -> GptDisk:
        """Write all updates in one go to both GPT copies (backup first)."""
        ...


class ImageFileGpt:
    """The GPT of a disk image file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def location(self) -> Path:
        return self._path

    def read_gpt(self) -> GptDisk:
        return read_gpt(self._path)

    def write_attributes(self, updates: Sequence[AttributeUpdate]) -> GptDisk:
        return write_partition_attributes(self._path, updates)


@dataclass(frozen=True)
class SlotInfo:
    """Everything known about one slot at one moment."""

    slot: Slot
    partition: Partition
    prio: GptPrio
    record: SlotRecord
    state: SlotState
    active: bool

    @property
    def tries_left(self) -> int:
        return self.prio.tries


@dataclass(frozen=True)
class BootResult:
    """What a simulated boot (gptprio.next) did."""

    slot: Slot
    before: GptPrio
    after: GptPrio


@dataclass(frozen=True)
class _Snapshot:
    disk: GptDisk
    status: SlotStatus
    active: Slot | None


def slot_partition(disk: GptDisk, slot: Slot) -> Partition:
    """The partition of a slot, checked to be a /usr partition."""
    partition = disk.partition(slot.partition_number)
    if partition.type_guid != FLATCAR_USR.guid:
        raise PartitionNotFoundError(
            f"{disk.path}: partition {partition.number} ({partition.label}) is of type "
            f"{partition.type_name}, not flatcar-usr: this disk has no slot {slot}"
        )
    return partition


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SlotTable:
    """The two slots of one disk, and the operations an update goes through.

    Update flow: ``begin_write(B)`` → write the payload into ``partition(B)`` →
    ``mark_written(B)`` → ``mark_verified(B, version, size, sha256)`` →
    ``make_bootable(B)`` → reboot (GRUB uses a try) → on B: ``mark_good(B)``, or
    ``mark_bad(B)`` to go back to A. Every operation re-reads the GPT and the status file,
    so two SlotTables on the same disk never act on stale data.
    """

    def __init__(
        self,
        gpt: PartitionAttributeStore,
        status_path: Path,
        *,
        active: Slot | None = None,
        boot_hint: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """``active`` names the running slot; else ``boot_hint`` (kernel command line or
        /usr device) is resolved; else the slot of the last simulated boot recorded in the
        status file; else the slot gptprio would boot now."""
        self._gpt = gpt
        self.status_path = status_path
        self._clock = clock
        self._fixed_active = active
        if active is None and boot_hint is not None:
            self._fixed_active = slot_from_boot_hint(boot_hint, gpt.read_gpt().partitions)

    @classmethod
    def for_image(
        cls,
        image: Path,
        status_path: Path | None = None,
        *,
        active: Slot | None = None,
        boot_hint: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> SlotTable:
        """The slots of a disk image file; the status file defaults to ``IMAGE.slots.json``."""
        return cls(
            ImageFileGpt(image),
            status_path or default_status_path(image),
            active=active,
            boot_hint=boot_hint,
            clock=clock,
        )

    # ------------------------------------------------------------------------ reading

    def _snapshot(self) -> _Snapshot:
        disk = self._gpt.read_gpt()
        for slot in Slot:
            slot_partition(disk, slot)
        status = load_slot_status(self.status_path)
        if status.disk_guid is not None and status.disk_guid != disk.disk_guid:
            raise SlotStatusError(
                f"{self.status_path} belongs to the disk with GUID {status.disk_guid}, but "
                f"{self._gpt.location} has GUID {disk.disk_guid}: name the right status "
                "file, or delete this one if the disk was re-created"
            )
        return _Snapshot(disk, status, self._find_active(disk, status))

    def _find_active(self, disk: GptDisk, status: SlotStatus) -> Slot | None:
        if self._fixed_active is not None:
            return self._fixed_active
        if status.booted_slot is not None:
            return status.booted_slot
        # With no recorded boot, a slot marked successful is the running one: a slot that
        # was just made bootable (tries > 0, not successful) has not run yet, and taking it
        # for the running slot would make the real one look like the update target.
        good = [
            (GptPrio.from_attributes(p.attributes).priority, -p.number, slot)
            for slot in Slot
            for p in disk.partitions
            if p.number == slot.partition_number
            and GptPrio.from_attributes(p.attributes).successful
            and GptPrio.from_attributes(p.attributes).priority > 0
        ]
        if good:
            return max(good)[2]
        try:
            choice = gptprio_next(disk.partitions)
        except NoBootablePartitionError:
            return None
        return next((slot for slot in Slot if slot.partition_number == choice.number), None)

    def _info(self, snapshot: _Snapshot, slot: Slot) -> SlotInfo:
        partition = slot_partition(snapshot.disk, slot)
        prio = GptPrio.from_attributes(partition.attributes)
        record = snapshot.status.record(slot)
        active = snapshot.active is slot
        return SlotInfo(
            slot, partition, prio, record, derive_state(prio, record, active=active), active
        )

    @property
    def active(self) -> Slot | None:
        """The running slot (None only when nothing is bootable and none was named)."""
        return self._snapshot().active

    @property
    def update_target(self) -> Slot | None:
        """The slot the next update goes into: the one that is not running."""
        active = self.active
        return active.other if active else None

    def slot(self, slot: Slot) -> SlotInfo:
        return self._info(self._snapshot(), slot)

    def slots(self) -> tuple[SlotInfo, SlotInfo]:
        snapshot = self._snapshot()
        return self._info(snapshot, Slot.A), self._info(snapshot, Slot.B)

    def partition(self, slot: Slot) -> Partition:
        """The slot's partition: ``.byte_offset`` and ``.byte_size`` say where to write."""
        return slot_partition(self._gpt.read_gpt(), slot)

    # ------------------------------------------------------------------------ writing

    def _save(self, snapshot: _Snapshot, status: SlotStatus) -> None:
        save_slot_status(self.status_path, replace(status, disk_guid=snapshot.disk.disk_guid))

    def _write_prio(self, info: SlotInfo, prio: GptPrio) -> None:
        self._gpt.write_attributes(
            [AttributeUpdate(info.partition.number, prio.apply_to(info.partition.attributes))]
        )

    def _store_record(self, snapshot: _Snapshot, slot: Slot, record: SlotRecord) -> SlotInfo:
        self._save(snapshot, snapshot.status.with_record(slot, record))
        return self.slot(slot)

    def begin_write(self, slot: Slot) -> SlotInfo:
        """Make ``slot`` unbootable and record that it is being rewritten.

        The GPT is changed first: from then on a crash cannot boot half-written content.
        """
        snapshot = self._snapshot()
        if snapshot.active is slot:
            raise SlotStateError(
                f"slot {slot} ({slot.label}) is the running slot and is never written; "
                f"updates go to slot {slot.other}"
            )
        self._write_prio(self._info(snapshot, slot), GptPrio(0, 0, False))
        # A fresh record: nothing of what was in the slot before is true any more.
        record = SlotRecord(phase=ContentPhase.WRITING, write_started_at=self._clock())
        return self._store_record(snapshot, slot, record)

    def mark_written(self, slot: Slot) -> SlotInfo:
        snapshot = self._snapshot()
        phase = snapshot.status.record(slot).phase
        if phase is not ContentPhase.WRITING:
            raise SlotStateError(
                f"slot {slot} is not being written (its record says {phase}): "
                "call begin_write first"
            )
        record = replace(
            snapshot.status.record(slot), phase=ContentPhase.WRITTEN, written_at=self._clock()
        )
        return self._store_record(snapshot, slot, record)

    def mark_verified(self, slot: Slot, version: str, size: int, sha256: str) -> SlotInfo:
        """Record that the written content is ``size`` bytes of ``version`` with ``sha256``."""
        snapshot = self._snapshot()
        info = self._info(snapshot, slot)
        if info.record.phase not in (ContentPhase.WRITTEN, ContentPhase.VERIFIED):
            raise SlotStateError(
                f"slot {slot} has not been written (its record says {info.record.phase}): "
                "call begin_write and mark_written first"
            )
        if not version.strip():
            raise SlotStateError("the version of the written update must not be empty")
        if not 0 < size <= info.partition.byte_size:
            raise SlotStateError(
                f"size {size} does not fit slot {slot}'s partition of "
                f"{info.partition.byte_size} bytes"
            )
        digest = sha256.strip().lower()
        if not _SHA256_HEX.fullmatch(digest):
            raise SlotStateError(f"sha256 {sha256!r} is not 64 hexadecimal digits")
        record = replace(
            info.record,
            phase=ContentPhase.VERIFIED,
            version=version,
            size=size,
            sha256=digest,
            verified_at=self._clock(),
        )
        return self._store_record(snapshot, slot, record)

    def make_bootable(self, slot: Slot, tries: int = 1) -> SlotInfo:
        """Let gptprio boot ``slot`` next: ``tries`` attempts, not successful, and the top
        priority (cgpt prioritize). Only verified content is ever made bootable."""
        snapshot = self._snapshot()
        info = self._info(snapshot, slot)
        if info.state is not SlotState.VERIFIED:
            raise SlotStateError(
                f"slot {slot} is {info.state}, not verified: only an update that was written "
                "and verified (begin_write, mark_written, mark_verified) may be made bootable"
            )
        if not 1 <= tries <= FIELD_MAX:
            raise InvalidAttributeError(f"tries {tries} is outside 1..{FIELD_MAX}")
        number = info.partition.number
        trial = GptPrio(info.prio.priority, tries, False).apply_to(info.partition.attributes)
        staged = [
            replace(p, attributes=trial) if p.number == number else p
            for p in snapshot.disk.partitions
        ]
        reordered = {update.number: update.attributes for update in prioritize(staged, number)}
        updates = [AttributeUpdate(number, reordered.pop(number, trial))] + [
            AttributeUpdate(n, attributes) for n, attributes in sorted(reordered.items())
        ]
        self._gpt.write_attributes(updates)
        record = replace(info.record, made_bootable_at=self._clock())
        return self._store_record(snapshot, slot, record)

    def mark_good(self, slot: Slot) -> SlotInfo:
        """The running slot passed its health checks: successful, no tries needed any more."""
        snapshot = self._snapshot()
        info = self._info(snapshot, slot)
        if info.prio.priority == 0:
            raise SlotStateError(
                f"slot {slot} has priority 0 and never boots ({info.state}): "
                "only a slot that has booted can be marked good"
            )
        if not info.active and info.state is not SlotState.GOOD:
            running = snapshot.active or "none"
            raise SlotStateError(
                f"slot {slot} is not the running slot (running: {running}); only a slot that "
                "has booted and passed its health checks can be marked good"
            )
        self._write_prio(info, GptPrio(info.prio.priority, 0, True))
        record = replace(info.record, marked_good_at=self._clock())
        return self._store_record(snapshot, slot, record)

    def mark_bad(self, slot: Slot) -> SlotInfo:
        """Never boot ``slot`` again until it is rewritten: the other slot boots next."""
        snapshot = self._snapshot()
        info = self._info(snapshot, slot)
        other = self._info(snapshot, slot.other)
        if not other.prio.bootable:
            raise SlotStateError(
                f"marking slot {slot} bad would leave nothing to boot: slot {slot.other} is "
                f"{other.state} ({other.prio.describe()})"
            )
        self._write_prio(info, GptPrio(0, 0, False))
        record = replace(info.record, phase=ContentPhase.BAD, marked_bad_at=self._clock())
        return self._store_record(snapshot, slot, record)

    def prioritize(self, slot: Slot) -> SlotInfo:
        """Put ``slot`` first in the boot order (manual rollback, ``cgpt prioritize``)."""
        snapshot = self._snapshot()
        info = self._info(snapshot, slot)
        if not (info.prio.tries > 0 or info.prio.successful):
            raise SlotStateError(
                f"slot {slot} is {info.state} ({info.prio.describe()}): with neither tries left "
                "nor the successful flag gptprio would skip it even at the top"
            )
        updates = prioritize(snapshot.disk.partitions, info.partition.number)
        if updates:
            self._gpt.write_attributes(updates)
        return self.slot(slot)

    def boot_next(self) -> BootResult:
        """Simulate GRUB's gptprio.next: pick the slot, use up one try, remember it booted."""
        snapshot = self._snapshot()
        choice = gptprio_next(snapshot.disk.partitions)
        slot = next((s for s in Slot if s.partition_number == choice.number), None)
        if slot is None:
            raise SlotStateError(
                f"gptprio picks partition {choice.number}, which is neither USR-A nor USR-B"
            )
        if choice.update is not None:
            self._gpt.write_attributes([choice.update])
        self._save(snapshot, replace(snapshot.status, booted_slot=slot))
        return BootResult(slot, choice.before, choice.after)
