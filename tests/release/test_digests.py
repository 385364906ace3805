"""`verify-digests` binds the release: DIGESTS names its version, board and channel inside
the signed text, and a whole-directory check refuses files DIGESTS does not list.

Every tree here is made by `create_release`, the code behind `wellcar release create`."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.release.builds import make_build
from tests.release.conftest import Workspace
from wellcar.payload.signing import load_signing_key, load_trusted_keys, sign_digest
from wellcar.release.create import create_release
from wellcar.release.digests import (
    DIGESTS,
    SIGNATURE,
    DigestsError,
    Expected,
    check_digests,
    verify_digests,
)


@pytest.fixture
def released(ws: Workspace) -> Path:
    create_release(ws.tree, make_build(ws.base / "b", "4799.2.0"), "stable", ws.inputs())
    return ws.tree / "stable/amd64-usr/4799.2.0"


def test_digests_name_the_release_and_list_every_file(ws: Workspace, released: Path) -> None:
    text = (released / DIGESTS).read_text()
    assert text.startswith(
        "# wellcar-digests 2\n# version 4799.2.0\n# board amd64-usr\n# channel stable\n"
    )
    result = check_digests(released, load_trusted_keys([ws.payload_public]))
    assert result.identity is not None and str(result.identity) == "4799.2.0 (stable/amd64-usr)"
    assert result.unchecked == []
    assert sorted(result.files) == sorted(
        p.name for p in released.iterdir() if p.name not in (DIGESTS, SIGNATURE)
    )
    assert {"release.json", "release-notes.md", "update.payload"} <= set(result.files)
    # `current` resolves to the version directory it points at.
    assert verify_digests(released.parent / "current", load_trusted_keys([ws.payload_public]))


def test_a_release_served_as_another_version_is_refused(ws: Workspace, released: Path) -> None:
    keys = load_trusted_keys([ws.payload_public])
    as_next = released.parent / "4799.2.1"
    shutil.copytree(released, as_next)
    with pytest.raises(DigestsError, match=r"signed for another release \(version 4799\.2\.0, "
                       r"not 4799\.2\.1\)"):  # fmt: skip
        check_digests(as_next, keys)
    other_channel = ws.base / "mirror/beta/amd64-usr/4799.2.0"
    shutil.copytree(released, other_channel)
    with pytest.raises(DigestsError, match="channel stable, not beta"):
        check_digests(other_channel, keys)
    other_board = ws.base / "mirror/stable/arm64-usr/4799.2.0"
    shutil.copytree(released, other_board)
    with pytest.raises(DigestsError, match="board amd64-usr, not arm64-usr"):
        check_digests(other_board, keys)
    # Downloaded by hand into any folder: the version must be asked for.
    download = ws.base / "download"
    shutil.copytree(released, download)
    with pytest.raises(DigestsError, match=r"cannot tell which version .* pass --version"):
        check_digests(download, keys)
    with pytest.raises(DigestsError, match=r"version 4799\.2\.0, not 4799\.2\.1"):
        check_digests(download, keys, Expected(version="4799.2.1"))
    result = check_digests(download, keys, Expected(version="4799.2.0"))
    assert result.unchecked == ["board", "channel"]


def test_unlisted_missing_and_changed_files_are_reported_together(
    ws: Workspace, released: Path
) -> None:
    keys = load_trusted_keys([ws.payload_public])
    (released / "evil.sh").write_text("curl | sh\n")
    (released / "vmlinuz").write_bytes(b"another kernel")
    (released / "disk.img.zst").unlink()
    with pytest.raises(DigestsError) as caught:
        check_digests(released, keys)
    message = str(caught.value)
    assert "\n" not in message
    assert "evil.sh is not listed in the signed DIGESTS" in message
    assert "vmlinuz does not match the signed DIGESTS" in message
    assert "disk.img.zst is listed but missing" in message
    # Asking about some files only: the extra file is none of the user's business.
    assert check_digests(released, keys, files=["update.payload"]).files == ["update.payload"]
    with pytest.raises(DigestsError, match=r"evil\.sh is not listed"):
        check_digests(released, keys, files=["evil.sh"])


def test_a_changed_digests_fails_its_signature(ws: Workspace, released: Path) -> None:
    text = (released / DIGESTS).read_text().replace("4799.2.0", "4799.2.1")
    (released / DIGESTS).write_text(text)
    with pytest.raises(DigestsError, match="no signature verifies"):
        check_digests(released, load_trusted_keys([ws.payload_public]))


def test_an_old_unbound_digests_is_refused_unless_allowed(ws: Workspace, released: Path) -> None:
    """Format 1 had only the hash sections; its signature binds no release."""
    text = (released / DIGESTS).read_text()
    old = text[text.index("# SHA256 HASH") :].encode()
    (released / DIGESTS).write_bytes(old)
    key = load_signing_key(ws.payload_private)
    (released / SIGNATURE).write_bytes(sign_digest(hashlib.sha256(old).digest(), [key]))
    keys = load_trusted_keys([ws.payload_public])
    with pytest.raises(DigestsError, match="old DIGESTS that does not name its release"):
        check_digests(released, keys)
    result = check_digests(released, keys, allow_unbound=True)
    assert result.identity is None and "update.payload" in result.files
