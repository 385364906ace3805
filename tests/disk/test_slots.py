"""The A/B slot model on image files: the update flow, its refusals, both rollbacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wellcar.disk import (
    AttributeUpdate,
    ContentPhase,
    GptDisk,
    GptPrio,
    InvalidAttributeError,
    NoBootablePartitionError,
    PartitionNotFoundError,
    Slot,
    SlotRecord,
    SlotState,
    SlotStateError,
    SlotStatusError,
    SlotTable,
    create_disk_image,
    derive_state,
    read_gpt,
    write_partition_attributes,
)
from wellcar.disk import slots as slots_module
from wellcar.disk.gpt_image import write_new_gpt
from wellcar.disk.sizes import MiB

from .conftest import TINY

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slots(image: Path, clock: Clock) -> SlotTable:
    return SlotTable.for_image(image, clock=clock)


def prio(table: SlotTable, slot: Slot) -> tuple[int, int, int]:
    p = table.slot(slot).prio
    return p.priority, p.tries, int(p.successful)


def install(table: SlotTable, slot: Slot, image: Path, version: str = "4459.2.1") -> None:
    """What the agent does: write a payload into the slot's partition, verify, make bootable."""
    table.begin_write(slot)
    partition = table.partition(slot)
    with open(image, "r+b") as f:
        f.seek(partition.byte_offset)
        f.write(PAYLOAD)
    table.mark_written(slot)
    table.mark_verified(slot, version, len(PAYLOAD), PAYLOAD_SHA)
    table.make_bootable(slot)


# ------------------------------------------------------------------------ state rule

P = GptPrio
EMPTY, VERIFIED, BAD_RECORD = (
    SlotRecord(),
    SlotRecord(phase=ContentPhase.VERIFIED),
    SlotRecord(phase=ContentPhase.BAD),
)
STATE_CASES = [
    (P(1, 0, True), EMPTY, False, SlotState.GOOD),
    (P(2, 1, False), VERIFIED, False, SlotState.BOOTABLE),
    (P(2, 0, False), VERIFIED, True, SlotState.BOOTABLE),  # running on trial
    (P(2, 0, False), VERIFIED, False, SlotState.BAD),  # tries used up, passed over
    (P(0, 0, False), EMPTY, False, SlotState.EMPTY),
    (P(0, 0, False), SlotRecord(phase=ContentPhase.WRITING), False, SlotState.EMPTY),
    (P(0, 0, False), SlotRecord(phase=ContentPhase.WRITTEN), False, SlotState.WRITTEN),
    (P(0, 0, False), VERIFIED, False, SlotState.VERIFIED),
    (P(0, 0, False), BAD_RECORD, True, SlotState.BAD),
    (P(1, 0, True), BAD_RECORD, False, SlotState.GOOD),  # the GPT wins: GRUB would boot it
]


@pytest.mark.parametrize(("gpt", "record", "active", "state"), STATE_CASES)
def test_derive_state(gpt: GptPrio, record: SlotRecord, active: bool, state: SlotState) -> None:
    assert derive_state(gpt, record, active=active) is state


# ------------------------------------------------------------------------ the update


def test_fresh_image(slots: SlotTable) -> None:
    a, b = slots.slots()
    assert (a.state, a.active, b.state, b.active) == (SlotState.GOOD, True, SlotState.EMPTY, False)
    assert (slots.active, slots.update_target) == (Slot.A, Slot.B)
    assert not slots.status_path.exists()  # reading writes nothing


