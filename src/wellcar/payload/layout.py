"""CrAU framing and the checks that turn a decoded manifest into a trusted byte layout.

A payload is ``"CrAU"``, a big-endian u64 format version (1), a big-endian u64 manifest
length, the manifest, then the data blobs. The signature blob sits either right after the
manifest (Wellcar's layout: checked before anything is written) or after the last data
blob (update_engine's layout). Everything the applier later trusts — where each blob
starts, that extents stay inside the slot, that no operation is absurdly large — is
established here, before a single byte of blob data is read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wellcar.payload.errors import PayloadFormatError
from wellcar.payload.manifest import (
    BLOCK_SIZE,
    InstallInfo,
    InstallOperation,
    Manifest,
    OpType,
    ProcedureType,
)

MAGIC = b"CrAU"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sQQ")
HEADER_SIZE = HEADER.size  # 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds for what a payload may ask of the applier."""

    max_manifest_bytes: int = 64 << 20
    max_partition_bytes: int = 256 << 30
    max_blob_bytes: int = 64 << 20
    max_op_output_bytes: int = 64 << 20
    max_op_source_bytes: int = 64 << 20
    max_signature_bytes: int = 64 << 10


DEFAULT_LIMITS = Limits()


def encode_header(manifest_size: int) -> bytes:
    return HEADER.pack(MAGIC, FORMAT_VERSION, manifest_size)


