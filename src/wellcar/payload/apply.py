"""Apply a payload to a slot: stream, verify as it goes, verify the result.

Order of checks, so a bad payload costs as little as possible and never a bootable slot:

1. header and manifest are decoded and the whole layout is validated (sizes, extents,
   limits) before any blob is read;
2. a leading signature blob (Wellcar's layout) is verified before anything is written;
   a payload without signatures is refused up front when keys are required;
3. a delta's source is hashed and compared with the manifest's old hash;
4. every blob is checked against its SHA-256 before it is decoded;
5. a trailing signature (update_engine's layout) is verified at the end;
6. the written partition (and kernel, initrd) is hashed and compared with the manifest.

Only then does :func:`apply_payload` return. Making the slot bootable is the caller's
step (``wellcar.disk``), taken only after a successful return.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wellcar.disk import UsrVerity
from wellcar.payload.errors import (
    PayloadError,
    PayloadIntegrityError,
    PayloadSignatureError,
    PayloadTruncatedError,
    PayloadUnavailableError,
    ResumeStateError,
    SourceMismatchError,
    TargetError,
)
from wellcar.payload.layout import DEFAULT_LIMITS, Limits
from wellcar.payload.manifest import (
    InstallInfo,
    InstallOperation,
    OpType,
    ProcedureType,
    decode_signatures,
)
from wellcar.payload.operations import decode_operation
from wellcar.payload.reader import Opener, PayloadMetadata, PayloadReader, read_metadata
from wellcar.payload.resume import ApplyCheckpoint, CheckpointFile
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import (
    RegionReader,
    RegionWriter,
    TargetRegion,
    free_bytes,
    is_fixed_size,
    region_size,
)

CHECKPOINT_BYTES = 64 << 20
CHECKPOINT_SECONDS = 5.0
LOOKAHEAD = 2  # operations decoded ahead of the writer; each is at most 64 MiB

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ApplyTargets:
    """Where the new /usr goes, and (optionally) the slot's kernel and initrd files."""

    usr: TargetRegion
    kernel: Path | None = None
    initrd: Path | None = None

    def procedure_path(self, kind: ProcedureType) -> Path | None:
        return _procedure_path(self, kind)


@dataclass(frozen=True)
class ApplySources:
    """The running slot's images, which a delta payload reads from."""

    usr: TargetRegion | None = None
    kernel: Path | None = None
    initrd: Path | None = None

    def procedure_path(self, kind: ProcedureType) -> Path | None:
        return _procedure_path(self, kind)


def _procedure_path(files: ApplyTargets | ApplySources, kind: ProcedureType) -> Path | None:
    """The file a procedure's content goes to (or comes from); None for the PCR policy."""
    return {ProcedureType.KERNEL: files.kernel, ProcedureType.INITRD: files.initrd}.get(kind)


@dataclass(frozen=True)
class ApplyResult:
    new_size: int
    new_sha256: bytes
    operations: int
    payload_bytes: int
    resumed_from_operation: int | None
    signed_by: str | None
    seconds: float
    written: dict[str, Path] = field(default_factory=dict)
    # From the manifest, so as trustworthy as its signature check (signed_by) made it.
    usr_verity: UsrVerity | None = None


@dataclass
class _Destination:
    """One thing being written: the /usr region or a procedure's file."""

    name: str
    new_info: InstallInfo
    old_info: InstallInfo | None
    writer: RegionWriter
    source: RegionReader | None
    final_path: Path | None  # kernel/initrd: renamed into place after verification
    scratch: Path | None  # written under this name until then


def _check_source(name: str, reader: RegionReader, info: InstallInfo) -> None:
    try:
        actual = reader.sha256(info.size)
    except TargetError:
        raise SourceMismatchError(
            f"this delta needs a {info.size}-byte source {name}, but the given source is "
            "smaller; use a full payload or the image the delta was made from"
        ) from None
    if actual != info.hash:
        raise SourceMismatchError(
            f"this delta was made for another source {name} (expected sha256 "
            f"{info.hash.hex()[:16]}…, the given source has {actual.hex()[:16]}…); "
            "use a full payload or the matching delta"
        )