def test_update_flow(slots: SlotTable, image: Path, clock: Clock) -> None:
    info = slots.begin_write(Slot.B)
    assert (info.state, info.record.phase, prio(slots, Slot.B)) == (
        SlotState.EMPTY, ContentPhase.WRITING, (0, 0, 0)
    )  # fmt: skip
    partition = slots.partition(Slot.B)
    assert partition.byte_offset == read_gpt(image).partition(4).byte_offset == 7 * MiB
    with open(image, "r+b") as f:
        f.seek(partition.byte_offset)
        f.write(PAYLOAD)
    assert slots.mark_written(Slot.B).state is SlotState.WRITTEN
    info = slots.mark_verified(Slot.B, "4459.2.1", len(PAYLOAD), PAYLOAD_SHA.upper())
    assert info.state is SlotState.VERIFIED and info.record.sha256 == PAYLOAD_SHA
    info = slots.make_bootable(Slot.B)
    assert (info.state, info.tries_left) == (SlotState.BOOTABLE, 1)
    assert prio(slots, Slot.B) == (2, 1, 0) and prio(slots, Slot.A) == (1, 0, 1)

    boot = slots.boot_next()  # GRUB
    assert (boot.slot, boot.before, boot.after) == (Slot.B, P(2, 1, False), P(2, 0, False))
    assert (slots.active, slots.update_target) == (Slot.B, Slot.A)
    assert slots.slot(Slot.B).state is SlotState.BOOTABLE  # on trial

    info = slots.mark_good(Slot.B)
    assert info.state is SlotState.GOOD and prio(slots, Slot.B) == (2, 0, 1)
    assert slots.slot(Slot.A).state is SlotState.GOOD  # the fallback stays good
    assert slots.boot_next().slot is Slot.B

    record = json.loads(slots.status_path.read_text())["slots"]["B"]
    assert record["version"] == "4459.2.1" and record["size"] == len(PAYLOAD)
    assert record["phase"] == "verified" and record["sha256"] == PAYLOAD_SHA
    stamps = [record[k] for k in ("write_started_at", "written_at", "verified_at",
                                  "made_bootable_at", "marked_good_at")]  # fmt: skip
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    # the payload is where the partition is, and the GPT did not suffer
    with open(image, "rb") as f:
        f.seek(7 * MiB)
        assert f.read(len(PAYLOAD)) == PAYLOAD
    assert not read_gpt(image).needs_repair


def test_second_update_goes_to_a(slots: SlotTable, image: Path) -> None:
    install(slots, Slot.B, image)
    slots.boot_next()
    slots.mark_good(Slot.B)
    assert slots.update_target is Slot.A
    info = slots.begin_write(Slot.A)  # the old good slot becomes unbootable first
    assert (info.state, info.record.version, prio(slots, Slot.A)) == (
        SlotState.EMPTY,
        None,
        (0, 0, 0),
    )
    slots.mark_written(Slot.A)
    slots.mark_verified(Slot.A, "4460.0.0", 10, "0" * 64)
    slots.make_bootable(Slot.A, tries=3)
    assert prio(slots, Slot.A) == (2, 3, 0) and prio(slots, Slot.B) == (1, 0, 1)
    assert slots.boot_next().slot is Slot.A


def test_automatic_rollback(slots: SlotTable, image: Path) -> None:
    install(slots, Slot.B, image)
    assert slots.boot_next().slot is Slot.B
    # B hangs before it is marked good; the machine resets
    assert slots.boot_next().slot is Slot.A
    assert slots.active is Slot.A
    b = slots.slot(Slot.B)
    assert (b.state, b.prio) == (SlotState.BAD, P(2, 0, False))
    assert slots.slot(Slot.A).state is SlotState.GOOD
    install(slots, Slot.B, image, "4459.2.2")  # the agent may try again
    assert slots.boot_next().slot is Slot.B


def test_mark_bad_while_running_on_trial(slots: SlotTable, image: Path) -> None:
    install(slots, Slot.B, image)
    slots.boot_next()
    info = slots.mark_bad(Slot.B)  # health checks failed
    assert (info.state, info.record.phase, prio(slots, Slot.B)) == (
        SlotState.BAD, ContentPhase.BAD, (0, 0, 0)
    )  # fmt: skip
    assert info.record.version == "4459.2.1"  # what was bad stays on record
    assert slots.boot_next().slot is Slot.A
    assert slots.slot(Slot.B).state is SlotState.BAD
    with pytest.raises(SlotStateError, match="slot B is bad, not verified"):
        slots.make_bootable(Slot.B)


def test_manual_rollback(slots: SlotTable, image: Path) -> None:
    install(slots, Slot.B, image)
    slots.boot_next()
    slots.mark_good(Slot.B)
    slots.prioritize(Slot.A)
    assert prio(slots, Slot.A) == (2, 0, 1) and prio(slots, Slot.B) == (1, 0, 1)
    assert slots.boot_next().slot is Slot.A


# -------------------------------------------------------------------------- refusals


def test_running_slot_is_never_written(slots: SlotTable, image: Path) -> None:
    before = read_gpt(image)
    with pytest.raises(SlotStateError, match=r"slot A \(USR-A\) is the running slot"):
        slots.begin_write(Slot.A)
    assert read_gpt(image).partitions == before.partitions


