"""Generating full and delta payloads from /usr images (and the slot's kernel, initrd).

Full payloads cut the image into 1 MiB chunks: all-zero chunks become ZERO operations,
the rest REPLACE_ZSTD (or REPLACE_BZ for update_engine compatibility), plain REPLACE
when compression does not help.

Deltas work on 4 KiB blocks, which is how erofs and ext4 lay out file data: every new
block found anywhere in the old image is a SOURCE_COPY (most blocks of a one-package
upgrade only move or stay put); runs of changed blocks are encoded against the region
of the old image where the same content most likely lived, found from the copied
neighbours, with whichever of zstd-with-dictionary, bsdiff or plain zstd is smallest.
Memory stays bounded: one digest per old block plus a few MiB per chunk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from wellcar.disk import UsrVerity
from wellcar.payload.errors import PayloadError, TargetError
from wellcar.payload.manifest import (
    BLOCK_SIZE,
    Extent,
    InstallInfo,
    InstallOperation,
    InstallProcedure,
    Manifest,
    OpType,
    ProcedureType,
)
from wellcar.payload.operations import (
    encode_bsdiff,
    encode_bz2,
    encode_zstd,
    encode_zstd_patch,
)
from wellcar.payload.signing import SigningKey
from wellcar.payload.writer import BlobArea, write_payload

ProgressCallback = Callable[[str, int, int], None]
_ZERO_BLOCK = bytes(BLOCK_SIZE)


@dataclass(frozen=True)
class GenerateOptions:
    zstd_level: int = 19
    chunk_bytes: int = 1 << 20
    copy_op_bytes: int = 16 << 20
    dictionary_bytes: int = 8 << 20
    bsdiff_source_bytes: int = 2 << 20
    try_bsdiff: bool = True
    # REPLACE_BZ, signatures last, no Wellcar operations. The usr_verity manifest field is
    # still written: update_engine skips unknown fields, so it costs nothing there.
    flatcar_compatible: bool = False
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass(frozen=True)
class PayloadInputs:
    new_usr: Path
    old_usr: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    # The dm-verity parameters of new_usr (erofs + hash tree); signed with the manifest.
    usr_verity: UsrVerity | None = None


@dataclass
class GenerateReport:
    payload_size: int = 0
    new_size: int = 0
    delta: bool = False
    operations: dict[str, int] = field(default_factory=dict)
    bytes_by_type: dict[str, int] = field(default_factory=dict)


def _file_sha256(path: Path) -> tuple[int, bytes]:
    with open(path, "rb") as src:
        return os.fstat(src.fileno()).st_size, hashlib.file_digest(src, "sha256").digest()


def _read_blocks(path: Path, start: int, count: int) -> bytes:
    with open(path, "rb") as src:
        src.seek(start * BLOCK_SIZE)
        data = src.read(count * BLOCK_SIZE)
    if len(data) % BLOCK_SIZE:
        data += bytes(BLOCK_SIZE - len(data) % BLOCK_SIZE)
    return data


class _BlobSpool:
    """Blobs written back to back into a temporary file; offsets relative to its start."""

    def __init__(self, directory: Path) -> None:
        self.file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives across methods
            dir=directory, prefix=".blobs-", delete=False
        )
        self.path = Path(self.file.name)
        self.length = 0

    def add(self, data: bytes) -> tuple[int, int, bytes]:
        offset = self.length
        self.file.write(data)
        self.length += len(data)
        return offset, len(data), hashlib.sha256(data).digest()

    def close(self) -> None:
        self.file.close()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _Generator:
    def __init__(
        self, options: GenerateOptions, spool: _BlobSpool, progress: ProgressCallback | None
    ) -> None:
        self.options = options
        self.spool = spool
        self.progress = progress
        self.report = GenerateReport()

    def _count(self, op_type: OpType, nbytes: int) -> None:
        self.report.operations[op_type.name] = self.report.operations.get(op_type.name, 0) + 1
        self.report.bytes_by_type[op_type.name] = (
            self.report.bytes_by_type.get(op_type.name, 0) + nbytes
        )

    def _data_op(
        self,
        op_type: OpType,
        data: bytes,
        dst: tuple[Extent, ...],
        src: tuple[Extent, ...] = (),
        src_length: int | None = None,
    ) -> InstallOperation:
        offset, length, digest = self.spool.add(data)
        self._count(op_type, length)
        return InstallOperation(
            type=op_type,
            data_offset=offset,
            data_length=length,
            src_extents=src,
            src_length=src_length,
            dst_extents=dst,
            data_sha256=digest,
        )

    def _compress_chunk(self, chunk: bytes) -> tuple[OpType, bytes] | None:
        if chunk.count(0) == len(chunk) and not self.options.flatcar_compatible:
            return None
        if self.options.flatcar_compatible:
            packed, kind = encode_bz2(chunk), OpType.REPLACE_BZ
        else:
            packed, kind = encode_zstd(chunk, self.options.zstd_level), OpType.REPLACE_ZSTD
        if len(packed) >= len(chunk):
            return OpType.REPLACE, chunk
        return kind, packed

    def full_operations(self, path: Path, what: str) -> list[InstallOperation]:
        size = path.stat().st_size
        chunk_blocks = self.options.chunk_bytes // BLOCK_SIZE
        total_chunks = -(-size // self.options.chunk_bytes)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as src:
                while chunk := src.read(self.options.chunk_bytes):
                    yield chunk

        ops: list[InstallOperation] = []
        window = max(2, 2 * self.options.workers)
        with ThreadPoolExecutor(max_workers=self.options.workers) as pool:
            # zstd and bz2 release the GIL. Only ``window`` chunks are in flight at once,
            # so memory stays a few MiB whatever the image size.
            pending: deque[tuple[bytes, Future[tuple[OpType, bytes] | None]]] = deque()
            index = 0
            for chunk in chunks():
                pending.append((chunk, pool.submit(self._compress_chunk, chunk)))
                while len(pending) >= window:
                    ops.append(self._chunk_op(index, chunk_blocks, *pending.popleft()))
                    index += 1
                    self._tick(what, index, total_chunks)
            while pending:
                ops.append(self._chunk_op(index, chunk_blocks, *pending.popleft()))
                index += 1
                self._tick(what, index, total_chunks)
        return ops

    def _tick(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)

    def _chunk_op(
        self,
        index: int,
        chunk_blocks: int,
        chunk: bytes,
        future: Future[tuple[OpType, bytes] | None],
    ) -> InstallOperation:
        packed = future.result()
        dst = (Extent(index * chunk_blocks, -(-len(chunk) // BLOCK_SIZE)),)
        if packed is None:
            self._count(OpType.ZERO, 0)
            return InstallOperation(type=OpType.ZERO, dst_extents=dst)
        return self._data_op(packed[0], packed[1], dst)

    # --- deltas ---------------------------------------------------------------------

    def delta_operations(self, old: Path, new: Path) -> list[InstallOperation]:
        old_index: dict[bytes, int] = {}
        old_digests: list[bytes] = []
        with open(old, "rb") as src:
            while chunk := src.read(8 << 20):
                for pos in range(0, len(chunk), BLOCK_SIZE):
                    block = chunk[pos : pos + BLOCK_SIZE].ljust(BLOCK_SIZE, b"\0")
                    digest = hashlib.blake2b(block, digest_size=16).digest()
                    old_index.setdefault(digest, len(old_digests))
                    old_digests.append(digest)

        # Classify every new block: ("z",) zero, ("c", src) copy, ("d",) different.
        kinds: list[int] = []  # -1 zero, -2 different, >= 0 source block
        with open(new, "rb") as src:
            while chunk := src.read(8 << 20):
                for pos in range(0, len(chunk), BLOCK_SIZE):
                    block = chunk[pos : pos + BLOCK_SIZE].ljust(BLOCK_SIZE, b"\0")
                    n = len(kinds)
                    digest = hashlib.blake2b(block, digest_size=16).digest()
                    if n < len(old_digests) and old_digests[n] == digest:
                        kinds.append(n)
                    elif digest in old_index:
                        kinds.append(old_index[digest])
                    elif block == _ZERO_BLOCK:
                        kinds.append(-1)
                    else:
                        kinds.append(-2)
        old_blocks = len(old_digests)
        del old_index, old_digests
        return self._delta_runs(kinds, old, new, old_blocks)

    def _delta_runs(
        self, kinds: list[int], old: Path, new: Path, old_blocks: int
    ) -> list[InstallOperation]:
        ops: list[InstallOperation] = []
        total = len(kinds)
        max_copy = self.options.copy_op_bytes // BLOCK_SIZE
        chunk_blocks = self.options.chunk_bytes // BLOCK_SIZE
        span_limit = 2 * chunk_blocks  # keeps bsdiff's window (and memory) small
        last_copy: tuple[int, int] | None = None  # (new block, source block)
        group: list[Extent] = []
        group_anchor: tuple[int, int] | None = None
        window = max(2, 2 * self.options.workers)
        pending: deque[Future[_Encoded]] = deque()

        with ThreadPoolExecutor(max_workers=self.options.workers) as pool:

            def resolve(limit: int) -> None:
                while len(pending) > limit:
                    ops.append(self._encoded_op(pending.popleft().result()))

            def flush() -> None:
                nonlocal group
                if group:
                    job = _ChangedGroup(tuple(group), group_anchor, old, new, old_blocks)
                    pending.append(pool.submit(self._encode_group, job))
                    group = []
                    resolve(window)

            n = 0
            while n < total:
                kind = kinds[n]
                start = n
                if kind >= 0:
                    src_extents: list[Extent] = []
                    while n < total and kinds[n] >= 0 and n - start < max_copy:
                        last = src_extents[-1] if src_extents else None
                        if last and last.start_block + last.num_blocks == kinds[n]:
                            src_extents[-1] = Extent(last.start_block, last.num_blocks + 1)
                        else:
                            src_extents.append(Extent(kinds[n], 1))
                        last_copy = (n, kinds[n])
                        n += 1
                    self._count(OpType.SOURCE_COPY, 0)
                    ops.append(
                        InstallOperation(
                            type=OpType.SOURCE_COPY,
                            src_extents=tuple(src_extents),
                            dst_extents=(Extent(start, n - start),),
                        )
                    )
                elif kind == -1:
                    while n < total and kinds[n] == -1 and n - start < max_copy:
                        n += 1
                    self._count(OpType.ZERO, 0)
                    ops.append(
                        InstallOperation(type=OpType.ZERO, dst_extents=(Extent(start, n - start),))
                    )
                else:
                    # Changed blocks near each other (file system metadata is scattered in
                    # single blocks) share one operation with several destination extents.
                    while n < total and kinds[n] == -2 and n - start < chunk_blocks:
                        n += 1
                    in_group = sum(e.num_blocks for e in group)
                    if group and (
                        in_group + n - start > chunk_blocks or n - group[0].start_block > span_limit
                    ):
                        flush()
                    if not group:
                        group_anchor = last_copy
                    group.append(Extent(start, n - start))
                if self.progress is not None:
                    self.progress("delta", n, total)
            flush()
            resolve(0)
        return ops

    def _encode_group(self, job: _ChangedGroup) -> _Encoded:
        """Encode one group of changed blocks the cheapest way (runs on a worker thread)."""
        data = b"".join(_read_blocks(job.new, e.start_block, e.num_blocks) for e in job.dst)
        first = job.dst[0].start_block
        span = job.dst[-1].start_block + job.dst[-1].num_blocks - first
        # Where the old version of this content most likely sits: as far past the last
        # copied block in the old image as this group is past it in the new one.
        anchor = job.anchor
        expected = anchor[1] + (first - anchor[0]) if anchor else first
        level = self.options.zstd_level
        quick = min(level, 9)  # choosing at level 9: a large dictionary at 19 costs seconds
        candidates: list[_Encoded] = [
            _Encoded(OpType.REPLACE_ZSTD, encode_zstd(data, quick), job.dst, (), data)
        ]
        window = self._source_window(expected, span, self.options.dictionary_bytes, job)
        source = b""
        if window is not None:
            source = _read_blocks(job.old, window.start_block, window.num_blocks)
            patched = encode_zstd_patch(source, data, quick)
            candidates.append(
                _Encoded(OpType.SOURCE_ZSTD_PATCH, patched, job.dst, (window,), data, source)
            )
            # bsdiff needs ~17 bytes of memory and a suffix sort per source byte: give it a
            # window in proportion to the data, never more than bsdiff_source_bytes.
            bsdiff_bytes = min(self.options.bsdiff_source_bytes, max(256 << 10, 8 * len(data)))
            small = self._source_window(expected, span, bsdiff_bytes, job)
            worth_it = len(data) >= 16 << 10 and span * BLOCK_SIZE <= bsdiff_bytes
            if self.options.try_bsdiff and small is not None and worth_it:
                offset = (small.start_block - window.start_block) * BLOCK_SIZE
                small_source = source[offset : offset + small.num_blocks * BLOCK_SIZE]
                diff = encode_bsdiff(small_source, data)
                candidates.append(_Encoded(OpType.SOURCE_BSDIFF, diff, job.dst, (small,), data))
        best = min(candidates, key=lambda c: len(c.blob))
        if level > quick and len(data) >= 256 << 10:
            if best.type is OpType.REPLACE_ZSTD:
                best = replace(best, blob=encode_zstd(data, level))
            elif best.type is OpType.SOURCE_ZSTD_PATCH:
                best = replace(best, blob=encode_zstd_patch(best.source, data, level))
        return best

    def _encoded_op(self, encoded: _Encoded) -> InstallOperation:
        if len(encoded.blob) >= len(encoded.data):
            return self._data_op(OpType.REPLACE, encoded.data, encoded.dst)
        return self._data_op(encoded.type, encoded.blob, encoded.dst, encoded.src)

    @staticmethod
    def _source_window(expected: int, count: int, nbytes: int, job: _ChangedGroup) -> Extent | None:
        if job.old_blocks == 0:
            return None
        span = min(max(nbytes // BLOCK_SIZE, count), job.old_blocks)
        begin = max(0, min(expected - (span - count) // 2, job.old_blocks - span))
        end = min(job.old_blocks, begin + span)
        return Extent(begin, end - begin) if end > begin else None


@dataclass(frozen=True)
class _ChangedGroup:
    dst: tuple[Extent, ...]
    anchor: tuple[int, int] | None
    old: Path
    new: Path
    old_blocks: int


@dataclass(frozen=True)
class _Encoded:
    type: OpType
    blob: bytes
    dst: tuple[Extent, ...]
    src: tuple[Extent, ...]
    data: bytes
    source: bytes = b""


def generate_payload(
    inputs: PayloadInputs,
    out: Path,
    keys: list[SigningKey],
    options: GenerateOptions | None = None,
    progress: ProgressCallback | None = None,
) -> GenerateReport:
    """Write a full (no ``old_usr``) or delta payload for ``inputs`` to ``out``."""
    options = options or GenerateOptions()
    for path in (inputs.new_usr, inputs.old_usr, inputs.kernel, inputs.initrd):
        if path is not None and not path.is_file():
            raise TargetError(f"input image {path} does not exist or is not a file")
        if path is not None and path.stat().st_size == 0:
            raise TargetError(f"input image {path} is empty")
    if options.flatcar_compatible:
        if inputs.old_usr is not None:
            raise PayloadError("update_engine-compatible payloads are full payloads; drop --old")
        if inputs.initrd is not None:
            raise PayloadError("update_engine-compatible payloads carry no initrd")
    if inputs.usr_verity is not None:
        usr_size = inputs.new_usr.stat().st_size
        if inputs.usr_verity.hash_offset >= usr_size:
            raise PayloadError(
                f"the verity hash offset {inputs.usr_verity.hash_offset} is not inside "
                f"{inputs.new_usr} ({usr_size} bytes); give the image with its hash tree "
                "appended and the offset veritysetup format was given"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    spool = _BlobSpool(out.parent)
    generator = _Generator(options, spool, progress)
    try:
        new_size, new_hash = _file_sha256(inputs.new_usr)
        old_info: InstallInfo | None = None
        if inputs.old_usr is not None:
            old_size, old_hash = _file_sha256(inputs.old_usr)
            old_info = InstallInfo(old_size, old_hash)
            usr_ops = generator.delta_operations(inputs.old_usr, inputs.new_usr)
        else:
            usr_ops = generator.full_operations(inputs.new_usr, "/usr")
        procedures: list[InstallProcedure] = []
        for proc_type, path in (
            (ProcedureType.KERNEL, inputs.kernel),
            (ProcedureType.INITRD, inputs.initrd),
        ):
            if path is None:
                continue
            size, digest = _file_sha256(path)
            proc_ops = generator.full_operations(path, proc_type.name.lower())
            procedures.append(
                InstallProcedure(proc_type, tuple(proc_ops), None, InstallInfo(size, digest))
            )
        spool.close()
        manifest = Manifest(
            partition_operations=tuple(usr_ops),
            block_size=BLOCK_SIZE,
            old_partition_info=old_info,
            new_partition_info=InstallInfo(new_size, new_hash),
            procedures=tuple(procedures),
            usr_verity=inputs.usr_verity,
        )
        report = generator.report
        report.payload_size = write_payload(
            out,
            manifest,
            BlobArea(spool.path, 0, spool.length),
            keys,
            signatures_first=not options.flatcar_compatible,
        )
        report.new_size = new_size
        report.delta = old_info is not None
        return report
    finally:
        spool.close()
        spool.remove()
