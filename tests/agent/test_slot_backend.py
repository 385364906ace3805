"""Slot backends: the simulated node on an image file, and the block-device backend's parts
that can be exercised without root (command line, lsblk, boot entries, GPT on a file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.tiny_layout import TINY
from wellcar.agent.block_device_backend import BlockDeviceSlotBackend, HostPaths
from wellcar.agent.esp_boot_files import EspBootFiles
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.agent.slot_backend import NodeNotPoweredOnError, SlotDiskNotFoundError
from wellcar.agent.slot_disk import (
    BlockDeviceGpt,
    slot_disk_from_lsblk,
    slot_disk_from_partlabel_links,
)
from wellcar.disk import (
    USR_A_UUID,
    USR_B_UUID,
    AttributeUpdate,
    BootedSlotUnknownError,
    BootEntryError,
    GptPrio,
    HeaderCopy,
    NotGptError,
    Slot,
    SlotState,
    SlotTable,
    UsrVerity,
    create_disk_image,
    read_gpt,
    write_partition_attributes,
)
from wellcar.disk.boot_entries import (
    GRUB_CFG,
    GRUBENV,
    BootEntry,
    BootEntryName,
    boot_entry_file_name,
    booted_slot_from_cmdline,
    parse_boot_entry_file_name,
    parse_kernel_cmdline,
    render_boot_entry,
    render_grubenv,
    slot_kernel_options,
)
from wellcar.disk.sizes import MiB
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.reader import file_opener
from wellcar.payload.slot_install import install_into_slot

HASH_A = "a" * 64
HASH_B = "0123456789abcdef" * 4
VERITY_OF_B = UsrVerity(HASH_B, 3 * MiB)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    create_disk_image(path, TINY, seed="agent-tests")
    return path


def _verify_and_arm(table: SlotTable, slot: Slot, version: str, tries: int = 1) -> None:
    """What an install does to the slot's bookkeeping (the bytes do not matter here)."""
    table.begin_write(slot)
    table.mark_written(slot)
    table.mark_verified(slot, version, 4096, "ab" * 32)
    table.make_bootable(slot, tries)


# ---------------------------------------------------------------------- FileSlotBackend


def test_a_fresh_node_powers_on_into_a_and_keeps_that_boot_across_agent_restarts(
    image: Path, tmp_path: Path
) -> None:
    node = FileSlotBackend(image, tmp_path / "state")
    assert not node.powered_on
    boot = node.power_on()
    assert boot.slot is Slot.A
    assert boot.after == GptPrio(1, 0, True)  # a good slot uses no try
    # A new backend object over the same files is the agent restarted in the same boot.
    restarted = FileSlotBackend(image, tmp_path / "state")
    assert restarted.booted_slot() is Slot.A
    assert restarted.boot_id() == boot.boot_id
    assert restarted.slot_table().active is Slot.A


def test_asking_an_unpowered_node_about_its_boot_is_an_error(image: Path, tmp_path: Path) -> None:
    node = FileSlotBackend(image, tmp_path / "state")
    with pytest.raises(NodeNotPoweredOnError):
        node.booted_slot()
    with pytest.raises(NodeNotPoweredOnError):
        node.boot_id()


def test_every_power_on_draws_a_new_boot_id(image: Path, tmp_path: Path) -> None:
    node = FileSlotBackend(image, tmp_path / "state")
    ids = {node.power_on().boot_id for _ in range(3)}
    assert len(ids) == 3


def test_reboot_records_the_request_and_calls_back_but_boots_nothing(
    image: Path, tmp_path: Path
) -> None:
    calls: list[str] = []
    node = FileSlotBackend(image, tmp_path / "state", on_reboot=lambda: calls.append("reboot"))
    first = node.power_on()
    _verify_and_arm(node.slot_table(), Slot.B, "2.0.0")
    node.reboot()
    assert calls == ["reboot"]
    assert node.reboot_requested
    # Still the old boot until the harness powers the node on again.
    assert (node.booted_slot(), node.boot_id()) == (Slot.A, first.boot_id)
    assert node.slot_table().slot(Slot.B).prio == GptPrio(2, 1, False)
    second = node.power_on()
    assert not node.reboot_requested
    assert (second.slot, second.before, second.after) == (
        Slot.B,
        GptPrio(2, 1, False),
        GptPrio(2, 0, False),
    )
    assert node.slot_table().slot(Slot.B).state is SlotState.BOOTABLE  # on trial


