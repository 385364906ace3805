"""kernelArguments: validated against the boot contract, applied to the slots' entries on
the ESP (counters and other vendors' entries untouched), and a reboot asked for once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellcar.disk import USR_A_UUID, USR_B_UUID, BootEntryError, Slot, UsrVerity
from wellcar.disk.boot_entries import (
    IMAGE_BASE_OPTIONS,
    LOADER_ENTRIES,
    apply_kernel_arguments,
    boot_entry_file_name,
    parse_boot_entry,
    parse_slot_usr,
    render_boot_entry,
    slot_boot_entry,
)
from wellcar.ignition.errors import ApplyError
from wellcar.ignition.firstboot import FirstBootOptions, first_boot
from wellcar.ignition.kernel_arguments import set_kernel_arguments
from wellcar.ignition.parse import check_config
from wellcar.ignition.sources import SourceLocations
from wellcar.ignition.types import KernelArguments

VERITY = UsrVerity("cd" * 32, 1 << 20)
FLATCAR_DOCS = KernelArguments(should_exist=("nosmt", "mitigations=auto,nosmt"),
                               should_not_exist=("console=ttyS0",))  # fmt: skip


def config_with(arguments: dict[str, list[str]]) -> bytes:
    return json.dumps({"ignition": {"version": "3.3.0"}, "kernelArguments": arguments}).encode()


def test_flatcars_documented_arguments_validate() -> None:
    report = check_config(config_with({"shouldExist": ["nosmt", "mitigations=auto,nosmt"]}))
    assert not report.has_errors, str(report)


@pytest.mark.parametrize(
    ("arguments", "path", "words"),
    [
        ({"shouldNotExist": ["verity.usrhash"]}, "shouldNotExist[0]", "boot contract"),
        ({"shouldExist": ["root=/dev/sda9"]}, "shouldExist[0]", "boot contract"),
        ({"shouldExist": ["wellcar.slot=b"]}, "shouldExist[0]", "boot contract"),
        ({"shouldExist": ["a b"]}, "shouldExist[0]", "white space"),
        ({"shouldExist": ["nosmt"], "shouldNotExist": ["nosmt"]}, "kernelArguments", "both"),
    ],
)
def test_arguments_the_contract_owns_are_refused(
    arguments: dict[str, list[str]], path: str, words: str
) -> None:
    report = check_config(config_with(arguments))
    assert report.has_errors
    assert any(path in str(e) and words in str(e) for e in report.errors), str(report)


def test_the_pure_rule_is_ignitions() -> None:
    words = ("quiet", "console=ttyS0", "console=tty0", "nosmt")
    assert apply_kernel_arguments(words, should_exist=("nosmt", "a=1"),
                                  should_not_exist=("console=ttyS0",)) == (
        "quiet", "console=tty0", "nosmt", "a=1")  # fmt: skip
    with pytest.raises(BootEntryError, match="boot contract"):
        apply_kernel_arguments(words, should_not_exist=("verity.usr",))


def make_esp(tmp_path: Path) -> Path:
    esp = tmp_path / "esp"
    entries = esp / LOADER_ENTRIES
    entries.mkdir(parents=True)
    for slot, uuid, tries in ((Slot.A, USR_A_UUID, None), (Slot.B, USR_B_UUID, 2)):
        entry = slot_boot_entry(brand="wellcar", title="Wellcar", version="1.0.0", slot=slot,
                                partuuid=uuid, verity=VERITY, base_options=IMAGE_BASE_OPTIONS,
                                with_initrd=True)  # fmt: skip
        (entries / boot_entry_file_name("wellcar", slot, tries)).write_text(
            render_boot_entry(entry)
        )
    (entries / "other-a.conf").write_text("title Other\nlinux /vmlinuz\noptions console=ttyS0\n")
    return esp


def test_both_slots_entries_get_the_arguments_and_keep_their_usr(tmp_path: Path) -> None:
    esp = make_esp(tmp_path)
    changed = set_kernel_arguments(FLATCAR_DOCS, esp, "wellcar")
    assert sorted(p.name for p in changed) == ["wellcar-a.conf", "wellcar-b+2.conf"]
    for path, slot in zip(sorted(changed), (Slot.A, Slot.B), strict=True):
        entry = parse_boot_entry(path.read_text())
        assert entry.options[-2:] == ("nosmt", "mitigations=auto,nosmt")
        assert "console=ttyS0" not in entry.options
        usr = parse_slot_usr(" ".join(entry.options))
        assert (usr.verity, usr.slot_hint) == (VERITY, slot)
    assert "console=ttyS0" in (esp / LOADER_ENTRIES / "other-a.conf").read_text()
    assert set_kernel_arguments(FLATCAR_DOCS, esp, "wellcar") == ()  # already as wanted


def test_grub_cfg_follows_the_entries_when_the_esp_has_grub(tmp_path: Path) -> None:
    """A BIOS machine boots GRUB from grub/grub.cfg: it gets the same arguments."""
    esp = make_esp(tmp_path)
    (esp / "grub").mkdir()
    set_kernel_arguments(FLATCAR_DOCS, esp, "wellcar")
    linux = [w for w in (esp / "grub" / "grub.cfg").read_text().splitlines() if "linux " in w]
    assert len(linux) == 2 and all(w.endswith("nosmt mitigations=auto,nosmt") for w in linux)
    assert not (make_esp(tmp_path / "uefi-only") / "grub").exists()


def test_without_entries_nothing_is_written_and_the_error_says_where(tmp_path: Path) -> None:
    with pytest.raises(ApplyError, match=r"no wellcar boot entries .* is the ESP mounted"):
        set_kernel_arguments(FLATCAR_DOCS, tmp_path / "nothing", "wellcar")


def test_a_broken_entry_leaves_every_entry_as_it_was(tmp_path: Path) -> None:
    esp = make_esp(tmp_path)
    (esp / LOADER_ENTRIES / "wellcar-b+2.conf").write_text("options quiet\n")  # no linux
    before = (esp / LOADER_ENTRIES / "wellcar-a.conf").read_text()
    with pytest.raises(ApplyError, match="wellcar-b"):
        set_kernel_arguments(FLATCAR_DOCS, esp, "wellcar")
    assert (esp / LOADER_ENTRIES / "wellcar-a.conf").read_text() == before


def test_first_boot_sets_them_and_asks_for_one_reboot(tmp_path: Path) -> None:
    root, esp = tmp_path / "root", make_esp(tmp_path)
    (root / "etc").mkdir(parents=True)
    (root / "etc/.wellcar-first-boot").touch()
    (tmp_path / "oem").mkdir()
    (tmp_path / "oem/config.ign").write_bytes(config_with({"shouldExist": ["nosmt"]}))
    (tmp_path / "cmdline").write_text("")
    options = FirstBootOptions(
        root=root,
        sources=SourceLocations(
            fw_cfg_dir=tmp_path / "fw_cfg", oem_dir=tmp_path / "oem", cmdline=tmp_path / "cmdline"
        ),
        change_owner=False,
        esp=esp,
    )
    result = first_boot(options)
    assert result.reboot_required
    assert "nosmt" in (esp / LOADER_ENTRIES / "wellcar-a.conf").read_text()
    assert not (root / "etc/.wellcar-first-boot").exists()
