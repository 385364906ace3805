from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wellcar.image import ToolError, build_usr_image
from wellcar.image.usr_image import pad_to_block, verify_verity

from .conftest import needs_tools

pytestmark = needs_tools("mkfs.erofs", "veritysetup")


def make_tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin/tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (root / "bin/tool").chmod(0o755)
    (root / "lib/x").mkdir(parents=True)
    (root / "lib/x/data").write_text("data\n" * 5000)
    (root / "lib/link").symlink_to("x/data")
    return root


def test_reproducible_erofs_and_root_hash(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "usr")
    first = build_usr_image(tree, tmp_path / "one", epoch=1700000000, seed="t\0001.0.0")
    # A later copy of the tree has other mtimes (and inode numbers): must not matter.
    copy = tmp_path / "copy" / "usr"
    shutil.copytree(tree, copy, symlinks=True)
    second = build_usr_image(copy, tmp_path / "two", epoch=1700000000, seed="t\0001.0.0")
    assert first.image.read_bytes() == second.image.read_bytes()
    assert first.root_hash == second.root_hash
    assert len(first.root_hash) == 64
    assert first.data_size % 4096 == 0
    assert first.image.stat().st_size == first.data_size + first.hash_size
    assert not list((tmp_path / "one").glob("*.tmp"))
    other = build_usr_image(tree, tmp_path / "three", epoch=1700000000, seed="t\0001.0.1")
    assert other.root_hash != first.root_hash  # another version: other UUID and salt


def test_verify_passes_and_detects_a_flipped_byte(tmp_path: Path) -> None:
    usr = build_usr_image(make_tree(tmp_path / "usr"), tmp_path / "out", epoch=0, seed="s")
    # What the initrd does: data and hash area in one file, the hash area at an offset.
    verify_verity(usr.image, usr.image, usr.root_hash, hash_offset=usr.data_size)
    data = bytearray(usr.image.read_bytes())
    data[4096 + 100] ^= 0xFF
    usr.image.write_bytes(bytes(data))
    with pytest.raises(ToolError, match="verity: veritysetup failed"):
        verify_verity(usr.image, usr.image, usr.root_hash, hash_offset=usr.data_size)


def test_missing_tree_is_a_content_error(tmp_path: Path) -> None:
    from wellcar.image import ImageContentError

    with pytest.raises(ImageContentError, match=r"usr-image: .* is not a directory"):
        build_usr_image(tmp_path / "nope", tmp_path / "out", epoch=0, seed="s")


def test_pad_to_block(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    assert pad_to_block(path) == 8192
    assert path.read_bytes()[5000:] == bytes(3192)
    assert pad_to_block(path) == 8192


def test_mtimes_of_the_tree_never_reach_the_image(tmp_path: Path) -> None:
    """The build writes into /usr after mmdebstrap (initrd hooks, Wellcar itself), so its
    directories carry build-time mtimes. mkfs.erofs -T only clamps times *newer* than the
    epoch; an older one (a version dated after the build day) is stored as it is, so the
    tree is set to the epoch first."""
    import os

    tree = make_tree(tmp_path / "usr")
    first = build_usr_image(tree, tmp_path / "one", epoch=1700000000, seed="s")
    for directory in (tree, tree / "lib", tree / "lib/x"):
        os.utime(directory, (1600000000.5, 1600000000.5))  # before the epoch
    (tree / "bin/tool").touch()
    second = build_usr_image(tree, tmp_path / "two", epoch=1700000000, seed="s")
    assert first.image.read_bytes() == second.image.read_bytes()
