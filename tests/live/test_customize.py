"""`iso customize` / `pxe customize` on small real media (a real xorriso ISO with a real
FAT ESP, fake kernel and initrd bytes): what is embedded, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from wellcar.cli.live_commands import iso_app, pxe_app
from wellcar.image.esp import SYSTEMD_BOOT
from wellcar.live.artifacts import LiveInputs, write_live_initrd
from wellcar.live.boot_scripts import CONFIG_FILE, VERITY_FILE
from wellcar.live.cpio import Member, cpio_bytes, read_entries, read_member
from wellcar.live.customize import (
    customize_iso,
    customize_pxe,
    load_customization,
    read_iso_marker,
)
from wellcar.live.errors import CustomizeInputError, NotLiveMediaError
from wellcar.live.iso import IsoInputs, build_iso, find_esp

HASH = "ab" * 32
CONFIG = {"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/etc/x"}]}}
DEST = {"ignition": {"version": "3.4.0"}, "passwd": {"users": [{"name": "core"}]}}


# The two command groups as `wellcar` registers them (cli.main), without the rest.
app = typer.Typer()
app.add_typer(iso_app, name="iso")
app.add_typer(pxe_app, name="pxe")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def configs(tmp_path: Path) -> tuple[Path, Path, Path]:
    live, dest, bad = tmp_path / "live.ign", tmp_path / "dest.ign", tmp_path / "bad.ign"
    live.write_text(json.dumps(CONFIG))
    dest.write_text(json.dumps(DEST))
    bad.write_text('{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"mode": 1}]}}')
    return live, dest, bad


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("xorriso", "mkfs.vfat", "mcopy", "mtype") if shutil.which(t) is None]
    if missing or not SYSTEMD_BOOT.is_file():
        pytest.skip(f"needs {', '.join(missing) or SYSTEMD_BOOT}")
    work = tmp_path_factory.mktemp("iso")
    kernel, initrd = work / "vmlinuz", work / "live-initrd.img"
    kernel.write_bytes(b"MZ kernel" * 1000)
    initrd.write_bytes(cpio_bytes([Member("init", data=b"#!/bin/sh\n")]))
    out = work / "live.iso"
    build_iso(IsoInputs("wellcar", "Wellcar test", "4893.0.0", HASH, kernel, (initrd,), 0),
              out, work=work / "tmp")  # fmt: skip
    return out


def esp_file(iso: Path, name: str, tmp: Path) -> bytes:
    region = find_esp(iso)
    esp = tmp / "esp.img"
    with iso.open("rb") as src:
        src.seek(region.offset)
        esp.write_bytes(src.read(region.size))
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    done = subprocess.run(["mtype", "-i", str(esp), f"::/{name}"], capture_output=True,
                          env=env, check=True)  # fmt: skip
    return done.stdout


def test_iso_is_marked_and_its_entry_loads_the_customization(iso: Path, tmp_path: Path) -> None:
    marker = read_iso_marker(iso)
    assert (marker.brand_id, marker.version, marker.usrhash) == ("wellcar", "4893.0.0", HASH)
    entry = esp_file(iso, "loader/entries/wellcar-live.conf", tmp_path).decode()
    initrds = [line.split()[1] for line in entry.splitlines() if line.startswith("initrd ")]
    assert initrds == ["/wellcar/live-initrd.img", "/wellcar/custom.cpio"]
    assert "boot=wellcar-live" in entry
    # As built, the customization archive is empty.
    assert list(read_entries(esp_file(iso, marker.custom_archive, tmp_path))) == []


def test_iso_customize_embeds_configs_and_install(
    iso: Path, tmp_path: Path, configs: tuple[Path, Path, Path]
) -> None:
    live, dest, _ = configs
    out = tmp_path / "custom.iso"
    result = run("iso", "customize", str(iso), "--ignition", str(live), "--dest-device",
                 "/dev/vdb", "--dest-ignition", str(dest), "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    archive = esp_file(out, "wellcar/custom.cpio", tmp_path)
    assert json.loads(read_member(archive, CONFIG_FILE) or b"") == CONFIG
    env = read_member(archive, "wellcar-live/install/install.env")
    assert env == b'INSTALL_ARGS="-d /dev/vdb -f disk.img.zst -i ignition.ign"\n'
    assert json.loads(read_member(archive, "wellcar-live/install/ignition.ign") or b"") == DEST
    # Only the ESP changed: the bytes before it are the original ISO's.
    region = find_esp(iso)
    with iso.open("rb") as a, out.open("rb") as b:
        assert a.read(region.offset) == b.read(region.offset)
    assert out.stat().st_size == iso.stat().st_size
    # In place, on a copy: the same result.
    copy = tmp_path / "copy.iso"
    shutil.copyfile(iso, copy)
    customize_iso(copy, load_customization(live))
    archive = esp_file(copy, "wellcar/custom.cpio", tmp_path)
    assert read_member(archive, CONFIG_FILE) is not None
    assert read_member(archive, "wellcar-live/install/install.env") is None


def test_iso_customize_bad_input(
    iso: Path, tmp_path: Path, configs: tuple[Path, Path, Path]
) -> None:
    live, dest, bad = configs
    before = iso.read_bytes()
    not_iso = tmp_path / "random.iso"
    not_iso.write_bytes(os.urandom(64 << 10))
    plain = tmp_path / "plain.iso"  # an ISO 9660 image, but no live ISO
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/README").write_text("not live\n")
    subprocess.run(["xorriso", "-as", "mkisofs", "-o", str(plain), str(tmp_path / "tree")],
                   check=True, capture_output=True)  # fmt: skip
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(before[: len(before) // 2])
    exists = tmp_path / "exists.iso"
    exists.write_bytes(b"keep")
    cases = [
        (["iso", "customize", str(not_iso), "--ignition", str(live), "-o", "x1"], "not a hybrid"),
        (["iso", "customize", str(plain), "--ignition", str(live), "-o", "x2"], "not a hybrid"),
        (["iso", "customize", str(truncated), "--ignition", str(live), "-o", "x3"], "truncated"),
        (["iso", "customize", str(iso), "--ignition", str(bad), "-o", "x4"], "not a valid"),
        (["iso", "customize", str(iso), "--ignition", str(live), "--dest-device", "/dev/vdb",
          "--dest-ignition", str(bad), "-o", "x5"], "--dest-ignition"),
        (["iso", "customize", str(iso), "--ignition", str(live), "--dest-ignition", str(dest),
          "-o", "x6"], "needs --dest-device"),
        (["iso", "customize", str(iso), "--ignition", str(live), "--dest-device", "vdb",
          "-o", "x7"], "not a /dev/ path"),
        (["iso", "customize", str(iso), "--ignition", str(live), "-o", str(exists)], "exists"),
        (["iso", "customize", str(iso), "--ignition", str(tmp_path / "none.ign")], "cannot read"),
    ]  # fmt: skip
    for args, words in cases:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
        assert "Traceback" not in result.output
    assert iso.read_bytes() == before and exists.read_bytes() == b"keep"
    assert not any(Path(name).exists() for name in ("x1", "x2", "x3", "x4", "x5", "x6", "x7"))


def test_pxe_customize(tmp_path: Path, configs: tuple[Path, Path, Path]) -> None:
    live, dest, bad = configs
    base = tmp_path / "initrd.img"
    base.write_bytes(cpio_bytes([Member("init", data=b"#!/bin/sh\n")]))
    usr = tmp_path / "usr.img"
    usr.write_bytes(b"")
    inputs = LiveInputs(tmp_path / "k", base, usr, usr, "4893.0.0", HASH, 4096, 0)
    initrd = tmp_path / "live-initrd.img"
    write_live_initrd(inputs, initrd)
    install = tmp_path / "live-install.cpio"
    install.write_bytes(cpio_bytes([Member("wellcar-live/install/disk.img.zst", data=b"z")]))
    out = tmp_path / "served.img"
    result = run("pxe", "customize", str(initrd), "--ignition", str(live), "--dest-device",
                 "/dev/sda", "--dest-ignition", str(dest), "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(initrd.read_bytes())
    # The archives one after another, each 512-aligned: verity file, image, configs.
    archives = [data[o:] for o in range(0, len(data), 512) if data[o : o + 6] == b"070701"]
    names = {e.name for a in archives for e in read_entries(a)}
    install_dir = "wellcar-live/install"
    assert {VERITY_FILE, f"{install_dir}/disk.img.zst", CONFIG_FILE, f"{install_dir}/install.env",
            f"{install_dir}/ignition.ign"} <= names  # fmt: skip
    # Bad input: not a live initrd, a bad config, an existing output, a missing archive.
    with pytest.raises(NotLiveMediaError):
        customize_pxe(base, load_customization(live), tmp_path / "o1")
    with pytest.raises(CustomizeInputError):
        load_customization(bad)
    with pytest.raises(CustomizeInputError, match="exists"):
        customize_pxe(initrd, load_customization(live), out)
    install.unlink()
    result = run("pxe", "customize", str(initrd), "--ignition", str(live), "--dest-device",
                 "/dev/sda", "-o", str(tmp_path / "o2"))  # fmt: skip
    assert result.exit_code == 1 and result.output.startswith("error: ")
    assert "install image archive" in result.output and not (tmp_path / "o2").exists()