class _Apply:
    def __init__(
        self,
        opener: Opener,
        targets: ApplyTargets,
        trusted_keys: TrustedKeys | None,
        sources: ApplySources,
        checkpoint: CheckpointFile | None,
        on_progress: ProgressCallback | None,
        limits: Limits,
    ) -> None:
        self.opener = opener
        self.targets = targets
        self.trusted = trusted_keys
        self.sources = sources
        self.checkpoint = checkpoint
        self.on_progress = on_progress
        self.limits = limits
        self.destinations: dict[str, _Destination] = {}
        self.signed_by: str | None = None

    # --- set-up ---------------------------------------------------------------------

    def _verify_signatures(self, digest: bytes, blob: bytes) -> None:
        assert self.trusted is not None
        key = self.trusted.verify(digest, decode_signatures(blob))
        self.signed_by = key.key_id.hex()

    def _check_room(self, meta: PayloadMetadata) -> None:
        """Refuse before writing when the target slot (or a file system) is too small.

        Growing files (a slot image, kernel, initrd) are checked against free space now,
        because a signatures-last manifest is only authenticated at the end.
        """
        manifest = meta.manifest
        assert manifest.new_partition_info is not None
        usr = self.targets.usr
        block = manifest.block_size
        needed = -(-manifest.new_partition_info.size // block) * block
        wanted: list[tuple[Path, int]] = []
        if is_fixed_size(usr):
            available = region_size(usr)
            if needed > available:
                raise TargetError(
                    f"the payload's /usr needs {needed} bytes but the target slot "
                    f"{usr.describe()} holds {available}"
                )
        else:
            wanted.append((usr.path, needed))
        for proc in manifest.procedures:
            assert proc.new_info is not None
            place = self._scratch_place(self.targets.procedure_path(proc.type))
            wanted.append((place, proc.new_info.size))
        for path, size in wanted:
            free = free_bytes(path)
            if size > free:
                raise TargetError(
                    f"writing {path} needs {size} bytes but its file system has only {free} free"
                )

    def _scratch_place(self, final: Path | None) -> Path:
        """A path on the file system that will hold a procedure's scratch file."""
        if final is not None:
            return final
        if self.checkpoint is not None:
            return self.checkpoint.path
        return Path(tempfile.gettempdir()) / "scratch"

    def _scratch_path(self, key: str, final: Path | None) -> Path:
        if final is not None:
            return final.with_name(final.name + ".partial")
        if self.checkpoint is not None:
            # Stable across attempts so a resumed apply finds what the last one wrote.
            return self.checkpoint.path.with_name(f"{self.checkpoint.path.name}.{key}")
        handle, name = tempfile.mkstemp(prefix=f"wellcar-{key}-")
        os.close(handle)
        return Path(name)

    def _open_destinations(self, meta: PayloadMetadata, fresh: bool) -> None:
        manifest = meta.manifest
        new_info = manifest.new_partition_info
        assert new_info is not None
        usr = self.targets.usr
        self._check_room(meta)
        source: RegionReader | None = None
        if manifest.is_delta:
            if self.sources.usr is None:
                raise SourceMismatchError(
                    "this is a delta payload; give the running slot's /usr as the source"
                )
            if self.sources.usr.overlaps(usr):
                raise TargetError("the source and the target are the same slot")
            assert manifest.old_partition_info is not None
            source = RegionReader(self.sources.usr, manifest.old_partition_info.size)
            _check_source("/usr", source, manifest.old_partition_info)
        self.destinations["usr"] = _Destination(
            "/usr",
            new_info,
            manifest.old_partition_info,
            RegionWriter(usr, new_info.size, truncate=fresh and not is_fixed_size(usr)),
            source,
            None,
            None,
        )
        for proc in manifest.procedures:
            assert proc.new_info is not None
            key = proc.type.name.lower()
            final = self.targets.procedure_path(proc.type)
            scratch = self._scratch_path(key, final)
            proc_source: RegionReader | None = None
            if proc.old_info is not None or any(op.type.reads_source for op in proc.operations):
                old_path = self.sources.procedure_path(proc.type)
                if old_path is None or proc.old_info is None:
                    raise SourceMismatchError(f"this delta needs the running {key} as a source")
                proc_source = RegionReader(TargetRegion(old_path), proc.old_info.size)
                _check_source(key, proc_source, proc.old_info)
            self.destinations[key] = _Destination(
                key,
                proc.new_info,
                proc.old_info,
                RegionWriter(TargetRegion(scratch), proc.new_info.size, truncate=fresh),
                proc_source,
                final,
                scratch,
            )

    def _entries(self, meta: PayloadMetadata) -> list[tuple[str, InstallOperation, str]]:
        entries = [
            (f"operation {i}", op, "usr") for i, op in enumerate(meta.manifest.partition_operations)
        ]
        for proc in meta.manifest.procedures:
            key = proc.type.name.lower()
            entries += [(f"{key} operation {i}", op, key) for i, op in enumerate(proc.operations)]
        return entries

    # --- operations -----------------------------------------------------------------

    def _prepare(
        self,
        reader: PayloadReader,
        label: str,
        op: InstallOperation,
        dest: _Destination,
        block_size: int,
    ) -> bytes | None:
        """Read, check and decode one operation's data; runs on the worker, in order."""
        if not op.type.carries_data:
            return None
        assert op.data_length is not None and op.data_sha256 is not None
        if op.data_offset != reader.offset - reader.blob_area_start:
            raise ResumeStateError(f"{label}: resume position does not match the payload")
        blob = reader.read_exact(op.data_length, f"the data of {label}")
        if hashlib.sha256(blob).digest() != op.data_sha256:
            raise PayloadIntegrityError(
                f"{label}: data does not match its SHA-256 in the manifest (corrupt or "
                "tampered download)"
            )
        source_bytes: bytes | None = None
        if op.type.reads_source:
            assert dest.source is not None
            source_bytes = dest.source.read_extents(op.src_extents, block_size)
            if op.src_length is not None:
                source_bytes = source_bytes[: op.src_length]
        return decode_operation(op.type, blob, source_bytes, op.dst_blocks * block_size, label)

    def _write(
        self, op: InstallOperation, output: bytes | None, dest: _Destination, block_size: int
    ) -> None:
        writer = dest.writer
        if op.type is OpType.SOURCE_COPY:
            assert dest.source is not None
            chunks: Iterator[bytes] = dest.source.iter_extents(op.src_extents, block_size)
            writer.write_extents(op.dst_extents, block_size, chunks)
        else:  # ZERO has no output: write_extents zero-fills
            writer.write_extents(
                op.dst_extents, block_size, iter(() if output is None else (output,))
            )

    def _save_checkpoint(self, payload_id: str, index: int, blob_offset: int) -> None:
        assert self.checkpoint is not None
        for dest in self.destinations.values():
            dest.writer.sync()
        self.checkpoint.save(
            ApplyCheckpoint(payload_id, self.targets.usr.describe(), index, blob_offset)
        )

    # --- the whole run --------------------------------------------------------------

    def run(self) -> ApplyResult:
        started = time.monotonic()
        self.reader = PayloadReader(self.opener(0))
        keep_partial = False
        try:
            return self._run(self.reader, started)
        except (PayloadTruncatedError, PayloadUnavailableError, OSError):
            # The saved checkpoint (if any) and partial files stay: the next attempt resumes.
            keep_partial = self.checkpoint is not None
            raise
        except PayloadError:
            if self.checkpoint is not None:
                self.checkpoint.clear()
            raise
        finally:
            self.reader.stream.close()
            for dest in self.destinations.values():
                dest.writer.close()
                if dest.source is not None:
                    dest.source.close()
                if dest.scratch is not None and not keep_partial:
                    dest.scratch.unlink(missing_ok=True)

    def _run(self, reader: PayloadReader, started: float) -> ApplyResult:
        meta = read_metadata(reader, self.limits)
        layout = meta.layout
        if self.trusted is not None:
            if not layout.signed:
                raise PayloadSignatureError(
                    "the payload is not signed; sign it with `wellcar payload sign` or "
                    "install it without signature checks"
                )
            if meta.leading_signatures is not None:
                self._verify_signatures(reader.signed_hasher.digest(), meta.leading_signature_blob)
        entries = self._entries(meta)
        block_size = meta.manifest.block_size

        start_index, blob_base = 0, layout.signatures_size if layout.signatures_first else 0
        resumable = self.trusted is None or layout.signatures_first
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        resumed_from: int | None = None
        if (
            saved is not None
            and resumable
            and saved.payload_id == meta.payload_id
            and saved.target == self.targets.usr.describe()
            and 0 < saved.next_operation <= len(entries)
        ):
            start_index, blob_base = saved.next_operation, saved.next_blob_offset
            resumed_from = start_index
        elif saved is not None and self.checkpoint is not None:
            self.checkpoint.clear()
        self._open_destinations(meta, fresh=resumed_from is None)
        if resumed_from is not None:
            reader.stream.close()
            absolute = layout.metadata_size + blob_base
            reader = self.reader = PayloadReader(self.opener(absolute), absolute)
            for dest in self.destinations.values():
                dest.writer.in_order = False  # earlier writes happened in another run

        total = layout.total_size
        reader.blob_area_start = layout.metadata_size
        blob_offset = blob_base
        since_checkpoint = 0
        last_checkpoint = time.monotonic()
        # One worker reads, hashes and decodes the next operations while this thread
        # writes the current one: zstd, bzip2 and SHA-256 all release the GIL.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payload-decode")
        pending: deque[tuple[int, Future[bytes | None]]] = deque()
        upcoming = iter(range(start_index, len(entries)))

        def submit_next() -> None:
            index = next(upcoming, None)
            if index is not None:
                label, op, key = entries[index]
                future = pool.submit(
                    self._prepare, reader, label, op, self.destinations[key], block_size
                )
                pending.append((index, future))

        try:
            for _ in range(LOOKAHEAD):
                submit_next()
            while pending:
                index, future = pending.popleft()
                output = future.result()
                submit_next()
                _, op, key = entries[index]
                self._write(op, output, self.destinations[key], block_size)
                if op.type.carries_data:
                    assert op.data_offset is not None and op.data_length is not None
                    blob_offset = op.data_offset + op.data_length
                since_checkpoint += op.dst_blocks * block_size
                if self.on_progress is not None:
                    self.on_progress(reader.offset, total)
                if (
                    self.checkpoint is not None
                    and resumable
                    and (
                        since_checkpoint >= CHECKPOINT_BYTES
                        or time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS
                    )
                ):
                    self._save_checkpoint(meta.payload_id, index + 1, blob_offset)
                    since_checkpoint, last_checkpoint = 0, time.monotonic()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

        if layout.signed and not layout.signatures_first:
            reader.hashing = False
            digest = reader.signed_hasher.digest()
            trailing = reader.read_exact(layout.signatures_size, "the signature blob")
            if self.trusted is not None:
                self._verify_signatures(digest, trailing)
        reader.expect_end()

        for dest in self.destinations.values():
            dest.writer.finish()
            actual = dest.writer.final_sha256()
            if actual != dest.new_info.hash:
                raise PayloadIntegrityError(
                    f"the written {dest.name} does not match the manifest's hash (expected "
                    f"{dest.new_info.hash.hex()[:16]}…, got {actual.hex()[:16]}…); the slot "
                    "stays unbootable"
                )
        written: dict[str, Path] = {}
        for key, dest in self.destinations.items():
            if dest.final_path is not None and dest.scratch is not None:
                os.replace(dest.scratch, dest.final_path)
                written[key] = dest.final_path
        if self.checkpoint is not None:
            self.checkpoint.clear()
        usr = self.destinations["usr"]
        return ApplyResult(
            new_size=usr.new_info.size,
            new_sha256=usr.new_info.hash,
            operations=len(entries),
            payload_bytes=total,
            resumed_from_operation=resumed_from,
            signed_by=self.signed_by,
            seconds=time.monotonic() - started,
            written=written,
            usr_verity=meta.manifest.usr_verity,
        )


def apply_payload(
    opener: Opener,
    targets: ApplyTargets,
    trusted_keys: TrustedKeys | None,
    sources: ApplySources | None = None,
    checkpoint: CheckpointFile | None = None,
    on_progress: ProgressCallback | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ApplyResult:
    """Apply the payload ``opener`` yields to ``targets``; see the module docstring.

    ``trusted_keys=None`` skips signature checks (every hash is still checked). With a
    ``checkpoint`` file an interrupted apply of a payload whose signatures come first
    resumes after the last saved operation; otherwise it restarts from the beginning.
    """
    return _Apply(
        opener, targets, trusted_keys, sources or ApplySources(), checkpoint, on_progress, limits
    ).run()
