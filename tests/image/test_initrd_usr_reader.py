"""The initrd's shell reads a slot's /usr from the command line as wellcar.disk writes it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from uuid import UUID

import pytest

from wellcar.disk import Slot, UsrVerity
from wellcar.disk.boot_entries import IMAGE_BASE_OPTIONS, parse_slot_usr, slot_kernel_options
from wellcar.image.node_setup import render_mount_usr_script, usr_cmdline_reader

PARTUUID = UUID("E03DD35C-7C2D-4A47-B3FE-27F15780A57C")
VERITY = UsrVerity("ab" * 32, 1 << 20)


def read_in_shell(tmp_path: Path, cmdline: str) -> tuple[str, str, str]:
    """(usr, usrhash, usroffset) as /bin/sh sets them from ``cmdline``."""
    source = tmp_path / "cmdline"
    source.write_text(cmdline + "\n", encoding="utf-8")
    script = usr_cmdline_reader(str(source)) + '\nprintf "%s\\n" "$usr" "$usrhash" "$usroffset"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    usr, usrhash, usroffset = done.stdout.split("\n")[:3]
    return usr, usrhash, usroffset


@pytest.mark.parametrize("verity", [VERITY, None], ids=["verity", "plain"])
@pytest.mark.parametrize("slot", list(Slot))
def test_the_shell_reads_what_the_entry_writes(
    tmp_path: Path, slot: Slot, verity: UsrVerity | None
) -> None:
    cmdline = " ".join(
        slot_kernel_options(slot, PARTUUID, verity=verity, base_options=IMAGE_BASE_OPTIONS)
    )
    usr, usrhash, usroffset = read_in_shell(tmp_path, cmdline)
    parsed = parse_slot_usr(cmdline)
    assert usr.upper() == f"PARTUUID={parsed.partuuid}".upper()
    if verity is None:
        assert (usrhash, usroffset) == ("", "")
        assert parsed.verity is None
    else:
        assert parsed.verity == verity
        assert (usrhash, int(usroffset)) == (verity.root_hash, verity.hash_offset)


def test_the_verity_partition_wins_over_the_mounted_device(tmp_path: Path) -> None:
    cmdline = f"mount.usr=/dev/mapper/usr verity.usr=PARTUUID={PARTUUID} quiet"
    assert read_in_shell(tmp_path, cmdline)[0] == f"PARTUUID={PARTUUID}"
    assert parse_slot_usr(cmdline).partuuid == PARTUUID


def test_the_script_embeds_the_reader() -> None:
    script = render_mount_usr_script()
    assert usr_cmdline_reader() in script
    assert "{usr_cmdline_reader}" not in script
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
