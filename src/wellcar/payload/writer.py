"""Assembling a payload file from operations and their blobs, and (re)signing it.

Blobs are spooled to a file while operations are generated; the manifest is only
encoded at the end, when the signature blob's size and place are known. The same
assembly signs an existing payload again with another set of keys (``wellcar payload
sign``): operations are taken over unchanged, data offsets are shifted to the new
signature blob, and the blobs are copied once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from wellcar.payload.inspect import verify_payload
from wellcar.payload.layout import encode_header
from wellcar.payload.manifest import (
    SPARSE_HOLE,
    Extent,
    InstallOperation,
    InstallProcedure,
    Manifest,
    OpType,
    encode_manifest,
)
from wellcar.payload.reader import PayloadReader, file_opener, read_metadata
from wellcar.payload.signing import SigningKey, sign_digest, signatures_size

COPY_CHUNK = 8 << 20


@dataclass(frozen=True)
class BlobArea:
    """The data blobs, back to back, in ``path`` from ``offset`` for ``length`` bytes."""

    path: Path
    offset: int
    length: int


def _shift(op: InstallOperation, delta: int) -> InstallOperation:
    if op.data_offset is None:
        return op
    return dataclasses.replace(op, data_offset=op.data_offset + delta)


def _placed(
    manifest: Manifest, delta: int, sig_offset: int | None, sig_size: int | None
) -> Manifest:
    noop: tuple[InstallOperation, ...] = ()
    return dataclasses.replace(
        manifest,
        partition_operations=tuple(_shift(op, delta) for op in manifest.partition_operations),
        procedures=tuple(
            InstallProcedure(
                p.type, tuple(_shift(op, delta) for op in p.operations), p.old_info, p.new_info
            )
            for p in manifest.procedures
        ),
        noop_operations=noop,
        signatures_offset=sig_offset,
        signatures_size=sig_size,
    )


def _copy_range(src: BinaryIO, dst: BinaryIO, length: int, hasher: hashlib._Hash | None) -> None:
    remaining = length
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise OSError("blob area ended early")
        dst.write(chunk)
        if hasher is not None:
            hasher.update(chunk)
        remaining -= len(chunk)


def write_payload(
    out: Path,
    manifest: Manifest,
    blobs: BlobArea,
    keys: list[SigningKey],
    signatures_first: bool = True,
) -> int:
    """Write ``manifest`` (data offsets relative to the first blob) and blobs to ``out``.

    With ``signatures_first`` (Wellcar's layout) the signature blob follows the manifest
    and signs header + manifest; otherwise it follows the last blob and signs everything
    before it, with update_engine's dummy noop operation. Returns the payload's size.
    """
    sig_size = signatures_size(keys) if keys else None
    if sig_size is None:
        placed = _placed(manifest, 0, None, None)
    elif signatures_first:
        placed = _placed(manifest, sig_size, 0, sig_size)
    else:
        placed = _placed(manifest, 0, blobs.length, sig_size)
        noop = InstallOperation(
            type=OpType.REPLACE,
            data_offset=blobs.length,
            data_length=sig_size,
            dst_extents=(Extent(SPARSE_HOLE, -(-sig_size // manifest.block_size)),),
        )
        placed = dataclasses.replace(placed, noop_operations=(noop,))
    manifest_bytes = encode_manifest(placed)
    metadata = encode_header(len(manifest_bytes)) + manifest_bytes
    tmp = out.with_name(out.name + ".tmp")
    with open(blobs.path, "rb") as src, open(tmp, "wb") as dst:
        src.seek(blobs.offset)
        dst.write(metadata)
        if sig_size is not None and signatures_first:
            dst.write(sign_digest(hashlib.sha256(metadata).digest(), keys))
            _copy_range(src, dst, blobs.length, None)
        else:
            hasher = hashlib.sha256(metadata)
            _copy_range(src, dst, blobs.length, hasher)
            if sig_size is not None:
                dst.write(sign_digest(hasher.digest(), keys))
        dst.flush()
        os.fsync(dst.fileno())
        size = dst.tell()
    os.replace(tmp, out)
    return size


def resign_payload(
    src: Path, out: Path, keys: list[SigningKey], signatures_first: bool | None = None
) -> int:
    """Write ``src`` again to ``out`` signed by ``keys`` (replacing its signatures).

    The layout stays as it was unless ``signatures_first`` says otherwise. Blob hashes
    are checked first, so a corrupt payload never gets a fresh signature.
    """
    verify_payload(src, None)
    reader = PayloadReader(file_opener(src)(0))
    try:
        meta = read_metadata(reader)
    finally:
        reader.stream.close()
    layout = meta.layout
    lead = layout.signatures_size if layout.signatures_first else 0
    relative = _placed(meta.manifest, -lead, None, None)
    keep_first = layout.signatures_first or not layout.signed
    return write_payload(
        out,
        relative,
        BlobArea(src, layout.metadata_size + lead, layout.blobs_size),
        keys,
        signatures_first=keep_first if signatures_first is None else signatures_first,
    )
