"""What we write, util-linux sfdisk and GPT fdisk (sgdisk) read as meant, and the reverse."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from wellcar.disk import (
    USR_A_UUID,
    USR_B_UUID,
    AttributeUpdate,
    GptPrio,
    HeaderCopy,
    Partition,
    Slot,
    SlotTable,
    gptprio_next,
    read_gpt,
    write_partition_attributes,
)
from wellcar.disk.sizes import MiB

pytestmark = pytest.mark.skipif(
    not (shutil.which("sfdisk") and shutil.which("sgdisk")),
    reason="needs sfdisk (fdisk) and sgdisk (gdisk)",
)

EXPECTED_TYPES = {
    1: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    2: "21686148-6449-6E6F-744E-656564454649",
    3: "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
    4: "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
    6: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    7: "C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0",
    9: "3884DD41-8582-4404-B9A8-E9B84F2DF50E",
}


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


# -------------------------------------------------------------------------- sfdisk


@dataclass(frozen=True)
class DumpedPartition:
    number: int
    start: int
    size: int
    type: str
    uuid: str
    name: str
    attrs: str


def sfdisk_dump(image: Path) -> tuple[dict[str, str], dict[int, DumpedPartition]]:
    header: dict[str, str] = {}
    partitions: dict[int, DumpedPartition] = {}
    for line in run("sfdisk", "--dump", str(image)).splitlines():
        if " : " in line:
            device, _, rest = line.partition(" : ")
            fields = dict(re.findall(r'(\w+)=\s*("[^"]*"|[^,]+)', rest))
            number = int(re.search(r"(\d+)$", device).group(1))  # type: ignore[union-attr]
            partitions[number] = DumpedPartition(
                number=number,
                start=int(fields["start"]),
                size=int(fields["size"]),
                type=fields["type"],
                uuid=fields["uuid"],
                name=fields.get("name", '""').strip('"'),
                attrs=fields.get("attrs", '""').strip('"'),
            )
        elif ": " in line:
            key, _, value = line.partition(": ")
            header[key] = value
    return header, partitions


def test_sfdisk_reads_our_image(image: Path) -> None:
    disk = read_gpt(image)
    header, dumped = sfdisk_dump(image)
    assert header["label"] == "gpt"
    assert header["label-id"] == str(disk.disk_guid).upper()
    assert header["first-lba"] == "34"
    assert int(header["last-lba"]) == disk.total_sectors - 34
    assert sorted(dumped) == [1, 2, 3, 4, 6, 7, 9]
    for partition in disk.partitions:
        seen = dumped[partition.number]
        assert seen.type == EXPECTED_TYPES[partition.number]
        assert seen.uuid == str(partition.unique_guid).upper()
        assert seen.name == partition.label
        assert (seen.start, seen.size) == (partition.first_lba, partition.sector_count)
        assert seen.start % 2048 == 0 and seen.size % 2048 == 0
    assert dumped[3].uuid == str(USR_A_UUID).upper()
    assert dumped[4].uuid == str(USR_B_UUID).upper()
    assert dumped[1].attrs == "LegacyBIOSBootable"
    assert dumped[3].attrs == "GUID:48,56"  # P1 S1
    assert {n: d.attrs for n, d in dumped.items() if n not in (1, 3)} == dict.fromkeys(
        [2, 4, 6, 7, 9], ""
    )


def test_sfdisk_sees_attribute_changes(image: Path) -> None:
    write_partition_attributes(image, [AttributeUpdate(4, GptPrio(2, 1, False).apply_to(0))])
    _, dumped = sfdisk_dump(image)
    assert dumped[4].attrs == "GUID:49,52"  # priority 2 = bit 49, tries 1 = bit 52
    assert dumped[3].attrs == "GUID:48,56"


def test_we_read_an_sfdisk_made_image(tmp_path: Path) -> None:
    image = tmp_path / "sfdisk.img"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    script = f"""label: gpt
