"""The boot contract: entries and kernel command lines rendered and read back, and the same
text whether the image build or the agent writes a slot's entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.agent.esp_boot_files import EspBootFiles
from wellcar.disk import USR_A_UUID, USR_B_UUID, BootEntryError, Slot, UsrVerity, UsrVerityError
from wellcar.disk.boot_entries import (
    IMAGE_BASE_OPTIONS,
    LOADER_ENTRIES,
    BootEntry,
    entry_usrhash,
    esp_directories,
    parse_boot_entry,
    parse_slot_usr,
    render_boot_entry,
    slot_boot_entry,
    slot_boot_files,
    slot_kernel_options,
)
from wellcar.image.esp import SlotBoot, render_entry
from wellcar.image.settings import resolve_settings

HASH = "ab" * 32


@pytest.mark.parametrize(
    ("root_hash", "offset", "message"),
    [
        ("A" * 64, 4096, "not 64 lowercase hex digits"),
        ("a" * 63, 4096, "not 64 lowercase hex digits"),
        ("g" * 64, 4096, "not 64 lowercase hex digits"),
        ("a" * 64, -4096, "not a positive multiple of 4096"),
        ("a" * 64, 100, "not a positive multiple of 4096"),
        ("a" * 64, 1 << 64, "not a positive multiple of 4096"),
    ],
)
def test_usr_verity_checks_its_values(root_hash: str, offset: int, message: str) -> None:
    with pytest.raises(UsrVerityError, match=message):
        UsrVerity(root_hash, offset)


@pytest.mark.parametrize("verity", [None, UsrVerity(HASH, 3 << 20)])
@pytest.mark.parametrize("slot", list(Slot))
def test_a_slots_command_line_reads_back_as_written(slot: Slot, verity: UsrVerity | None) -> None:
    partuuid = slot.partition_uuid
    words = slot_kernel_options(slot, partuuid, verity=verity, base_options=IMAGE_BASE_OPTIONS)
    assert words[: len(IMAGE_BASE_OPTIONS)] == IMAGE_BASE_OPTIONS
    usr = parse_slot_usr(" ".join(words))
    assert (usr.partuuid, usr.verity, usr.slot_hint) == (partuuid, verity, slot)


def test_a_half_verity_command_line_is_an_error() -> None:
    with pytest.raises(BootEntryError, match="both are needed"):
        parse_slot_usr(f"verity.usr=PARTUUID={USR_B_UUID} verity.usrhash={HASH}")
    with pytest.raises(UsrVerityError):
        parse_slot_usr(f"verity.usrhash={HASH[:10]} verity.usroffset=4096")


def test_an_entry_reads_back_as_written() -> None:
    entry = slot_boot_entry(
        brand="acme",
        title="Acme OS",
        version="1.2.3",
        slot=Slot.B,
        partuuid=USR_B_UUID,
        verity=UsrVerity(HASH, 8192),
        base_options=("console=ttyS0", "acpi_osi=!Windows 2012"),
        with_initrd=True,
    )
    assert entry.linux == "/" + slot_boot_files("acme", Slot.B).kernel == "/EFI/acme/vmlinuz-b"
    assert entry.initrds == ("/EFI/acme/initrd-b",)
    text = render_boot_entry(entry)
    assert parse_boot_entry(text) == entry
    assert entry_usrhash(text) == HASH
    assert entry_usrhash(render_boot_entry(BootEntry("t", "1", "/k", (), ("quiet",)))) is None


def test_an_entry_without_a_kernel_is_refused() -> None:
    with pytest.raises(BootEntryError, match="no linux line"):
        parse_boot_entry("title Wellcar\noptions quiet\n")


def test_the_image_and_the_agent_write_the_same_entry(tmp_path: Path) -> None:
    """One writer: slot A's entry from the image build is byte for byte what the agent
    writes when it re-installs slot A with the image's command line."""
    settings = resolve_settings(None, {"version": "4893.0.0"})
    verity = UsrVerity(HASH, 1 << 20)
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    image_text = render_entry(settings, SlotBoot(Slot.A, kernel, kernel, USR_A_UUID, verity))

    esp = EspBootFiles(tmp_path / "esp", settings.brand.id, settings.brand.pretty_name)
    esp.initrd_path(Slot.A).parent.mkdir(parents=True)
    esp.initrd_path(Slot.A).write_bytes(b"initrd")
    esp.install(Slot.A, version="4893.0.0", tries=1, partuuid=USR_A_UUID, verity=verity,
                base_options=IMAGE_BASE_OPTIONS)  # fmt: skip
    esp.bless(Slot.A)
    agent_text = (esp.esp / LOADER_ENTRIES / f"{settings.brand.id}-a.conf").read_text()
    assert image_text == agent_text
    assert esp_directories(settings.brand.id)[-1] == LOADER_ENTRIES