def test_kernel_initrd_and_usr_locations(image: Path, tmp_path: Path) -> None:
    node = FileSlotBackend(image, tmp_path / "state")
    assert node.kernel_path(Slot.A) == tmp_path / "state" / "vmlinuz-a"
    assert node.kernel_path(Slot.B) == tmp_path / "state" / "vmlinuz-b"
    assert node.initrd_path(Slot.B) == tmp_path / "state" / "initrd-b"
    assert node.payload_image() == image
    usr_b = read_gpt(image).partition(4)
    region = node.usr_region(Slot.B)
    assert (region.path, region.offset, region.size) == (image, usr_b.byte_offset, usr_b.byte_size)


def test_a_real_payload_installs_into_the_other_slot_and_the_node_boots_it(
    image: Path, tmp_path: Path
) -> None:
    usr = tmp_path / "usr.img"
    usr.write_bytes(os.urandom(64 * 1024) + bytes(192 * 1024))
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel " * 5000)
    payload = tmp_path / "update.crau"
    options = GenerateOptions(zstd_level=1, workers=1, try_bsdiff=False)
    generate_payload(PayloadInputs(usr, kernel=kernel), payload, [], options)

    node = FileSlotBackend(image, tmp_path / "state")
    node.power_on()
    table = node.slot_table()
    target = table.update_target
    assert target is Slot.B
    install_into_slot(
        file_opener(payload), node.payload_image(), table, None, "2.0.0",
        make_bootable=True, kernel=node.kernel_path(target),
    )  # fmt: skip
    assert node.kernel_path(Slot.B).read_bytes() == kernel.read_bytes()
    region = node.usr_region(Slot.B)
    with open(image, "rb") as disk:
        disk.seek(region.offset)
        assert disk.read(usr.stat().st_size) == usr.read_bytes()
    node.reboot()
    assert node.power_on().slot is Slot.B


# ------------------------------------------------------------------ kernel command line

VERITY_B = f"mount.usr=/dev/mapper/usr verity.usr=PARTUUID={USR_B_UUID} console=ttyS0"


@pytest.mark.parametrize(
    ("cmdline", "slot"),
    [
        (f"BOOT_IMAGE=/flatcar/vmlinuz-a mount.usr=PARTUUID={USR_A_UUID} rootflags=rw", Slot.A),
        (VERITY_B, Slot.B),  # dm-verity: the partition is named by verity.usr
        ("mount.usr=/dev/mapper/usr wellcar.slot=b", Slot.B),
        ("mount.usr=/dev/mapper/usr wellcar.slot=A", Slot.A),
        ("root=LABEL=ROOT mount.usr=/dev/vda4", Slot.B),
        ("mount.usr=PARTLABEL=USR-A quiet", Slot.A),
        (f"usrhash={HASH_B} mount.usr=/dev/mapper/usr", Slot.B),  # through our entries
        (f"verity.usrhash={HASH_B} mount.usr=/dev/mapper/usr", Slot.B),  # Flatcar's spelling
    ],
)
def test_the_booted_slot_from_a_kernel_command_line(cmdline: str, slot: Slot) -> None:
    assert booted_slot_from_cmdline(cmdline, usrhash_slots={HASH_B: Slot.B}) is slot


def test_a_command_line_that_names_no_slot_is_refused() -> None:
    with pytest.raises(BootedSlotUnknownError, match="names no /usr slot"):
        booted_slot_from_cmdline("root=/dev/sda9 mount.usr=/dev/mapper/usr usrhash=" + HASH_A)


def test_slot_words_after_the_double_dash_belong_to_init_and_are_ignored() -> None:
    assert "wellcar.slot" not in parse_kernel_cmdline("quiet -- wellcar.slot=b")
    with pytest.raises(BootedSlotUnknownError):
        booted_slot_from_cmdline("quiet -- wellcar.slot=b")


