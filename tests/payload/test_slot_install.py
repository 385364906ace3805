"""Installing payloads into the inactive USR slot of a GPT disk image, with slot bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.disk import (
    DiskLayout,
    GptPrio,
    Slot,
    SlotState,
    SlotStateError,
    SlotTable,
    UsrVerity,
    create_disk_image,
)
from wellcar.payload.errors import PayloadError, PayloadIntegrityError
from wellcar.payload.generate import PayloadInputs, generate_payload
from wellcar.payload.reader import file_opener
from wellcar.payload.slot_install import install_into_slot, slot_region

from .conftest import Images, Keys, Payloads
from .helpers import BS, FAST, flip_bit

LAYOUT = DiskLayout(
    esp_size=1 << 20, usr_size=8 << 20, oem_size=1 << 20, oem_config_size=1 << 20, root_size=1 << 20
)


def _disk_with_old_in_a(tmp_path: Path, images: Images) -> tuple[Path, SlotTable]:
    image = tmp_path / "disk.img"
    create_disk_image(image, LAYOUT, seed=5)
    table = SlotTable.for_image(image)
    region = slot_region(table, image, Slot.A)
    with open(image, "r+b") as disk:
        disk.seek(region.offset)
        disk.write(images.old.read_bytes())
    return image, table


def _read_slot(image: Path, table: SlotTable, slot: Slot, size: int) -> bytes:
    region = slot_region(table, image, slot)
    with open(image, "rb") as disk:
        disk.seek(region.offset)
        return disk.read(size)


def test_delta_into_slot_b_reads_slot_a_and_leaves_it_alone(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    image, table = _disk_with_old_in_a(tmp_path, images)
    before_a = _read_slot(image, table, Slot.A, LAYOUT.usr_size)
    result = install_into_slot(
        file_opener(payloads.delta), image, table, keys.trust(keys.rsa), "2.0.0",
        make_bootable=True,
    )  # fmt: skip
    assert result.slot is Slot.B
    new = images.new_bytes
    assert _read_slot(image, table, Slot.B, len(new)) == new
    assert _read_slot(image, table, Slot.A, LAYOUT.usr_size) == before_a
    info = table.slot(Slot.B)
    assert info.state is SlotState.BOOTABLE
    assert (info.prio.tries, info.prio.successful) == (1, False)
    assert info.record.version == "2.0.0"
    assert table.active is Slot.A  # B has not booted yet


def test_the_installed_slots_verity_parameters_come_back_to_the_caller(
    tmp_path: Path, images: Images, keys: Keys
) -> None:
    """The agent writes the boot entry from these, after the install verified them."""
    verity = UsrVerity("ab" * 32, 1024 * BS)
    payload = tmp_path / "p.crau"
    generate_payload(PayloadInputs(images.new, usr_verity=verity), payload, [keys.rsa], FAST)
    image, table = _disk_with_old_in_a(tmp_path, images)
    result = install_into_slot(file_opener(payload), image, table, keys.trust(keys.rsa), "2.0.0")
    assert result.apply.usr_verity == verity


@pytest.mark.parametrize("problem", ["blob", "manifest"])
def test_a_failed_install_leaves_the_target_unbootable(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, problem: str
) -> None:
    image, table = _disk_with_old_in_a(tmp_path, images)
    # A previous good install in B, bootable: a failed one must take that away first.
    install_into_slot(
        file_opener(payloads.full), image, table, keys.trust(keys.rsa), "1.0.0",
        make_bootable=True,
    )  # fmt: skip
    bad = tmp_path / "bad.payload"
    bad.write_bytes(payloads.delta.read_bytes())
    flip_bit(bad, bad.stat().st_size - 10 if problem == "blob" else 0x400)
    expected = PayloadIntegrityError if problem == "blob" else PayloadError
    with pytest.raises(expected):
        install_into_slot(
            file_opener(bad), image, table, keys.trust(keys.rsa), "2.0.0", make_bootable=True
        )
    info = table.slot(Slot.B)
    assert info.prio == GptPrio(0, 0, False)
    assert info.state is not SlotState.VERIFIED
    with pytest.raises(SlotStateError, match="not verified"):
        table.make_bootable(Slot.B)
    assert table.slot(Slot.A).state is SlotState.GOOD


def test_the_running_slot_is_refused(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    image, table = _disk_with_old_in_a(tmp_path, images)
    before = image.read_bytes()
    with pytest.raises(SlotStateError, match="running slot"):
        install_into_slot(
            file_opener(payloads.full), image, table, keys.trust(keys.rsa), "1.0.0", slot=Slot.A
        )
    assert image.read_bytes() == before
