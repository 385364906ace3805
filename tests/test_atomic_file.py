"""The one atomic-write helper: temp file in the same directory, fsync, rename, fsync dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wellcar.atomic_file import fsync_directory, write_file_atomically


def test_writes_bytes_and_text(tmp_path: Path) -> None:
    write_file_atomically(tmp_path / "a.bin", b"\x00\x01")
    write_file_atomically(tmp_path / "b.txt", "héllo\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "héllo\n".encode()


def test_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    target.write_text("old")
    write_file_atomically(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)  # the mode is set explicitly, not left to the umask
    try:
        write_file_atomically(tmp_path / "public", "x")
        write_file_atomically(tmp_path / "secret", "x", mode=0o600)
        write_file_atomically(tmp_path / "as-created", "x", mode=None)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "as-created").stat().st_mode) == 0o600


def test_fsyncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str, dst: Path) -> None:
        assert Path(src).parent == tmp_path  # same directory: the rename is atomic
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_file_atomically(tmp_path / "f", "data")
    assert events == ["fsync file", "rename", "fsync dir"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_file_atomically(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_file_atomically(tmp_path / "missing" / "f", "x")


def test_fsync_directory(tmp_path: Path) -> None:
    fsync_directory(tmp_path)  # no error, no descriptor left open
    with pytest.raises(NotADirectoryError):
        (tmp_path / "f").write_text("x")
        fsync_directory(tmp_path / "f")