def test_partuuids_other_than_flatcars_match_through_the_gpt(image: Path) -> None:
    partitions = read_gpt(image).partitions
    # Our images carry Flatcar's fixed UUIDs; pretend B was re-created with another one.
    from dataclasses import replace
    from uuid import UUID

    other = UUID("11111111-2222-4333-8444-555555555555")
    changed = tuple(replace(p, unique_guid=other) if p.number == 4 else p for p in partitions)
    assert booted_slot_from_cmdline(f"mount.usr=PARTUUID={other}", changed) is Slot.B


# ---------------------------------------------------------------------------- lsblk

LSBLK_LIST = json.dumps(
    {
        "blockdevices": [
            {"name": "sr0", "pkname": None, "partlabel": None, "partuuid": None},
            {"name": "vda", "pkname": None, "partlabel": None, "partuuid": None},
            {"name": "vda1", "pkname": "vda", "partlabel": "EFI-SYSTEM", "partuuid": "x"},
            {"name": "vda3", "pkname": "vda", "partlabel": "USR-A", "partuuid": str(USR_A_UUID)},
            {"name": "vda4", "pkname": "vda", "partlabel": "USR-B", "partuuid": str(USR_B_UUID)},
            {"name": "vda9", "pkname": "vda", "partlabel": "ROOT", "partuuid": None},
        ]
    }
)


def _disk_tree(name: str, prefix: str, uuid_a: str, uuid_b: str) -> dict[str, object]:
    # The tree form (lsblk -J without -l); children without pkname, as some versions print.
    return {
        "name": name,
        "partlabel": None,
        "children": [
            {"name": f"{prefix}3", "partlabel": "USR-A", "partuuid": uuid_a},
            {"name": f"{prefix}4", "partlabel": "USR-B", "partuuid": uuid_b},
        ],
    }


def test_lsblk_list_output_names_the_slot_disk() -> None:
    assert slot_disk_from_lsblk(LSBLK_LIST) == "vda"


def test_lsblk_tree_output_names_the_slot_disk_by_nesting() -> None:
    tree = {"blockdevices": [_disk_tree("nvme0n1", "nvme0n1p", str(USR_A_UUID), str(USR_B_UUID))]}
    assert slot_disk_from_lsblk(json.dumps(tree)) == "nvme0n1"


def test_with_two_slot_disks_the_one_holding_the_booted_partition_wins() -> None:
    other_a, other_b = (
        "6f7a0000-0000-4000-8000-000000000001",
        "6f7a0000-0000-4000-8000-000000000002",
    )
    tree = {
        "blockdevices": [
            _disk_tree("sda", "sda", other_a, other_b),
            _disk_tree("vda", "vda", str(USR_A_UUID), str(USR_B_UUID)),
        ]
    }
    assert slot_disk_from_lsblk(json.dumps(tree), USR_B_UUID) == "vda"
    with pytest.raises(SlotDiskNotFoundError, match="several disks"):
        slot_disk_from_lsblk(json.dumps(tree), None)


def test_two_copies_of_one_image_cannot_be_told_apart() -> None:
    # Flatcar's USR partitions have fixed UUIDs, so a second disk written from the same
    # image matches the booted PARTUUID too: refuse rather than guess.
    same = (str(USR_A_UUID), str(USR_B_UUID))
    tree = {"blockdevices": [_disk_tree("sda", "sda", *same), _disk_tree("vda", "vda", *same)]}
    with pytest.raises(SlotDiskNotFoundError, match="name the disk"):
        slot_disk_from_lsblk(json.dumps(tree), USR_A_UUID)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("not json", "not JSON"),
        ('{"devices": []}', "no 'blockdevices'"),
        (
            json.dumps({"blockdevices": [{"name": "vda3", "pkname": "vda", "partlabel": "USR-A"}]}),
            "no disk has both",
        ),
    ],
)
def test_lsblk_output_without_a_slot_disk_is_refused(output: str, message: str) -> None:
    with pytest.raises(SlotDiskNotFoundError, match=message):
        slot_disk_from_lsblk(output)


