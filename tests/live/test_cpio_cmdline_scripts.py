"""The pieces of a live boot that need no image: archives, the command line, the
initrd script and the install arguments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.live.boot_scripts import (
    INSTALL_COMMAND,
    INSTALL_STATE,
    install_live_boot,
    render_install_env,
    render_install_unit,
    render_live_script,
)
from wellcar.live.cmdline import live_kernel_command_line
from wellcar.live.cpio import (
    ARCHIVE_ALIGN,
    CpioError,
    Member,
    cpio_bytes,
    read_entries,
    read_member,
)


def test_archive_round_trip_with_parents_and_alignment(tmp_path: Path) -> None:
    big = tmp_path / "usr.img"
    big.write_bytes(b"\x01" * 5001)
    data = cpio_bytes([Member("a/b/c.txt", data=b"hello"), Member("a/usr.img", source=big)])
    assert len(data) % ARCHIVE_ALIGN == 0
    names = [(e.name, e.size) for e in read_entries(data)]
    assert names == [("a", 0), ("a/b", 0), ("a/b/c.txt", 5), ("a/usr.img", 5001)]
    assert read_member(data, "a/b/c.txt") == b"hello"
    assert read_member(data, "a/usr.img") == b"\x01" * 5001
    assert read_member(data, "missing") is None


def test_archive_is_what_cpio_reads(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("needs cpio")
    data = cpio_bytes([Member("x/y", data=b"payload", mode=0o600)])
    subprocess.run(["cpio", "-id", "--quiet"], input=data, cwd=tmp_path, check=True)
    assert (tmp_path / "x/y").read_bytes() == b"payload"
    assert (tmp_path / "x/y").stat().st_mode & 0o777 == 0o600


def test_archive_refuses_escaping_names_and_truncation() -> None:
    with pytest.raises(CpioError):
        cpio_bytes([Member("/etc/passwd", data=b"")])
    with pytest.raises(CpioError):
        cpio_bytes([Member("a/../../x", data=b"")])
    data = cpio_bytes([Member("f", data=b"x" * 100)])
    with pytest.raises(CpioError):
        list(read_entries(data[:120]))
    with pytest.raises(CpioError):
        list(read_entries(b"not an archive" * 10))


def test_live_command_line() -> None:
    words = live_kernel_command_line(config_url="http://10.0.2.100:8080/c.ign").split()
    assert words[0] == "boot=wellcar-live"
    assert "ignition.platform.id=metal" in words
    assert "ignition.config.url=http://10.0.2.100:8080/c.ign" in words
    assert words[-2:] == ["console=ttyS0,115200n8", "panic=10"]  # serial is /dev/console
    assert not any(w.startswith("wellcar.live.usrhash=") for w in words)
    fetched = live_kernel_command_line(usr_url="http://h/usr.img", usrhash="ab", usroffset=4096)
    assert "wellcar.live.usr=http://h/usr.img" in fetched.split()
    assert "wellcar.live.usrhash=ab" in fetched.split()
    with pytest.raises(ValueError):
        live_kernel_command_line(config_url="http://h/a b")


def test_live_script_is_valid_shell_for_the_brand() -> None:
    script = render_live_script("acme", "etc/.wellcar-first-boot")
    assert "@" not in script.replace("$@", "")  # every placeholder filled
    assert "/usr/share/acme/etc-defaults" in script
    assert "acme-grow-root.service" in script and "acme-live-install.service" in script
    for shell in ("dash", "sh"):
        if shutil.which(shell):
            subprocess.run([shell, "-n"], input=script.encode(), check=True)
            break


def test_install_unit_and_arguments() -> None:
    unit = render_install_unit("acme", "Acme")
    assert f"ExecStart={INSTALL_COMMAND} $INSTALL_ARGS" in unit
    assert f"ConditionPathExists={INSTALL_STATE}/install.env" in unit
    assert "systemctl --no-block reboot" in unit
    env = render_install_env("/dev/vdb", with_ignition=True)
    assert env == 'INSTALL_ARGS="-d /dev/vdb -f disk.img.zst -i ignition.ign"\n'
    assert "-i" not in render_install_env("/dev/sda", with_ignition=False)


def test_install_live_boot_writes_hook_script_and_unit(tmp_path: Path) -> None:
    install_live_boot(tmp_path, "wellcar", "Wellcar", "etc/.wellcar-first-boot")
    hook = tmp_path / "usr/share/initramfs-tools/hooks/wellcar-live"
    assert hook.stat().st_mode & 0o111
    assert "manual_add_modules loop" in hook.read_text()
    script = tmp_path / "usr/share/initramfs-tools/scripts/wellcar-live"
    assert "mountroot()" in script.read_text()
    assert (tmp_path / "usr/lib/systemd/system/wellcar-live-install.service").is_file()