def decode_header(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    """Check the 20-byte header; return the manifest length."""
    if len(raw) < HEADER_SIZE:
        raise PayloadFormatError(
            f"payload is {len(raw)} bytes, shorter than the {HEADER_SIZE}-byte CrAU header"
        )
    magic, version, manifest_size = HEADER.unpack(raw[:HEADER_SIZE])
    if magic != MAGIC:
        raise PayloadFormatError(f"not an update payload: magic is {magic!r}, expected b'CrAU'")
    if version != FORMAT_VERSION:
        raise PayloadFormatError(
            f"unsupported payload format version {version} (this build reads version 1)"
        )
    if manifest_size == 0 or manifest_size > limits.max_manifest_bytes:
        raise PayloadFormatError(
            f"manifest length {manifest_size} is outside 1..{limits.max_manifest_bytes} bytes"
        )
    return int(manifest_size)


@dataclass(frozen=True, slots=True)
class Blob:
    """Where one operation's data lives, relative to the start of the blob area."""

    label: str
    op: InstallOperation
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class PayloadLayout:
    """The validated shape of a payload: sizes, blob positions, signature placement."""

    manifest_size: int
    signatures_offset: int | None
    signatures_size: int
    blobs_size: int  # data blobs only

    @property
    def metadata_size(self) -> int:
        return HEADER_SIZE + self.manifest_size

    @property
    def signed(self) -> bool:
        return self.signatures_offset is not None

    @property
    def signatures_first(self) -> bool:
        return self.signatures_offset == 0 and self.signatures_size > 0

    @property
    def total_size(self) -> int:
        return self.metadata_size + self.blobs_size + self.signatures_size

    @property
    def signed_size(self) -> int:
        """Bytes covered by the signatures: everything before the signature blob."""
        if self.signatures_offset is None:
            return self.total_size
        return self.metadata_size + self.signatures_offset


def _check_info(info: InstallInfo, name: str, limits: Limits) -> None:
    if len(info.hash) != 32:
        raise PayloadFormatError(f"{name}: hash is {len(info.hash)} bytes, not a SHA-256")
    if info.size <= 0 or info.size > limits.max_partition_bytes:
        raise PayloadFormatError(
            f"{name}: size {info.size} is outside 1..{limits.max_partition_bytes} bytes"
        )


def _blocks(size: int, block_size: int) -> int:
    return -(-size // block_size)


class _OperationChecker:
    """Checks operations of one target (the partition, or one procedure) in order."""

    def __init__(
        self,
        target: str,
        new_info: InstallInfo,
        old_info: InstallInfo | None,
        block_size: int,
        limits: Limits,
    ) -> None:
        self.target = target
        self.new_blocks = _blocks(new_info.size, block_size)
        self.old_blocks = _blocks(old_info.size, block_size) if old_info else None
        self.block_size = block_size
        self.limits = limits
        self.written: list[tuple[int, int, str]] = []

    def check(self, label: str, op: InstallOperation) -> None:
        bs = self.block_size
        if op.type in (OpType.MOVE, OpType.BSDIFF):
            raise PayloadFormatError(
                f"{label}: {op.type.name} works in place on a copied partition, which Wellcar "
                "does not do; regenerate the payload with `wellcar payload generate`"
            )
        if not op.dst_extents:
            raise PayloadFormatError(f"{label}: no destination extents")
        for extent in op.dst_extents:
            if extent.num_blocks == 0:
                raise PayloadFormatError(f"{label}: empty destination extent")
            if extent.start_block + extent.num_blocks > self.new_blocks:
                raise PayloadFormatError(
                    f"{label}: writes blocks {extent.start_block}..."
                    f"{extent.start_block + extent.num_blocks - 1}, beyond the {self.new_blocks} "
                    f"blocks of the new {self.target}"
                )
            self.written.append((extent.start_block, extent.num_blocks, label))
        out_bytes = op.dst_blocks * bs
        if op.type.carries_data:
            if not op.data_length:
                raise PayloadFormatError(f"{label}: {op.type.name} without data")
            if op.data_length > self.limits.max_blob_bytes:
                raise PayloadFormatError(
                    f"{label}: blob of {op.data_length} bytes exceeds the limit of "
                    f"{self.limits.max_blob_bytes}"
                )
            if op.data_sha256 is None or len(op.data_sha256) != 32:
                raise PayloadFormatError(f"{label}: missing or malformed data_sha256_hash")
            if out_bytes > self.limits.max_op_output_bytes:
                raise PayloadFormatError(
                    f"{label}: writes {out_bytes} bytes in one operation, more than the limit of "
                    f"{self.limits.max_op_output_bytes}"
                )
            if op.type is OpType.REPLACE and op.data_length > out_bytes:
                raise PayloadFormatError(
                    f"{label}: REPLACE carries {op.data_length} bytes for {out_bytes} bytes of "
                    "destination"
                )
        elif op.data_length:
            raise PayloadFormatError(f"{label}: {op.type.name} must not carry data")
        if op.type.reads_source:
            if self.old_blocks is None:
                raise PayloadFormatError(
                    f"{label}: {op.type.name} reads the source {self.target}, but the manifest "
                    "records no old hash to check the source against"
                )
            if not op.src_extents:
                raise PayloadFormatError(f"{label}: {op.type.name} without source extents")
            for extent in op.src_extents:
                if extent.num_blocks == 0 or extent.start_block + extent.num_blocks > (
                    self.old_blocks
                ):
                    raise PayloadFormatError(
                        f"{label}: source extent {extent.start_block}+{extent.num_blocks} lies "
                        f"outside the {self.old_blocks} blocks of the old {self.target}"
                    )
            if op.type is OpType.SOURCE_COPY and op.src_blocks != op.dst_blocks:
                raise PayloadFormatError(f"{label}: SOURCE_COPY source and destination differ")
            if op.type is not OpType.SOURCE_COPY and (
                op.src_blocks * bs > self.limits.max_op_source_bytes
            ):
                raise PayloadFormatError(
                    f"{label}: reads {op.src_blocks * bs} source bytes, more than the limit of "
                    f"{self.limits.max_op_source_bytes}"
                )
        elif op.src_extents:
            raise PayloadFormatError(f"{label}: {op.type.name} must not have source extents")

    def check_no_overlap(self) -> None:
        # Overlapping writes would make the result depend on order and break resume.
        self.written.sort()
        for (start_a, count_a, label_a), (start_b, _, label_b) in zip(
            self.written, self.written[1:], strict=False
        ):
            if start_a + count_a > start_b:
                raise PayloadFormatError(
                    f"{label_b}: overlaps blocks already written by {label_a} in the {self.target}"
                )


def plan_layout(
    manifest: Manifest, manifest_size: int, limits: Limits = DEFAULT_LIMITS
) -> tuple[PayloadLayout, list[Blob]]:
    """Validate ``manifest`` and return the layout plus every blob in payload order."""
    if manifest.block_size != BLOCK_SIZE:
        raise PayloadFormatError(
            f"block size {manifest.block_size} is not supported (only {BLOCK_SIZE})"
        )
    if manifest.new_partition_info is None:
        raise PayloadFormatError("manifest has no new_partition_info (size and hash of /usr)")
    _check_info(manifest.new_partition_info, "new_partition_info", limits)
    if manifest.old_partition_info is not None:
        _check_info(manifest.old_partition_info, "old_partition_info", limits)

    sig_offset = manifest.signatures_offset
    sig_size = manifest.signatures_size or 0
    if (sig_offset is None) != (manifest.signatures_size is None):
        raise PayloadFormatError("manifest has only one of signatures_offset/signatures_size")
    if sig_offset is not None and not 0 < sig_size <= limits.max_signature_bytes:
        raise PayloadFormatError(
            f"signatures_size {sig_size} is outside 1..{limits.max_signature_bytes} bytes"
        )

    checkers = [
        _OperationChecker(
            "/usr partition",
            manifest.new_partition_info,
            manifest.old_partition_info,
            manifest.block_size,
            limits,
        )
    ]
    labelled: list[tuple[str, InstallOperation, _OperationChecker]] = [
        (f"operation {i}", op, checkers[0]) for i, op in enumerate(manifest.partition_operations)
    ]
    seen_types: set[ProcedureType] = set()
    for proc in manifest.procedures:
        name = proc.type.name.lower()
        if proc.type in seen_types:
            raise PayloadFormatError(f"manifest has two {name} procedures")
        seen_types.add(proc.type)
        if proc.new_info is None:
            raise PayloadFormatError(f"{name} procedure has no new_info")
        _check_info(proc.new_info, f"{name} new_info", limits)
        if proc.old_info is not None:
            _check_info(proc.old_info, f"{name} old_info", limits)
        checker = _OperationChecker(name, proc.new_info, proc.old_info, manifest.block_size, limits)
        checkers.append(checker)
        labelled += [(f"{name} operation {i}", op, checker) for i, op in enumerate(proc.operations)]
    if not manifest.partition_operations:
        raise PayloadFormatError("manifest has no operations for the /usr partition")

    # Blobs must follow one another in operation order: the applier reads the payload once.
    position = sig_size if sig_offset == 0 else 0
    blobs: list[Blob] = []
    for label, op, checker in labelled:
        checker.check(label, op)
        if op.type.carries_data:
            assert op.data_length is not None
            if op.data_offset != position:
                raise PayloadFormatError(
                    f"{label}: data_offset {op.data_offset} should be {position}; blobs must be "
                    "contiguous and in operation order"
                )
            blobs.append(Blob(label, op, position, op.data_length))
            position += op.data_length
    for checker in checkers:
        checker.check_no_overlap()

    blobs_end = position
    if sig_offset is not None and sig_offset not in (0, blobs_end):
        raise PayloadFormatError(
            f"signatures_offset {sig_offset} is neither 0 nor the end of the data blobs "
            f"({blobs_end})"
        )
    for i, noop in enumerate(manifest.noop_operations):
        if not all(e.is_sparse_hole for e in noop.dst_extents) or noop.data_offset != sig_offset:
            raise PayloadFormatError(
                f"noop operation {i}: must only cover the signature blob (update_engine's "
                "compatibility entry)"
            )
    data_size = blobs_end - (sig_size if sig_offset == 0 else 0)
    layout = PayloadLayout(
        manifest_size=manifest_size,
        signatures_offset=sig_offset,
        signatures_size=sig_size,
        blobs_size=data_size,
    )
    return layout, blobs
