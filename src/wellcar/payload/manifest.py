"""The payload manifest (update_engine's ``DeltaArchiveManifest``) as typed data.

Field numbers follow the proto2 schema of CoreOS/Flatcar update_engine so that Flatcar
payloads decode here and Wellcar full payloads keep the same shape. Wellcar's additions
(delta operation types, the initrd procedure, a key id on signatures, the /usr dm-verity
parameters) use numbers that schema does not use; docs/payload.md lists every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from wellcar.disk import UsrVerity, UsrVerityError
from wellcar.payload.errors import PayloadFormatError
from wellcar.payload.wire import (
    UINT64_MAX,
    MessageWriter,
    expect_bytes,
    expect_int,
    iter_fields,
)

BLOCK_SIZE = 4096
SPARSE_HOLE = UINT64_MAX  # start_block of the dummy operation that covers the signatures
USR_VERITY_FIELD = 1000  # Wellcar extension; update_engine skips it as an unknown field
_ROOT_HASH_BYTES = 32  # sha256


class OpType(IntEnum):
    """Install operation types. 0-3 are update_engine's; 4-6 keep Android's numbering."""

    REPLACE = 0
    REPLACE_BZ = 1
    MOVE = 2
    BSDIFF = 3
    SOURCE_COPY = 4
    SOURCE_BSDIFF = 5
    ZERO = 6
    REPLACE_ZSTD = 64
    SOURCE_ZSTD_PATCH = 65

    @property
    def reads_source(self) -> bool:
        return self in (OpType.SOURCE_COPY, OpType.SOURCE_BSDIFF, OpType.SOURCE_ZSTD_PATCH)

    @property
    def carries_data(self) -> bool:
        return self not in (OpType.SOURCE_COPY, OpType.ZERO, OpType.MOVE)


class ProcedureType(IntEnum):
    """What an install procedure writes besides the ``/usr`` partition."""

    KERNEL = 0
    PCR_POLICY = 1
    INITRD = 16


class SignatureVersion(IntEnum):
    """Signature algorithms. 2 is what update_engine verifies; 17 is Wellcar's."""

    RSA_PKCS1_SHA256 = 2
    ED25519 = 17


@dataclass(frozen=True, slots=True)
class Extent:
    start_block: int
    num_blocks: int

    @property
    def is_sparse_hole(self) -> bool:
        return self.start_block == SPARSE_HOLE


@dataclass(frozen=True, slots=True)
class InstallOperation:
    type: OpType
    data_offset: int | None = None
    data_length: int | None = None
    src_extents: tuple[Extent, ...] = ()
    src_length: int | None = None
    dst_extents: tuple[Extent, ...] = ()
    dst_length: int | None = None
    data_sha256: bytes | None = None

    @property
    def dst_blocks(self) -> int:
        return sum(e.num_blocks for e in self.dst_extents)

    @property
    def src_blocks(self) -> int:
        return sum(e.num_blocks for e in self.src_extents)


@dataclass(frozen=True, slots=True)
class InstallInfo:
    size: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class InstallProcedure:
    type: ProcedureType
    operations: tuple[InstallOperation, ...] = ()
    old_info: InstallInfo | None = None
    new_info: InstallInfo | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    partition_operations: tuple[InstallOperation, ...] = ()
    noop_operations: tuple[InstallOperation, ...] = ()
    block_size: int = BLOCK_SIZE
    signatures_offset: int | None = None
    signatures_size: int | None = None
    old_partition_info: InstallInfo | None = None
    new_partition_info: InstallInfo | None = None
    procedures: tuple[InstallProcedure, ...] = ()
    usr_verity: UsrVerity | None = None  # Wellcar extension, field 1000

    @property
    def is_delta(self) -> bool:
        return self.old_partition_info is not None or any(
            op.type.reads_source for op in self.partition_operations
        )

    def data_operations(self) -> list[tuple[str, InstallOperation]]:
        """Every operation with a blob, in payload order, labelled for messages."""
        labelled = [(f"operation {i}", op) for i, op in enumerate(self.partition_operations)]
        for proc in self.procedures:
            name = proc.type.name.lower()
            labelled += [(f"{name} operation {i}", op) for i, op in enumerate(proc.operations)]
        return [(label, op) for label, op in labelled if op.data_length]


@dataclass(frozen=True, slots=True)
class Signature:
    version: int
    data: bytes
    key_id: bytes | None = None  # Wellcar addition: the first 8 bytes of SHA-256(public key)


@dataclass(frozen=True, slots=True)
class Signatures:
    signatures: tuple[Signature, ...] = field(default_factory=tuple)


# --- encoding -------------------------------------------------------------------------


def _encode_extent(extent: Extent) -> bytes:
    w = MessageWriter()
    w.varint(1, extent.start_block)
    w.varint(2, extent.num_blocks)
    return w.getvalue()