def test_partlabel_links_lead_to_the_parent_disk(tmp_path: Path) -> None:
    dev, sys_block = tmp_path / "dev", tmp_path / "sys" / "class" / "block"
    (dev / "disk" / "by-partlabel").mkdir(parents=True)
    sys_block.mkdir(parents=True)
    for number, label in ((3, "USR-A"), (4, "USR-B")):
        (dev / "disk" / "by-partlabel" / label).symlink_to(f"../../vda{number}")
        device_dir = tmp_path / "sys" / "devices" / "virtio1" / "block" / "vda" / f"vda{number}"
        device_dir.mkdir(parents=True)
        (sys_block / f"vda{number}").symlink_to(device_dir)
    assert slot_disk_from_partlabel_links(dev, sys_block) == dev / "vda"
    (dev / "disk" / "by-partlabel" / "USR-B").unlink()
    with pytest.raises(SlotDiskNotFoundError, match="USR-B does not exist"):
        slot_disk_from_partlabel_links(dev, sys_block)


# ----------------------------------------------------------------------- boot entries


def test_a_boot_entry_renders_to_the_type_1_format() -> None:
    entry = BootEntry(
        title="Wellcar 4459.2.1 (USR-B)",
        version="4459.2.1",
        linux="/EFI/wellcar/vmlinuz-b",
        initrds=("/EFI/wellcar/initrd-b",),
        options=("console=ttyS0", "acpi_osi=!Windows 2012", "mount.usr=PARTUUID=x"),
        sort_key="wellcar",
    )
    assert render_boot_entry(entry) == (
        "title Wellcar 4459.2.1 (USR-B)\n"
        "version 4459.2.1\n"
        "sort-key wellcar\n"
        "linux /EFI/wellcar/vmlinuz-b\n"
        "initrd /EFI/wellcar/initrd-b\n"
        'options console=ttyS0 acpi_osi="!Windows 2012" mount.usr=PARTUUID=x\n'
    )


@pytest.mark.parametrize("version", ["1.0\noptions init=/bin/sh", "1.0\r", "", "   "])
def test_a_version_from_the_server_cannot_smuggle_lines_into_an_entry(version: str) -> None:
    entry = BootEntry("Wellcar", version, "/EFI/wellcar/vmlinuz-a", (), ())
    with pytest.raises(BootEntryError):
        render_boot_entry(entry)


@pytest.mark.parametrize(
    ("left", "done", "name"),
    [(None, 0, "wellcar-b.conf"), (3, 0, "wellcar-b+3.conf"), (0, 1, "wellcar-b+0-1.conf")],
)
def test_entry_file_names_carry_systemd_boot_counters(
    left: int | None, done: int, name: str
) -> None:
    assert boot_entry_file_name("wellcar", Slot.B, left, done) == name
    assert parse_boot_entry_file_name("wellcar", name) == BootEntryName(Slot.B, left, done)


@pytest.mark.parametrize(
    "name", ["wellcar-c.conf", "other-a.conf", "wellcar-a.conf~", "wellcar-a+x.conf", "README"]
)
def test_other_files_in_the_entries_directory_are_not_ours(name: str) -> None:
    assert parse_boot_entry_file_name("wellcar", name) is None


def test_a_brand_with_a_dash_still_parses() -> None:
    assert parse_boot_entry_file_name("acme-os", "acme-os-a+2-1.conf") == BootEntryName(
        Slot.A, 2, 1
    )


def test_slot_options_replace_the_running_slots_usr_and_keep_the_rest() -> None:
    running = (
        "BOOT_IMAGE=/x", "console=tty0", "console=ttyS0,115200", "root=LABEL=ROOT",
        f"mount.usr=PARTUUID={USR_A_UUID}", "wellcar.slot=a", "usrhash=" + HASH_A,
    )  # fmt: skip
    plain = slot_kernel_options(Slot.B, USR_B_UUID, base_options=running)
    assert plain == (
        "console=tty0", "console=ttyS0,115200", "root=LABEL=ROOT",
        f"mount.usr=PARTUUID={USR_B_UUID}", "wellcar.slot=b",
    )  # fmt: skip
    verity = slot_kernel_options(Slot.B, USR_B_UUID, verity=VERITY_OF_B)
    assert verity == (
        f"verity.usr=PARTUUID={USR_B_UUID}", f"verity.usrhash={HASH_B}",
        f"verity.usroffset={3 * MiB}", "wellcar.slot=b",
    )  # fmt: skip


