"""`wellcar disk ...` on image files, through Typer's CliRunner."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from wellcar.cli.disk_commands import disk_app
from wellcar.disk import (
    AttributeUpdate,
    GptPrio,
    HeaderCopy,
    Slot,
    SlotTable,
    read_gpt,
    write_partition_attributes,
)
from wellcar.disk.sizes import GiB, MiB

SMALL = ["--usr-size", "4M", "--esp-size", "2M"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(disk_app, list(args), env={"COLUMNS": "200"})


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def fails(*args: str) -> str:
    """The one error line of a command that must fail as a user mistake."""
    result = invoke(*args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    ok("create", str(path), *SMALL, "--seed", "cli")
    return path


# ---------------------------------------------------------------------------- create


def test_create_defaults(tmp_path: Path) -> None:
    path = tmp_path / "d.img"
    out = ok("create", str(path)).stdout
    assert "USR-A" in out and "P1 T0 S1" in out and "flatcar-usr" in out
    disk = read_gpt(path)
    assert disk.partition(1).byte_size == 64 * MiB
    assert disk.partition(3).byte_size == disk.partition(4).byte_size == 256 * MiB
    assert disk.partition(9).byte_size == 128 * MiB


def test_create_with_size_grows_root(tmp_path: Path) -> None:
    created = ok_json("create", str(tmp_path / "d.img"), *SMALL, "--size", "1G")
    assert created["size"] == 1 * GiB
    root = created["partitions"][-1]
    assert root["label"] == "ROOT" and root["start"] + root["size"] > 1 * GiB - 2 * MiB
    fixed = ok_json("create", str(tmp_path / "e.img"), "--size", "1G", "--root-size", "8M")
    assert fixed["partitions"][-1]["size"] == 8 * MiB


def test_create_flatcar_sizes(tmp_path: Path) -> None:
    created = ok_json("create", str(tmp_path / "f.img"), "--flatcar-sizes")
    sizes = {p["number"]: p["size"] // 512 for p in created["partitions"]}
    assert sizes == {1: 2097152, 2: 4096, 3: 4194304, 4: 4194304, 6: 2097152, 7: 131072,
                     9: 3653632}  # fmt: skip


def test_create_seed_is_reproducible(tmp_path: Path) -> None:
    first = ok_json("create", str(tmp_path / "1.img"), *SMALL, "--seed", "x")
    second = ok_json("create", str(tmp_path / "2.img"), *SMALL, "--seed", "x")
    assert first["disk_guid"] == second["disk_guid"]
    assert [p["uuid"] for p in first["partitions"]] == [p["uuid"] for p in second["partitions"]]


def test_create_json_describes_partitions(image: Path) -> None:
    created = ok_json("create", str(image), *SMALL, "--seed", "cli", "--force")
    usr_a = next(p for p in created["partitions"] if p["number"] == 3)
    assert usr_a == {
        "number": 3, "label": "USR-A", "type": "flatcar-usr",
        "type_guid": "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
        "uuid": "7130C94A-213A-4E5A-8E26-6CCE9662F132",
        "first_lba": 10240, "last_lba": 18431, "start": 5 * MiB, "size": 4 * MiB,
        "attributes": "0x0101000000000000", "legacy_bios_bootable": False,
        "gptprio": {"priority": 1, "tries": 0, "successful": True},
    }  # fmt: skip
    esp = created["partitions"][0]
    assert esp["legacy_bios_bootable"] and esp["gptprio"] is None


def test_create_force_drops_the_old_slot_status(image: Path) -> None:
    ok("next", str(image))
    sidecar = Path(f"{image}.slots.json")
    assert sidecar.exists()
    ok("create", str(image), *SMALL, "--force")
    assert not sidecar.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "12Q"], "error: --size: size '12Q' is not understood"),
        (["--usr-size", "1.5M"], "usr size 1572864 bytes is not a positive multiple of 1 MiB"),
        (["--size", "10M"], "too small for this layout"),
        (["--root-size", "zero"], "error: --root-size: size 'zero' is not understood"),
    ],
)
def test_create_mistakes(tmp_path: Path, args: list[str], message: str) -> None:
    line = fails("create", str(tmp_path / "x.img"), *args)
    assert message in line
    assert not (tmp_path / "x.img").exists()


def test_create_refuses_existing_file(image: Path) -> None:
    assert "already exists (use --force" in fails("create", str(image))


# ------------------------------------------------------------------------------ show


def test_show_table(image: Path) -> None:
    out = ok("show", str(image)).stdout
    assert "read from the primary header" in out
    for text in ("EFI-SYSTEM", "BIOS-BOOT", "OEM-CONFIG", "flatcar-resize", "0x0000000000000004",
                 "7130C94A-213A-4E5A-8E26-6CCE9662F132", "update target", "running"):  # fmt: skip
        assert text in out, text
    assert [line.split("│")[3].strip() for line in out.splitlines() if "│ 3 USR-A" in line or
            "│ 4 USR-B" in line] == ["good", "empty"]  # fmt: skip


def test_show_json(image: Path) -> None:
    shown = ok_json("show", str(image))
    assert shown["header"] == "primary" and not shown["needs_repair"]
    assert (shown["active_slot"], shown["update_target"]) == ("A", "B")
    assert [(s["slot"], s["state"], s["priority"], s["successful"]) for s in shown["slots"]] == [
        ("A", "good", 1, True), ("B", "empty", 0, False)
    ]  # fmt: skip
    assert shown["slots_problem"] is None


def test_show_warns_about_a_damaged_copy(image: Path) -> None:
    with open(image, "r+b") as f:
        f.seek(512 + 60)
        f.write(b"\0\0")
    result = ok("show", str(image))
    assert "read from the backup header" in result.stdout
    assert "warning: primary GPT copy: header CRC mismatch" in result.stderr


@pytest.mark.skipif(not shutil.which("sfdisk"), reason="needs sfdisk")
def test_show_any_gpt_disk(tmp_path: Path) -> None:
    path = tmp_path / "plain.img"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
    subprocess.run(["sfdisk", "-q", "-X", "gpt", str(path)], input="start=2048, size=4096\n",
                   text=True, check=True, timeout=30)  # fmt: skip
    shown = ok_json("show", str(path))
    assert shown["slots"] == [] and "no partition 3" in shown["slots_problem"]
    assert "no A/B slots" in ok("show", str(path)).stdout


def test_show_mistakes(tmp_path: Path) -> None:
    assert fails("show", str(tmp_path / "nope.img")).endswith("nope.img: no such file")
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MiB))
    assert "is not a GPT disk" in fails("show", str(blank))
    assert "is a directory" in fails("show", str(tmp_path))


def test_show_both_copies_corrupt(image: Path) -> None:
    size = image.stat().st_size
    with open(image, "r+b") as f:
        for offset in (512 + 60, size - 512 + 60):
            f.seek(offset)
            f.write(b"\0\0")
    assert "both GPT copies are corrupt" in fails("show", str(image))


# -------------------------------------------------------------------- slot commands


def make_b_bootable(image: Path) -> None:
    slots = SlotTable.for_image(image)
    slots.begin_write(Slot.B)
    slots.mark_written(Slot.B)
    slots.mark_verified(Slot.B, "4459.2.1", 4096, "cd" * 32)
    slots.make_bootable(Slot.B)


def usr_prio(image: Path, number: int) -> GptPrio:
    return GptPrio.from_attributes(read_gpt(image).partition(number).attributes)


def test_next_boots_and_uses_a_try(image: Path) -> None:
    out = ok("next", str(image)).stdout
    assert "boots slot A (USR-A, partition 3): P1 T0 S1 → P1 T0 S1 (successful, no try used)" in out
    assert "mount.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132" in out
    make_b_bootable(image)
    booted = ok_json("next", str(image))
    assert booted == {
        "slot": "B", "partition": 4, "label": "USR-B",
        "before": {"priority": 2, "tries": 1, "successful": False},
        "after": {"priority": 2, "tries": 0, "successful": False},
        "tries_used": True, "cmdline": "mount.usr=PARTUUID=e03dd35c-7c2d-4a47-b3fe-27f15780a57c",
    }  # fmt: skip
    assert usr_prio(image, 4) == GptPrio(2, 0, False)
    assert ok_json("show", str(image))["active_slot"] == "B"


def test_update_then_mark_good(image: Path) -> None:
    make_b_bootable(image)
    ok("next", str(image))
    result = ok("mark-good", str(image))  # the running slot, B
    assert "slot B marked good: good (P2 T0 S1)" in result.stdout
    assert usr_prio(image, 4) == GptPrio(2, 0, True)
    assert ok_json("next", str(image))["slot"] == "B"


def test_automatic_rollback_then_mark_bad(image: Path) -> None:
    make_b_bootable(image)
    assert ok_json("next", str(image))["slot"] == "B"
    assert ok_json("next", str(image))["slot"] == "A"  # B was never marked good
    shown = ok_json("show", str(image))
    assert [s["state"] for s in shown["slots"]] == ["good", "bad"]
    marked = ok_json("mark-bad", str(image), "--slot", "B")
    assert (marked["state"], marked["priority"], marked["phase"]) == ("bad", 0, "bad")


def test_manual_rollback_with_prioritize(image: Path) -> None:
    make_b_bootable(image)
    ok("next", str(image))
    ok("mark-good", str(image))
    out = ok("prioritize", str(image), "--slot", "a").stdout
    assert "slot A is first in the boot order: good (P2 T0 S1)" in out
    assert usr_prio(image, 4) == GptPrio(1, 0, True)
    assert ok_json("next", str(image))["slot"] == "A"


def test_slot_command_mistakes(image: Path) -> None:
    assert "--slot 'C': use A or B" in fails("prioritize", str(image), "--slot", "C")
    assert "--active 'X': use A or B" in fails("show", str(image), "--active", "X")
    assert "would leave nothing to boot" in fails("mark-bad", str(image))
    assert "priority 0 and never boots" in fails("mark-good", str(image), "--slot", "B")
    assert "would skip it" in fails("prioritize", str(image), "--slot", "B")
    assert usr_prio(image, 3) == GptPrio(1, 0, True)  # nothing was changed


def test_next_with_nothing_bootable(image: Path) -> None:
    write_partition_attributes(image, [AttributeUpdate(3, 0)])
    assert "no /usr partition is bootable" in fails("next", str(image))
    assert "no slot is running or bootable" in fails("mark-good", str(image))


def test_explicit_status_file_and_active(image: Path, tmp_path: Path) -> None:
    status = tmp_path / "elsewhere.json"
    ok("next", str(image), "--status-file", str(status))
    assert status.exists() and not Path(f"{image}.slots.json").exists()
    shown = ok_json("show", str(image), "--active", "B", "--status-file", str(status))
    assert shown["active_slot"] == "B"


def test_next_repairs_a_damaged_primary(image: Path) -> None:
    with open(image, "r+b") as f:
        f.seek(512 + 60)
        f.write(b"\0\0")
    make_b_bootable(image)
    ok("next", str(image))
    assert read_gpt(image).source is HeaderCopy.PRIMARY