def _encode_operation(op: InstallOperation) -> bytes:
    w = MessageWriter()
    w.varint(1, int(op.type))
    w.varint(2, op.data_offset)
    w.varint(3, op.data_length)
    for extent in op.src_extents:
        w.bytes_field(4, _encode_extent(extent))
    w.varint(5, op.src_length)
    for extent in op.dst_extents:
        w.bytes_field(6, _encode_extent(extent))
    w.varint(7, op.dst_length)
    w.bytes_field(8, op.data_sha256)
    return w.getvalue()


def _encode_info(info: InstallInfo) -> bytes:
    w = MessageWriter()
    w.varint(1, info.size)
    w.bytes_field(2, info.hash)
    return w.getvalue()


def _encode_procedure(proc: InstallProcedure) -> bytes:
    w = MessageWriter()
    w.varint(1, int(proc.type))
    for op in proc.operations:
        w.bytes_field(2, _encode_operation(op))
    if proc.old_info is not None:
        w.bytes_field(3, _encode_info(proc.old_info))
    if proc.new_info is not None:
        w.bytes_field(4, _encode_info(proc.new_info))
    return w.getvalue()


def _encode_usr_verity(verity: UsrVerity) -> bytes:
    w = MessageWriter()
    w.bytes_field(1, bytes.fromhex(verity.root_hash))
    w.varint(2, verity.hash_offset)
    return w.getvalue()


def encode_manifest(manifest: Manifest) -> bytes:
    w = MessageWriter()
    for op in manifest.partition_operations:
        w.bytes_field(1, _encode_operation(op))
    for op in manifest.noop_operations:
        w.bytes_field(2, _encode_operation(op))
    w.varint(3, manifest.block_size)
    w.varint(4, manifest.signatures_offset)
    w.varint(5, manifest.signatures_size)
    if manifest.old_partition_info is not None:
        w.bytes_field(8, _encode_info(manifest.old_partition_info))
    if manifest.new_partition_info is not None:
        w.bytes_field(9, _encode_info(manifest.new_partition_info))
    for proc in manifest.procedures:
        w.bytes_field(10, _encode_procedure(proc))
    if manifest.usr_verity is not None:
        w.bytes_field(USR_VERITY_FIELD, _encode_usr_verity(manifest.usr_verity))
    return w.getvalue()


def encode_signatures(signatures: Signatures) -> bytes:
    w = MessageWriter()
    for sig in signatures.signatures:
        inner = MessageWriter()
        inner.varint(1, sig.version)
        inner.bytes_field(2, sig.data)
        inner.bytes_field(3, sig.key_id)
        w.bytes_field(1, inner.getvalue())
    return w.getvalue()


# --- decoding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Caps that keep a hostile manifest from costing more than a few hundred MB."""

    max_operations: int = 1 << 20
    max_extents: int = 1 << 22
    max_procedures: int = 8


class _Budget:
    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.operations = 0
        self.extents = 0

    def count_operation(self, where: str) -> None:
        self.operations += 1
        if self.operations > self.limits.max_operations:
            raise PayloadFormatError(
                f"{where}: more than {self.limits.max_operations} operations in the manifest"
            )

    def count_extent(self, where: str) -> None:
        self.extents += 1
        if self.extents > self.limits.max_extents:
            raise PayloadFormatError(
                f"{where}: more than {self.limits.max_extents} extents in the manifest"
            )


def _decode_extent(buf: bytes, where: str) -> Extent:
    start: int | None = None
    count: int | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            start = expect_int(f, where)
        elif f.number == 2:
            count = expect_int(f, where)
    if start is None or count is None:
        raise PayloadFormatError(f"{where}: extent without start_block or num_blocks")
    return Extent(start, count)


def _decode_operation(buf: bytes, where: str, budget: _Budget) -> InstallOperation:
    budget.count_operation(where)
    op_type: OpType | None = None
    ints: dict[int, int] = {}
    src: list[Extent] = []
    dst: list[Extent] = []
    digest: bytes | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            raw = expect_int(f, where)
            try:
                op_type = OpType(raw)
            except ValueError:
                raise PayloadFormatError(f"{where}: unknown operation type {raw}") from None
        elif f.number in (2, 3, 5, 7):
            ints[f.number] = expect_int(f, where)
        elif f.number in (4, 6):
            budget.count_extent(where)
            extent = _decode_extent(expect_bytes(f, where), f"{where} extent")
            (src if f.number == 4 else dst).append(extent)
        elif f.number == 8:
            digest = expect_bytes(f, where)
    if op_type is None:
        raise PayloadFormatError(f"{where}: operation without a type")
    return InstallOperation(
        type=op_type,
        data_offset=ints.get(2),
        data_length=ints.get(3),
        src_extents=tuple(src),
        src_length=ints.get(5),
        dst_extents=tuple(dst),
        dst_length=ints.get(7),
        data_sha256=digest,
    )


def _decode_info(buf: bytes, where: str) -> InstallInfo:
    size: int | None = None
    digest: bytes | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            size = expect_int(f, where)
        elif f.number == 2:
            digest = expect_bytes(f, where)
    if size is None or digest is None:
        raise PayloadFormatError(f"{where}: partition info without size or hash")
    return InstallInfo(size, digest)