def test_slot_options_never_carry_the_running_slots_verity_over() -> None:
    """An image-built slot A boots with both verity spellings; none of it may reach B."""
    running = (
        "BOOT_IMAGE=/x", f"mount.usr=PARTUUID={USR_A_UUID}", "mount.usrfstype=erofs",
        "mount.usrflags=ro", f"usrhash={HASH_A}", f"systemd.verity_usr_data=PARTUUID={USR_A_UUID}",
        f"systemd.verity_usr_hash=PARTUUID={USR_A_UUID}",
        "systemd.verity_usr_options=hash-offset=8192", f"verity.usr=PARTUUID={USR_A_UUID}",
        f"verity.usrhash={HASH_A}", "verity.usroffset=8192", "root=PARTLABEL=ROOT", "rw",
        "console=ttyS0", "wellcar.slot=a",
    )  # fmt: skip
    for verity in (VERITY_OF_B, None):
        options = slot_kernel_options(Slot.B, USR_B_UUID, verity=verity, base_options=running)
        assert options[:3] == ("root=PARTLABEL=ROOT", "rw", "console=ttyS0")
        assert not any(HASH_A in w or str(USR_A_UUID) in w or "8192" in w for w in options)
        keys = [w.partition("=")[0] for w in options]
        assert len(keys) == len(set(keys))  # one of each: no stale duplicate to win
    options = slot_kernel_options(Slot.B, USR_B_UUID, verity=VERITY_OF_B, base_options=running)
    assert options[3:] == (
        f"verity.usr=PARTUUID={USR_B_UUID}", f"verity.usrhash={HASH_B}",
        f"verity.usroffset={3 * MiB}", "wellcar.slot=b",
    )  # fmt: skip


def test_slot_options_refuse_a_verity_that_bypassed_its_checks() -> None:
    forged = UsrVerity(HASH_B, 4096)
    object.__setattr__(forged, "root_hash", "abc\noptions init=/bin/sh")
    with pytest.raises(BootEntryError, match="root hash"):
        slot_kernel_options(Slot.B, USR_B_UUID, verity=forged)


def test_esp_entries_install_replace_bless_and_remove(tmp_path: Path) -> None:
    esp = EspBootFiles(tmp_path / "esp")
    esp.initrd_path(Slot.B).parent.mkdir(parents=True)
    esp.initrd_path(Slot.B).write_bytes(b"initrd")
    a_entry = esp.install(Slot.A, version="1.0.0", tries=1, partuuid=USR_A_UUID)
    esp.bless(Slot.A)
    first = esp.install(Slot.B, version="2.0.0", tries=3, partuuid=USR_B_UUID, verity=VERITY_OF_B)
    assert first.name == "wellcar-b+3.conf"
    text = first.read_text()
    assert "linux /EFI/wellcar/vmlinuz-b\n" in text
    assert "initrd /EFI/wellcar/initrd-b\n" in text  # only because the initrd exists
    assert f"verity.usrhash={HASH_B} verity.usroffset={3 * MiB} wellcar.slot=b\n" in text
    assert "initrd" not in (esp.entries_dir / "wellcar-a.conf").read_text()
    assert not a_entry.exists()  # blessed: renamed without the counter
    assert esp.tries_left(Slot.B) == 3 and esp.tries_left(Slot.A) is None
    assert esp.slots_by_usrhash() == {HASH_B: Slot.B}

    # systemd-boot counts a boot; a re-install replaces the counted entry, not slot A's.
    os.replace(first, esp.entries_dir / "wellcar-b+2-1.conf")
    second = esp.install(Slot.B, version="2.0.1", tries=1, partuuid=USR_B_UUID)
    assert sorted(p.name for p in esp.entries_dir.iterdir()) == [
        "wellcar-a.conf",
        "wellcar-b+1.conf",
    ]
    assert "version 2.0.1" in second.read_text()
    blessed = esp.bless(Slot.B)
    assert blessed == esp.entries_dir / "wellcar-b.conf" and blessed.exists()
    assert esp.bless(Slot.B) == blessed  # idempotent
    esp.remove(Slot.B)
    assert [p.name for p in esp.entries_dir.iterdir()] == ["wellcar-a.conf"]


# ------------------------------------------------------------------- GPT on a device


def _copy(image: Path, name: str) -> Path:
    target = image.with_name(name)
    shutil.copyfile(image, target)
    return target


