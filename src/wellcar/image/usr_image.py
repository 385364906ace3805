"""/usr as an erofs image sealed with a dm-verity hash tree, reproducibly.

Reproducible means: the same tree, version and SOURCE_DATE_EPOCH give a byte-identical
image and so the same root hash, which is what lets anyone check a release. mkfs.erofs gets
a fixed timestamp for every inode (``-T`` with ``--ignore-mtime``: the build-time mtimes of
generated files cannot leak in), root ownership (``--all-root``) and a UUID derived from the
version; veritysetup gets a derived salt and UUID instead of random ones.

Uncompressed erofs on purpose: delta payloads work on 4 KiB blocks and a one-package upgrade
leaves most blocks unchanged, while a compressed extent changes entirely when one byte of
its input does; the update payload is compressed anyway.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from .errors import ImageContentError
from .filesystems import clamp_mtimes
from .tools import run_tool

BLOCK_SIZE = 4096
_ROOT_HASH_RE = re.compile(r"^Root hash:\s*([0-9a-f]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class VerityParams:
    """What makes the hash tree deterministic; derive it with :func:`verity_params`."""

    salt: str  # hex
    uuid: UUID


@dataclass(frozen=True)
class UsrImage:
    """``usr.img``: what a USR partition holds, erofs then its hash tree at ``data_size``."""

    image: Path
    root_hash: str
    data_size: int  # bytes of erofs, a multiple of BLOCK_SIZE: the hash area's offset
    hash_size: int
    salt: str

    @property
    def total_size(self) -> int:
        return self.data_size + self.hash_size


def verity_params(seed: str) -> VerityParams:
    digest = hashlib.sha256(f"wellcar-verity\0{seed}".encode()).digest()
    return VerityParams(salt=digest.hex(), uuid=UUID(bytes=digest[:16], version=4))


def erofs_uuid(seed: str) -> UUID:
    return UUID(bytes=hashlib.sha256(f"wellcar-erofs\0{seed}".encode()).digest()[:16], version=4)


def pad_to_block(path: Path, block: int = BLOCK_SIZE) -> int:
    """Pad ``path`` with zeros to a multiple of ``block``; returns the new size. veritysetup
    hashes whole data blocks, and the hash area must start on a block boundary."""
    size = path.stat().st_size
    remainder = size % block
    if remainder:
        with path.open("ab") as out:
            out.write(bytes(block - remainder))
        size += block - remainder
    return size


def make_erofs(tree: Path, image: Path, *, epoch: int, seed: str, log: Path | None) -> int:
    if not tree.is_dir():
        raise ImageContentError("usr-image", f"{tree} is not a directory")
    clamp_mtimes(tree, epoch)
    image.unlink(missing_ok=True)
    run_tool(
        "usr-image",
        [
            "mkfs.erofs",
            "--quiet",
            "--all-root",
            "--ignore-mtime",
            f"-T{epoch}",
            f"-U{erofs_uuid(seed)}",
            str(image),
            str(tree),
        ],
        log=log,
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )
    return pad_to_block(image)


def format_verity(image: Path, hash_tree: Path, params: VerityParams, log: Path | None) -> str:
    """Write the hash tree of ``image`` to ``hash_tree``; returns the root hash (hex)."""
    hash_tree.unlink(missing_ok=True)
    output = run_tool(
        "verity",
        [
            "veritysetup",
            "format",
            "--data-block-size=4096",
            "--hash-block-size=4096",
            f"--salt={params.salt}",
            f"--uuid={params.uuid}",
            str(image),
            str(hash_tree),
        ],
        log=log,
    )
    match = _ROOT_HASH_RE.search(output)
    if match is None:
        raise ImageContentError("verity", f"no root hash in veritysetup output:\n{output}")
    return match.group(1)


def verify_verity(image: Path, hash_tree: Path, root_hash: str, *, hash_offset: int = 0) -> None:
    """``veritysetup verify``; raises ToolError when a block does not match."""
    argv = ["veritysetup", "verify"]
    if hash_offset:
        argv.append(f"--hash-offset={hash_offset}")
    run_tool("verity", [*argv, str(image), str(hash_tree), root_hash])


def append_file(target: Path, source: Path) -> None:
    with source.open("rb") as src, target.open("ab") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def build_usr_image(
    tree: Path, out_dir: Path, *, epoch: int, seed: str, log: Path | None = None
) -> UsrImage:
    """``usr.img`` in ``out_dir``: the erofs of ``tree`` with its hash tree appended, the
    bytes of a USR partition (and of a full update payload's /usr)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image, hash_tree = out_dir / "usr.img", out_dir / "usr.verity.tmp"
    data_size = make_erofs(tree, image, epoch=epoch, seed=seed, log=log)
    params = verity_params(seed)
    try:
        root_hash = format_verity(image, hash_tree, params, log)
        hash_size = hash_tree.stat().st_size
        append_file(image, hash_tree)
    finally:
        hash_tree.unlink(missing_ok=True)
    return UsrImage(
        image=image, root_hash=root_hash, data_size=data_size, hash_size=hash_size,
        salt=params.salt,
    )  # fmt: skip