def _decode_procedure(buf: bytes, where: str, budget: _Budget) -> InstallProcedure:
    proc_type: ProcedureType | None = None
    ops: list[InstallOperation] = []
    old_info: InstallInfo | None = None
    new_info: InstallInfo | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            raw = expect_int(f, where)
            try:
                proc_type = ProcedureType(raw)
            except ValueError:
                raise PayloadFormatError(f"{where}: unknown procedure type {raw}") from None
        elif f.number == 2:
            ops.append(
                _decode_operation(expect_bytes(f, where), f"{where} operation {len(ops)}", budget)
            )
        elif f.number == 3:
            old_info = _decode_info(expect_bytes(f, where), f"{where} old_info")
        elif f.number == 4:
            new_info = _decode_info(expect_bytes(f, where), f"{where} new_info")
    if proc_type is None:
        raise PayloadFormatError(f"{where}: procedure without a type")
    return InstallProcedure(proc_type, tuple(ops), old_info, new_info)


def _decode_usr_verity(buf: bytes, where: str) -> UsrVerity:
    root_hash: bytes | None = None
    hash_offset: int | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            root_hash = expect_bytes(f, where)
        elif f.number == 2:
            hash_offset = expect_int(f, where)
    if root_hash is None or hash_offset is None:
        raise PayloadFormatError(f"{where}: without root hash or hash offset")
    if len(root_hash) != _ROOT_HASH_BYTES:
        raise PayloadFormatError(
            f"{where}: root hash is {len(root_hash)} bytes, not {_ROOT_HASH_BYTES} (sha256)"
        )
    try:
        return UsrVerity(root_hash.hex(), hash_offset)  # checks the offset
    except UsrVerityError as exc:
        raise PayloadFormatError(f"{where}: {exc}") from exc


def decode_manifest(buf: bytes, limits: DecodeLimits | None = None) -> Manifest:
    """Decode a manifest; structural problems raise :class:`PayloadFormatError`."""
    budget = _Budget(limits or DecodeLimits())
    where = "manifest"
    part_ops: list[InstallOperation] = []
    noop_ops: list[InstallOperation] = []
    procedures: list[InstallProcedure] = []
    ints: dict[int, int] = {}
    infos: dict[int, InstallInfo] = {}
    usr_verity: UsrVerity | None = None
    for f in iter_fields(buf, where):
        if f.number == 1:
            label = f"operation {len(part_ops)}"
            part_ops.append(_decode_operation(expect_bytes(f, where), label, budget))
        elif f.number == 2:
            label = f"noop operation {len(noop_ops)}"
            noop_ops.append(_decode_operation(expect_bytes(f, where), label, budget))
        elif f.number in (3, 4, 5):
            ints[f.number] = expect_int(f, where)
        elif f.number in (8, 9):
            name = "old_partition_info" if f.number == 8 else "new_partition_info"
            infos[f.number] = _decode_info(expect_bytes(f, where), name)
        elif f.number == 10:
            if len(procedures) >= budget.limits.max_procedures:
                raise PayloadFormatError(f"{where}: more than {len(procedures)} procedures")
            label = f"procedure {len(procedures)}"
            procedures.append(_decode_procedure(expect_bytes(f, where), label, budget))
        elif f.number == USR_VERITY_FIELD:
            usr_verity = _decode_usr_verity(expect_bytes(f, where), "usr_verity")
    new_info = infos.get(9)
    if usr_verity is not None and new_info is not None and usr_verity.hash_offset >= new_info.size:
        # The hash tree lies inside the /usr the payload writes; past its end, the boot
        # entry would point dm-verity at bytes the payload never wrote.
        raise PayloadFormatError(
            f"usr_verity: hash offset {usr_verity.hash_offset} is not inside the "
            f"{new_info.size}-byte new /usr"
        )
    return Manifest(
        partition_operations=tuple(part_ops),
        noop_operations=tuple(noop_ops),
        block_size=ints.get(3, BLOCK_SIZE),
        signatures_offset=ints.get(4),
        signatures_size=ints.get(5),
        old_partition_info=infos.get(8),
        new_partition_info=infos.get(9),
        procedures=tuple(procedures),
        usr_verity=usr_verity,
    )


def decode_signatures(buf: bytes) -> Signatures:
    where = "signature blob"
    found: list[Signature] = []
    for f in iter_fields(buf, where):
        if f.number != 1:
            continue
        version: int | None = None
        data: bytes | None = None
        key_id: bytes | None = None
        inner_where = f"{where} entry {len(found)}"
        for g in iter_fields(expect_bytes(f, where), inner_where):
            if g.number == 1:
                version = expect_int(g, inner_where)
            elif g.number == 2:
                data = expect_bytes(g, inner_where)
            elif g.number == 3:
                key_id = expect_bytes(g, inner_where)
        if version is None or data is None:
            raise PayloadFormatError(f"{inner_where}: without version or data")
        found.append(Signature(version, data, key_id))
    return Signatures(tuple(found))