def test_explicitly_running_b_is_never_written(image: Path) -> None:
    table = SlotTable.for_image(image, active=Slot.B)
    with pytest.raises(SlotStateError, match="running slot"):
        table.begin_write(Slot.B)


@pytest.mark.parametrize("stage", ["fresh", "writing", "written"])
def test_only_verified_content_is_made_bootable(slots: SlotTable, stage: str) -> None:
    if stage != "fresh":
        slots.begin_write(Slot.B)
    if stage == "written":
        slots.mark_written(Slot.B)
    with pytest.raises(SlotStateError, match="not verified"):
        slots.make_bootable(Slot.B)
    assert prio(slots, Slot.B) == (0, 0, 0)


def test_write_steps_must_come_in_order(slots: SlotTable) -> None:
    with pytest.raises(SlotStateError, match="call begin_write first"):
        slots.mark_written(Slot.B)
    with pytest.raises(SlotStateError, match="has not been written"):
        slots.mark_verified(Slot.B, "1.0.0", 1, "0" * 64)
    slots.begin_write(Slot.B)
    with pytest.raises(SlotStateError, match="has not been written"):
        slots.mark_verified(Slot.B, "1.0.0", 1, "0" * 64)


@pytest.mark.parametrize(
    ("version", "size", "sha256", "message"),
    [
        ("", 1, "0" * 64, "version"),
        ("1.0.0", 0, "0" * 64, "does not fit"),
        ("1.0.0", 4 * MiB + 1, "0" * 64, "does not fit"),
        ("1.0.0", 1, "0" * 63, "64 hexadecimal"),
        ("1.0.0", 1, "g" * 64, "64 hexadecimal"),
    ],
)
def test_verification_values_are_checked(
    slots: SlotTable, version: str, size: int, sha256: str, message: str
) -> None:
    slots.begin_write(Slot.B)
    slots.mark_written(Slot.B)
    with pytest.raises(SlotStateError, match=message):
        slots.mark_verified(Slot.B, version, size, sha256)
    assert slots.slot(Slot.B).state is SlotState.WRITTEN


@pytest.mark.parametrize("tries", [0, 16])
def test_tries_range(slots: SlotTable, tries: int) -> None:
    slots.begin_write(Slot.B)
    slots.mark_written(Slot.B)
    slots.mark_verified(Slot.B, "1.0.0", 1, "0" * 64)
    with pytest.raises(InvalidAttributeError, match="tries"):
        slots.make_bootable(Slot.B, tries=tries)


def test_mark_good_needs_a_booted_slot(slots: SlotTable, image: Path) -> None:
    with pytest.raises(SlotStateError, match="priority 0 and never boots"):
        slots.mark_good(Slot.B)
    install(slots, Slot.B, image)
    explicit_a = SlotTable.for_image(image, active=Slot.A)
    with pytest.raises(SlotStateError, match=r"not the running slot \(running: A\)"):
        explicit_a.mark_good(Slot.B)  # B never booted: it must not skip its trial
    assert explicit_a.mark_good(Slot.A).state is SlotState.GOOD  # idempotent on A


def test_mark_bad_never_leaves_nothing_to_boot(slots: SlotTable) -> None:
    with pytest.raises(SlotStateError, match="would leave nothing to boot: slot B is empty"):
        slots.mark_bad(Slot.A)
    assert prio(slots, Slot.A) == (1, 0, 1)


def test_prioritize_refuses_a_slot_gptprio_would_skip(slots: SlotTable) -> None:
    with pytest.raises(SlotStateError, match="would skip it"):
        slots.prioritize(Slot.B)