def test_block_device_gpt_reads_what_the_image_reader_reads(image: Path) -> None:
    assert BlockDeviceGpt(image).read_gpt() == read_gpt(image)


def test_block_device_gpt_writes_byte_for_byte_what_the_image_writer_writes(image: Path) -> None:
    twin = _copy(image, "twin.img")
    updates = [
        AttributeUpdate(3, GptPrio(1, 0, True).apply_to(0)),
        AttributeUpdate(4, GptPrio(2, 1, False).apply_to(1 << 60)),
    ]
    result = BlockDeviceGpt(image).write_attributes(updates)
    write_partition_attributes(twin, updates)
    assert image.read_bytes() == twin.read_bytes()
    assert GptPrio.from_attributes(result.partition(4).attributes) == GptPrio(2, 1, False)
    assert result.partition(4).attributes >> 60 & 1  # bits outside gptprio are kept


def test_block_device_gpt_falls_back_to_the_backup_and_a_write_repairs(image: Path) -> None:
    with open(image, "r+b") as disk:
        disk.seek(512 + 24)  # the primary header's own LBA field: its CRC no longer matches
        disk.write(b"\x07")
    store = BlockDeviceGpt(image)
    damaged = store.read_gpt()
    assert damaged.source is HeaderCopy.BACKUP and damaged.primary_problem
    store.write_attributes([])
    repaired = read_gpt(image)
    assert not repaired.needs_repair and repaired.partitions == damaged.partitions


def test_block_device_gpt_refuses_a_disk_without_gpt(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 * MiB))
    with pytest.raises(NotGptError):
        BlockDeviceGpt(blank).read_gpt()


def test_a_slot_table_runs_on_the_block_device_store(image: Path, tmp_path: Path) -> None:
    table = SlotTable(BlockDeviceGpt(image), tmp_path / "slots.json", active=Slot.A)
    _verify_and_arm(table, Slot.B, "2.0.0")
    assert GptPrio.from_attributes(read_gpt(image).partition(4).attributes) == GptPrio(2, 1)


@pytest.fixture
def loop_device(image: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup")
    attach = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False
    )
    if attach.returncode != 0:
        pytest.skip(f"no loop device: {attach.stderr.strip()}")
    device = Path(attach.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False)


def test_on_a_real_block_device_the_gpt_is_read_and_written(loop_device: Path, image: Path) -> None:
    assert read_gpt(loop_device).partitions == read_gpt(image).partitions
    store = BlockDeviceGpt(loop_device)
    assert store.read_gpt().partitions == read_gpt(image).partitions
    store.write_attributes([AttributeUpdate(4, GptPrio(2, 1, False).apply_to(0))])
    assert GptPrio.from_attributes(read_gpt(image).partition(4).attributes) == GptPrio(2, 1)


# ------------------------------------------------------------ BlockDeviceSlotBackend


class FakeCommands:
    def __init__(self, outputs: dict[str, str] | None = None) -> None:
        self.outputs = outputs or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        return self.outputs.get(argv[0], "")


def _host(tmp_path: Path, cmdline: str, *, uefi: bool = True) -> HostPaths:
    """A host tree; ``uefi``: /sys/firmware/efi exists, as when UEFI booted the node."""
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel" / "random").mkdir(parents=True, exist_ok=True)
    (proc / "cmdline").write_text(cmdline + "\n")
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text(
        "8d3a0a46-2c5e-4f9a-9a57-2a1c2b4e7d10\n"
    )
    boot = tmp_path / "boot"
    (boot / "EFI").mkdir(parents=True, exist_ok=True)
    efi = tmp_path / "sys" / "firmware" / "efi"
    if uefi:
        efi.mkdir(parents=True, exist_ok=True)
    return HostPaths(proc=proc, dev=tmp_path / "dev", esp_candidates=(tmp_path / "efi", boot),
                     sys_firmware_efi=efi)  # fmt: skip


CMDLINE_A = (
    "BOOT_IMAGE=/EFI/wellcar/vmlinuz-a console=tty0 console=ttyS0,115200 root=LABEL=ROOT "
    f"mount.usr=PARTUUID={USR_A_UUID} wellcar.slot=a -- --init-flag"
)


