"""GRUB's side of the boot contract: grub.cfg rendered from the entries, grubenv counters,
and the agent keeping both in step with the entries on an ESP."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.agent.esp_boot_files import EspBootFiles
from wellcar.disk import USR_A_UUID, USR_B_UUID, BootEntryError, Slot, UsrVerity
from wellcar.disk.boot_entries import (
    GRUB_CFG,
    GRUB_MAX_TRIES,
    GRUBENV,
    GRUBENV_SIZE,
    IMAGE_BASE_OPTIONS,
    BootEntry,
    SlotEntry,
    boot_entry_file_name,
    grub_cfg_for_entry_files,
    grub_quote,
    grubenv_tries_left,
    parse_grubenv,
    render_boot_entry,
    render_grub_cfg,
    render_grubenv,
    slot_boot_entry,
    systemd_boot_order,
)

VERITY = UsrVerity("ab" * 32, 4096)


def slot_entry(slot: Slot, version: str, tries: int | None = None) -> SlotEntry:
    entry = slot_boot_entry(brand="wellcar", title="Wellcar Linux", version=version, slot=slot,
                            partuuid=slot.partition_uuid, verity=VERITY,
                            base_options=IMAGE_BASE_OPTIONS, with_initrd=True)  # fmt: skip
    return SlotEntry(slot, boot_entry_file_name("wellcar", slot, tries), entry)


def script_check(tmp_path: Path, text: str) -> None:
    if shutil.which("grub-script-check") is None:
        return  # grub-common is not installed: the rendering tests still ran
    path = tmp_path / "grub.cfg"
    path.write_text(text)
    done = subprocess.run(["grub-script-check", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def menu_ids(config: str) -> list[str]:
    return [line.split("--id ")[1].split()[0] for line in config.splitlines()
            if line.startswith("menuentry ")]  # fmt: skip


def test_newest_version_first_as_systemd_boot_orders_them() -> None:
    a, b = slot_entry(Slot.A, "4893.0.10"), slot_entry(Slot.B, "4893.0.9")
    assert [e.slot for e in systemd_boot_order("wellcar", [b, a])] == [Slot.A, Slot.B]
    older_a = slot_entry(Slot.A, "4893.0.8")
    assert [e.slot for e in systemd_boot_order("wellcar", [older_a, b])] == [Slot.B, Slot.A]
    # Equal versions: the id, descending (wellcar-b before wellcar-a).
    same = [slot_entry(Slot.A, "1.0.0"), slot_entry(Slot.B, "1.0.0", 1)]
    assert [e.slot for e in systemd_boot_order("wellcar", same)] == [Slot.B, Slot.A]
    # An entry with a sort key goes before one without.
    bare = SlotEntry(Slot.B, "wellcar-b.conf", BootEntry("Old", "9.0.0", "/k", (), ()))
    assert [e.slot for e in systemd_boot_order("wellcar", [bare, older_a])] == [Slot.A, Slot.B]


def test_both_slots_render_counted_and_in_order(tmp_path: Path) -> None:
    a, b = slot_entry(Slot.A, "4893.0.0"), slot_entry(Slot.B, "4893.0.1", 1)
    config = render_grub_cfg("wellcar", [a, b])
    script_check(tmp_path, config)
    assert menu_ids(config) == ["wellcar-b", "wellcar-a"]
    lines = config.splitlines()
    assert "load_env --file $prefix/grubenv tries_left_b tries_left_a" in lines
    # The first entry not out of tries is the default, the first of all when every one is.
    picks = [i for i, line in enumerate(lines) if "!= 0 ]; then set default=" in line]
    assert ["wellcar-b" in lines[picks[0]], "wellcar-a" in lines[picks[1]]] == [True, True]
    assert 'if [ -z "$default" ]; then set default=wellcar-b; fi' in lines
    # Each value down by one and saved, for every value the agent may grant.
    for slot in ("a", "b"):
        for left in range(1, GRUB_MAX_TRIES + 1):
            at = lines.index(f'  {"if" if left == GRUB_MAX_TRIES else "elif"} '
                             f'[ "$tries_left_{slot}" = {left} ]; then', 0)  # fmt: skip
            assert lines[at + 1 : at + 3] == [
                f"    set tries_left_{slot}={left - 1}",
                f"    save_env --file $prefix/grubenv tries_left_{slot}",
            ]
    assert 'if [ "$default" = wellcar-b ]; then set fallback="wellcar-a"; fi' in lines
    # The kernel command line is the entry's, word for word.
    linux = next(line for line in lines if line.startswith("  linux /EFI/wellcar/vmlinuz-b "))
    assert linux.split()[2:] == list(b.entry.options)
    assert "  initrd /EFI/wellcar/initrd-b" in lines


def test_one_slot_has_no_fallback(tmp_path: Path) -> None:
    config = render_grub_cfg("wellcar", [slot_entry(Slot.A, "1.0.0")])
    script_check(tmp_path, config)
    assert menu_ids(config) == ["wellcar-a"] and "fallback" not in config
    with pytest.raises(BootEntryError, match="at least one"):
        render_grub_cfg("wellcar", [])
    with pytest.raises(BootEntryError, match="one entry per slot"):
        render_grub_cfg("wellcar", [slot_entry(Slot.A, "1"), slot_entry(Slot.A, "2", 1)])


@pytest.mark.parametrize(
    "word", ["plain=1", "a=it's", "x=$prefix", "semi=a;b", 'q="two words"', "brace={x}", "é=ü"]
)
def test_words_survive_grub_quoting(tmp_path: Path, word: str) -> None:
    entry = slot_entry(Slot.A, "1.0.0")
    tricky = SlotEntry(Slot.A, entry.file_name,
                       BootEntry("T 'x' $y", "1", "/k", (), (word,)))  # fmt: skip
    config = render_grub_cfg("wellcar", [tricky])
    script_check(tmp_path, config)
    quoted = grub_quote(word)
    assert f"  linux /k {quoted}" in config.splitlines()
    if "'" not in word:
        assert quoted in (word, f"'{word}'")


def test_control_characters_are_refused_as_in_entries() -> None:
    bad = SlotEntry(Slot.A, "wellcar-a.conf",
                    BootEntry("Wellcar\nset default=x", "1", "/k", (), ()))  # fmt: skip
    with pytest.raises(BootEntryError, match="control characters"):
        render_grub_cfg("wellcar", [bad])


def test_grubenv_counters_round_trip_in_one_block() -> None:
    data = render_grubenv({Slot.B: 1})
    assert len(data) == GRUBENV_SIZE and data.startswith(b"# GRUB Environment Block\n")
    assert grubenv_tries_left(parse_grubenv(data)) == {Slot.A: None, Slot.B: 1}
    assert grubenv_tries_left(parse_grubenv(render_grubenv({}))) == {Slot.A: None, Slot.B: None}
    assert grubenv_tries_left(parse_grubenv(render_grubenv({Slot.A: 0}))) == {
        Slot.A: 0,
        Slot.B: None,
    }
    with pytest.raises(BootEntryError, match=f"at most {GRUB_MAX_TRIES}"):
        render_grubenv({Slot.A: GRUB_MAX_TRIES + 1})


def test_a_grubenv_grub_would_not_read_is_an_error_and_odd_values_no_counter() -> None:
    with pytest.raises(BootEntryError, match="not a GRUB environment block"):
        parse_grubenv(b"tries_left_a=1\n")
    with pytest.raises(BootEntryError, match="not a GRUB environment block"):
        parse_grubenv(render_grubenv({})[:-1])
    assert grubenv_tries_left({"tries_left_a": "x", "tries_left_b": "99"}) == {
        Slot.A: None,
        Slot.B: None,
    }


def test_the_config_from_an_entries_directory_skips_others_and_broken_ones() -> None:
    a = slot_entry(Slot.A, "1.0.0")
    files = {
        "wellcar-a.conf": render_boot_entry(a.entry),
        "wellcar-b+1.conf": "title only\n",  # no linux line: neither loader boots it
        "other-a.conf": "title Other\nlinux /vmlinuz\n",
    }
    config = grub_cfg_for_entry_files("wellcar", files)
    assert config is not None and menu_ids(config) == ["wellcar-a"]
    assert grub_cfg_for_entry_files("wellcar", {"other-a.conf": files["other-a.conf"]}) is None


def test_the_agent_keeps_grub_in_step_with_the_entries(tmp_path: Path) -> None:
    esp = EspBootFiles(tmp_path / "esp")
    esp.install(Slot.A, version="1.0.0", tries=1, partuuid=USR_A_UUID, verity=VERITY)
    esp.bless(Slot.A)
    assert esp.grub_counters() == {Slot.A: None, Slot.B: None}
    esp.install(Slot.B, version="2.0.0", tries=1, partuuid=USR_B_UUID, verity=VERITY)
    config = (tmp_path / "esp" / GRUB_CFG).read_text()
    script_check(tmp_path, config)
    assert menu_ids(config) == ["wellcar-b", "wellcar-a"]
    assert esp.grub_counters() == {Slot.A: None, Slot.B: 1}
    # GRUB used B's try; blessing drops the counter, keeping A's state.
    (tmp_path / "esp" / GRUBENV).write_bytes(render_grubenv({Slot.B: 0}))
    assert esp.grub_tries_left(Slot.B) == 0
    esp.bless(Slot.B)
    assert esp.grub_counters() == {Slot.A: None, Slot.B: None}
    # A new A with a counter, then removed (it failed): GRUB's config and counter follow.
    esp.install(Slot.A, version="3.0.0", tries=1, partuuid=USR_A_UUID, verity=VERITY)
    assert menu_ids((tmp_path / "esp" / GRUB_CFG).read_text()) == ["wellcar-a", "wellcar-b"]
    esp.remove(Slot.A)
    assert menu_ids((tmp_path / "esp" / GRUB_CFG).read_text()) == ["wellcar-b"]
    assert esp.grub_counters() == {Slot.A: None, Slot.B: None}


def test_a_corrupt_grubenv_on_the_esp_is_rewritten_not_fatal(tmp_path: Path) -> None:
    esp = EspBootFiles(tmp_path / "esp")
    (tmp_path / "esp" / "grub").mkdir(parents=True)
    (tmp_path / "esp" / GRUBENV).write_text("garbage")
    assert esp.grub_counters() == {Slot.A: None, Slot.B: None}
    esp.install(Slot.B, version="2.0.0", tries=1, partuuid=USR_B_UUID, verity=VERITY)
    assert parse_grubenv((tmp_path / "esp" / GRUBENV).read_bytes()) == {"tries_left_b": "1"}
