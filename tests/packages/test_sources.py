"""The source fetch's own checks: sources lines and hashes against the signed index."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from wellcar.packages.errors import SourceError
from wellcar.packages.sources import SourceFile, check_files, index_lines


def test_index_lines_are_signed_by_debian() -> None:
    lines = index_lines(
        (
            "deb http://deb.debian.org/debian bookworm main",
            "deb [arch=amd64] http://m.example/debian-security bookworm-security main",
            "# a comment",
        )
    )
    assert lines == [
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main",
        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://m.example/debian-security bookworm-security main",
        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://m.example/debian-security bookworm-security main",
    ]


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    data = b"Format: 3.0 (quilt)\nSource: dash\n"
    (tmp_path / "dash_1-1.dsc").write_bytes(data)
    entry = SourceFile("dash_1-1.dsc", len(data), hashlib.sha256(data).hexdigest())
    check_files(tmp_path, (entry,))
    (tmp_path / "dash_1-1.dsc").write_bytes(data.replace(b"dash", b"bash"))
    with pytest.raises(SourceError, match=r"dash_1-1\.dsc: SHA256 .* does not match the signed"):
        check_files(tmp_path, (entry,))
    with pytest.raises(SourceError, match="missing"):
        check_files(tmp_path, (SourceFile("gone.tar.xz", 1, "0" * 64),))