def test_the_block_backend_finds_its_disk_with_lsblk(tmp_path: Path) -> None:
    commands = FakeCommands({"lsblk": LSBLK_LIST})
    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var", paths=_host(tmp_path, CMDLINE_A), run=commands
    )
    assert backend.disk() == tmp_path / "dev" / "vda"
    assert backend.payload_image() == tmp_path / "dev" / "vda"
    assert commands.calls == [["lsblk", "-J", "-l", "-o", "NAME,PKNAME,PARTLABEL,PARTUUID"]]


def test_the_block_backend_through_an_update_with_systemd_boot_counting(
    image: Path, tmp_path: Path
) -> None:
    paths = _host(tmp_path, CMDLINE_A)
    commands = FakeCommands()
    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var", disk=image, paths=paths, run=commands
    )
    esp = tmp_path / "boot"
    assert backend.booted_slot() is Slot.A
    assert backend.boot_id() == "8d3a0a46-2c5e-4f9a-9a57-2a1c2b4e7d10"
    assert backend.kernel_path(Slot.B) == esp / "EFI" / "wellcar" / "vmlinuz-b"
    region, partition = backend.usr_region(Slot.B), read_gpt(image).partition(4)
    assert (region.path, region.offset) == (image, partition.byte_offset)

    _verify_and_arm(backend.slot_table(), Slot.B, "2.0.0")
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1)
    entry = esp / "loader" / "entries" / "wellcar-b+1.conf"
    options = next(x for x in entry.read_text().splitlines() if x.startswith("options "))
    assert options.split()[1:] == [
        "console=tty0", "console=ttyS0,115200", "root=LABEL=ROOT",
        f"mount.usr=PARTUUID={USR_B_UUID}", "wellcar.slot=b",
    ]  # fmt: skip

    # systemd-boot boots the entry (+1 -> +0-1) and the kernel runs slot B.
    os.replace(entry, entry.with_name("wellcar-b+0-1.conf"))
    (paths.proc / "cmdline").write_text(
        CMDLINE_A.replace(str(USR_A_UUID), str(USR_B_UUID)).replace("slot=a", "slot=b")
    )
    # Reading the table never writes what the firmware trusts; reconcile() does, once.
    before = read_gpt(image)
    assert backend.slot_table().slot(Slot.B).prio == GptPrio(2, 1, False)
    assert read_gpt(image) == before
    backend.reconcile()
    table = backend.slot_table()
    assert table.active is Slot.B
    info = table.slot(Slot.B)
    assert info.prio == GptPrio(2, 0, False)  # the try systemd-boot used, now in the GPT too
    assert info.state is SlotState.BOOTABLE
    table.mark_good(Slot.B)
    backend.bless_boot_entry(Slot.B)
    assert (esp / "loader" / "entries" / "wellcar-b.conf").exists()

    backend.reboot()
    assert commands.calls == [["systemctl", "reboot"]]


def test_the_block_backend_through_an_update_with_grub_counting_on_bios(
    image: Path, tmp_path: Path
) -> None:
    """No /sys/firmware/efi: GRUB booted, and it counts in grubenv, not in file names."""
    paths = _host(tmp_path, CMDLINE_A, uefi=False)
    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var", disk=image, paths=paths, run=FakeCommands()
    )
    esp = tmp_path / "boot"
    assert not backend.booted_with_uefi()
    _verify_and_arm(backend.slot_table(), Slot.B, "2.0.0")
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1)
    assert "tries_left_b=1\n" in (esp / GRUBENV).read_text()
    assert "--id wellcar-b" in (esp / GRUB_CFG).read_text()

    # GRUB boots B: it saves the counter at 0 (the entry file keeps its +1).
    (esp / GRUBENV).write_bytes(render_grubenv({Slot.B: 0}))
    (paths.proc / "cmdline").write_text(
        CMDLINE_A.replace(str(USR_A_UUID), str(USR_B_UUID)).replace("slot=a", "slot=b")
    )
    assert backend.slot_table().slot(Slot.B).prio == GptPrio(2, 1, False)
    backend.reconcile()
    table = backend.slot_table()
    assert table.slot(Slot.B).prio == GptPrio(2, 0, False)  # GRUB's try, now in the GPT
    table.mark_good(Slot.B)
    backend.bless_boot_entry(Slot.B)
    assert (esp / "loader" / "entries" / "wellcar-b.conf").exists()
    assert "tries_left_b" not in (esp / GRUBENV).read_text()  # blessed: no counter