label-id: 5A0E5B1B-3D5C-4C0B-9F3A-0123456789AB
unit: sectors
start=2048, size=4096, type={EXPECTED_TYPES[1]}, name="EFI-SYSTEM", attrs="LegacyBIOSBootable"
start=6144, size=2048, type={EXPECTED_TYPES[2]}, name="BIOS-BOOT"
start=8192, size=16384, type={EXPECTED_TYPES[3]}, uuid={USR_A_UUID}, name="USR-A", attrs="GUID:48,49,56"
start=24576, size=16384, type={EXPECTED_TYPES[4]}, uuid={USR_B_UUID}, name="USR-B", attrs="GUID:48,52,53"
"""  # noqa: E501
    subprocess.run(["sfdisk", "-q", str(image)], input=script, text=True, check=True, timeout=30)
    disk = read_gpt(image)
    assert str(disk.disk_guid).upper() == "5A0E5B1B-3D5C-4C0B-9F3A-0123456789AB"
    assert [(p.number, p.label) for p in disk.partitions] == [
        (1, "EFI-SYSTEM"), (2, "BIOS-BOOT"), (3, "USR-A"), (4, "USR-B"),
    ]  # fmt: skip
    usr_a, usr_b = disk.partition(3), disk.partition(4)
    assert (usr_a.first_lba, usr_a.sector_count, usr_a.unique_guid) == (8192, 16384, USR_A_UUID)
    assert usr_a.attributes == (1 << 48) | (1 << 49) | (1 << 56)
    assert GptPrio.from_attributes(usr_a.attributes) == GptPrio(3, 0, True)
    assert GptPrio.from_attributes(usr_b.attributes) == GptPrio(1, 3, False)
    assert disk.partition(1).has_attribute_bit(2)
    assert disk.partition(3).type_guid == disk.partition(4).type_guid
    # gptprio on it: A (P3, successful) beats B (P1 with tries)
    assert gptprio_next(disk.partitions).number == 3


def test_sgdisk_verifies_sfdisk_image_after_our_write(tmp_path: Path) -> None:
    image = tmp_path / "sfdisk.img"
    with open(image, "wb") as f:
        f.truncate(32 * MiB)
    script = f'start=2048, size=8192, type={EXPECTED_TYPES[3]}, name="USR-A", attrs="GUID:48,56"\n'
    subprocess.run(
        ["sfdisk", "-q", "-X", "gpt", str(image)], input=script, text=True, check=True, timeout=30
    )
    write_partition_attributes(image, [AttributeUpdate(1, GptPrio(7, 2, False).apply_to(1 << 2))])
    assert "No problems found" in run("sgdisk", "-v", str(image))
    _, dumped = sfdisk_dump(image)
    assert dumped[1].attrs == "LegacyBIOSBootable GUID:48,49,50,53"


# -------------------------------------------------------------------------- sgdisk


def sgdisk_rows(image: Path) -> dict[int, tuple[int, int, str, str]]:
    """Rows of `sgdisk -p`: number -> (start, end, code, name)."""
    rows = {}
    for line in run("sgdisk", "-p", str(image)).splitlines():
        match = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\S+)\s+(.*)$", line)
        if match:
            number, start, end, code, name = match.groups()
            rows[int(number)] = (int(start), int(end), code, name.strip())
    return rows


def test_sgdisk_print(image: Path) -> None:
    disk = read_gpt(image)
    rows = sgdisk_rows(image)
    assert rows == {
        p.number: (p.first_lba, p.last_lba, rows[p.number][2], p.label) for p in disk.partitions
    }
    assert {n: r[2] for n, r in rows.items()} == {
        1: "EF00", 2: "EF02", 3: "8500", 4: "8500", 6: "8300", 7: "8502", 9: "8501"
    }  # fmt: skip
    printed = run("sgdisk", "-p", str(image))
    assert f"Disk identifier (GUID): {str(disk.disk_guid).upper()}" in printed


def _sgdisk_info(image: Path, number: int) -> dict[str, str]:
    lines = run("sgdisk", "-i", str(number), str(image)).splitlines()
    return {key.strip(): value.strip() for key, _, value in (ln.partition(":") for ln in lines)}


def test_sgdisk_partition_info(image: Path) -> None:
    usr_a: Partition = read_gpt(image).partition(3)
    info = _sgdisk_info(image, 3)
    assert info["Partition GUID code"].startswith(EXPECTED_TYPES[3])
    assert info["Partition unique GUID"] == str(USR_A_UUID).upper()
    assert info["First sector"].startswith(f"{usr_a.first_lba} ")
    assert info["Last sector"].startswith(f"{usr_a.last_lba} ")
    assert info["Partition size"].startswith(f"{usr_a.sector_count} sectors")
    assert info["Attribute flags"] == "0101000000000000"
    assert info["Partition name"] == "'USR-A'"


def test_sgdisk_attribute_bits(image: Path) -> None:
    assert run("sgdisk", "-A", "1:show", str(image)).split() == [
        "1:2:1", "(legacy", "BIOS", "bootable)"
    ]  # fmt: skip
    shown = [line.split()[0] for line in run("sgdisk", "-A", "3:show", str(image)).splitlines()]
    assert shown == ["3:48:1", "3:56:1"]
    write_partition_attributes(
        image, [AttributeUpdate(3, GptPrio(15, 15, False).apply_to((1 << 60) | 1))]
    )
    shown = [line.split()[0] for line in run("sgdisk", "-A", "3:show", str(image)).splitlines()]
    assert shown == ["3:0:1", *(f"3:{bit}:1" for bit in range(48, 56)), "3:60:1"]


def test_sgdisk_verifies_after_slot_operations(image: Path) -> None:
    assert "No problems found" in run("sgdisk", "-v", str(image))
    slots = SlotTable.for_image(image)
    slots.begin_write(Slot.B)
    slots.mark_written(Slot.B)
    slots.mark_verified(Slot.B, "4459.2.1", 1024, "ab" * 32)
    slots.make_bootable(Slot.B)
    slots.boot_next()
    slots.mark_good(Slot.B)
    verified = run("sgdisk", "-v", str(image))
    assert "No problems found" in verified and "Problem" not in verified
    assert run("sgdisk", "-i", "4", str(image)).count("Attribute flags: 0102000000000000") == 1


def test_sgdisk_verifies_after_repair_of_a_corrupt_primary(image: Path) -> None:
    with open(image, "r+b") as f:
        f.seek(512 + 60)
        f.write(b"\xff\xff")
    assert read_gpt(image).source is HeaderCopy.BACKUP
    write_partition_attributes(image, [AttributeUpdate(4, 1 << 52)])
    assert "No problems found" in run("sgdisk", "-v", str(image))
    assert read_gpt(image).source is HeaderCopy.PRIMARY