def test_crash_between_gpt_and_record_leaves_slot_unbootable(
    slots: SlotTable, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(slots, Slot.B, image)
    slots.boot_next()
    slots.mark_good(Slot.B)

    def power_cut(path: Path, status: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(slots_module, "save_slot_status", power_cut)
    with pytest.raises(OSError, match="power cut"):
        slots.begin_write(Slot.A)
    # the record still names the old content, but GRUB can no longer boot A
    assert GptPrio.from_attributes(read_gpt(image).partition(3).attributes) == P(0, 0, False)


# -------------------------------------------------------------------- which is active


def test_active_from_hint(image: Path) -> None:
    table = SlotTable.for_image(
        image, boot_hint="root=LABEL=ROOT mount.usr=PARTUUID=e03dd35c-7c2d-4a47-b3fe-27f15780a57c"
    )
    assert (table.active, table.update_target) == (Slot.B, Slot.A)
    with pytest.raises(PartitionNotFoundError, match="boot hint"):
        SlotTable.for_image(image, boot_hint="root=/dev/sda9")


def test_active_without_anything_bootable(image: Path) -> None:
    write_partition_attributes(image, [AttributeUpdate(3, 0)])
    table = SlotTable.for_image(image)
    assert table.active is None and table.update_target is None
    with pytest.raises(NoBootablePartitionError):
        table.boot_next()


def test_status_file_of_another_disk_is_refused(image: Path, tmp_path: Path) -> None:
    SlotTable.for_image(image).boot_next()  # writes IMAGE.slots.json with the disk GUID
    other = tmp_path / "other.img"
    create_disk_image(other, TINY, seed="another")
    table = SlotTable.for_image(other, status_path=Path(f"{image}.slots.json"))
    with pytest.raises(SlotStatusError, match="belongs to the disk with GUID"):
        table.slots()


def test_disk_without_slots(tmp_path: Path) -> None:
    path = tmp_path / "odd.img"
    create_disk_image(path, TINY)
    disk = read_gpt(path)
    esp_type = disk.partition(1).type_guid
    # turn USR-B into something else by rewriting the table with a new type for 4
    partitions = tuple(
        replace(p, type_guid=esp_type) if p.number == 4 else p for p in disk.partitions
    )
    write_new_gpt(path, disk.total_sectors, disk.disk_guid, partitions, overwrite=True)
    with pytest.raises(PartitionNotFoundError, match="not flatcar-usr: this disk has no slot B"):
        SlotTable.for_image(path).slots()


# ------------------------------------------------------------------ another backend


class InMemoryGpt:
    """A second PartitionAttributeStore: proves the SlotTable needs nothing else."""

    def __init__(self, disk: GptDisk) -> None:
        self.disk = disk
        self.writes: list[list[AttributeUpdate]] = []

    @property
    def location(self) -> Path:
        return Path("memory:")

    def read_gpt(self) -> GptDisk:
        return self.disk

    def write_attributes(self, updates: Sequence[AttributeUpdate]) -> GptDisk:
        self.writes.append(list(updates))
        changed = {u.number: u.attributes for u in updates}
        partitions = tuple(
            replace(p, attributes=changed.get(p.number, p.attributes)) for p in self.disk.partitions
        )
        self.disk = replace(self.disk, partitions=partitions)
        return self.disk


@pytest.fixture
def memory(image: Path) -> Iterator[InMemoryGpt]:
    yield InMemoryGpt(read_gpt(image))


def test_other_backend(memory: InMemoryGpt, tmp_path: Path) -> None:
    table = SlotTable(memory, tmp_path / "status.json", active=Slot.A)
    table.begin_write(Slot.B)
    table.mark_written(Slot.B)
    table.mark_verified(Slot.B, "1.2.3", 100, "f" * 64)
    table.make_bootable(Slot.B, tries=2)
    assert memory.writes[0] == [AttributeUpdate(4, 0)]
    # tries and priority go in one write, B first
    assert memory.writes[1] == [AttributeUpdate(4, P(2, 2, False).apply_to(0))]
    assert table.slot(Slot.B).state is SlotState.BOOTABLE


def test_a_slot_made_bootable_is_not_taken_for_the_running_one(tmp_path: Path) -> None:
    """Without a recorded boot, the good slot stays "running" after B is made bootable,
    so the running slot can never become the update target and be overwritten."""
    image = tmp_path / "disk.img"
    create_disk_image(image, seed=3)
    table = SlotTable.for_image(image)
    assert table.active is Slot.A
    table.begin_write(Slot.B)
    table.mark_written(Slot.B)
    table.mark_verified(Slot.B, "2.0.0", 4096, "ab" * 32)
    table.make_bootable(Slot.B)
    fresh = SlotTable.for_image(image)
    assert fresh.active is Slot.A
    assert fresh.update_target is Slot.B
    with pytest.raises(SlotStateError, match="running slot"):
        fresh.begin_write(Slot.A)