def test_on_uefi_reconcile_ignores_grubenv(image: Path, tmp_path: Path) -> None:
    paths = _host(tmp_path, CMDLINE_A)
    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var", disk=image, paths=paths, run=FakeCommands()
    )
    _verify_and_arm(backend.slot_table(), Slot.B, "2.0.0")
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1)
    (tmp_path / "boot" / GRUBENV).write_bytes(render_grubenv({Slot.B: 0}))
    backend.reconcile()  # systemd-boot's entry still says +1: no try was used
    assert backend.slot_table().slot(Slot.B).prio == GptPrio(2, 1, False)


def test_without_an_esp_the_block_backend_relies_on_the_gpt_alone(
    image: Path, tmp_path: Path
) -> None:
    paths = _host(tmp_path, f"mount.usr=PARTUUID={USR_A_UUID}")
    shutil.rmtree(tmp_path / "boot")
    backend = BlockDeviceSlotBackend(state_dir=tmp_path / "var", disk=image, paths=paths)
    assert backend.esp_files() is None
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1)  # nothing to write
    assert backend.slot_table().active is Slot.A


def test_a_usrhash_only_command_line_is_resolved_through_our_entries(
    image: Path, tmp_path: Path
) -> None:
    paths = _host(tmp_path, f"mount.usr=/dev/mapper/usr usrhash={HASH_B}")
    backend = BlockDeviceSlotBackend(state_dir=tmp_path / "var", disk=image, paths=paths)
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1, verity=VERITY_OF_B)
    assert backend.booted_slot() is Slot.B


def test_slots_by_usrhash_reads_both_spellings(tmp_path: Path) -> None:
    esp = EspBootFiles(tmp_path / "esp")
    esp.install(Slot.B, version="2.0.0", tries=1, partuuid=USR_B_UUID, verity=VERITY_OF_B)
    esp.entries_dir.joinpath("wellcar-a.conf").write_text(  # written by an older agent
        f"title Wellcar\nversion 1.0.0\nlinux /EFI/wellcar/vmlinuz-a\n"
        f"options mount.usr=/dev/mapper/usr verity.usr=PARTUUID={USR_A_UUID} "
        f"usrhash={HASH_A.upper()} wellcar.slot=a\n"
    )
    assert esp.slots_by_usrhash() == {HASH_B: Slot.B, HASH_A: Slot.A}


def test_the_block_backend_writes_the_payloads_verity_into_the_entry(
    image: Path, tmp_path: Path
) -> None:
    running = (
        f"BOOT_IMAGE=/EFI/wellcar/vmlinuz-a mount.usr=PARTUUID={USR_A_UUID} "
        f"mount.usrfstype=erofs usrhash={HASH_A} verity.usr=PARTUUID={USR_A_UUID} "
        f"verity.usrhash={HASH_A} verity.usroffset=8192 "
        "systemd.verity_usr_options=hash-offset=8192 root=PARTLABEL=ROOT console=ttyS0"
    )
    backend = BlockDeviceSlotBackend(
        state_dir=tmp_path / "var", disk=image, paths=_host(tmp_path, running)
    )
    _verify_and_arm(backend.slot_table(), Slot.B, "2.0.0")
    backend.write_boot_entry(Slot.B, version="2.0.0", tries=1, verity=VERITY_OF_B)
    entry = (tmp_path / "boot" / "loader" / "entries" / "wellcar-b+1.conf").read_text()
    options = next(x for x in entry.splitlines() if x.startswith("options "))
    assert options.split()[1:] == [
        "root=PARTLABEL=ROOT", "console=ttyS0", f"verity.usr=PARTUUID={USR_B_UUID}",
        f"verity.usrhash={HASH_B}", f"verity.usroffset={3 * MiB}", "wellcar.slot=b",
    ]  # fmt: skip
    # systemd-boot picks the newest good entry without a loader.conf default: by
    # sort-key, then version (descending).
    assert "sort-key wellcar\n" in entry and "version 2.0.0\n" in entry
