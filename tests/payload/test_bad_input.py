"""Bad payloads, keys, sources and targets: the right error, a clear message, nothing written.

Each apply here runs with a checkpoint file that already holds progress: errors that a
retry cannot fix must clear it, an incomplete download must keep it.
"""

from __future__ import annotations

import dataclasses
import shutil
import stat
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import zstandard

from wellcar.payload.apply import ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import (
    PayloadFormatError,
    PayloadIntegrityError,
    PayloadSignatureError,
    PayloadTruncatedError,
    SourceMismatchError,
    TargetError,
)
from wellcar.payload.inspect import describe_payload, verify_payload
from wellcar.payload.layout import HEADER_SIZE, MAGIC, Limits, decode_header, plan_layout
from wellcar.payload.manifest import (
    SPARSE_HOLE,
    Extent,
    InstallInfo,
    InstallOperation,
    InstallProcedure,
    Manifest,
    OpType,
    ProcedureType,
    Signature,
    Signatures,
    decode_manifest,
    decode_signatures,
    encode_manifest,
    encode_signatures,
)
from wellcar.payload.operations import (
    BSDIFF_MAGIC,
    decode_operation,
    encode_bsdiff,
    encode_bz2,
    encode_zstd,
)
from wellcar.payload.reader import file_opener
from wellcar.payload.resume import ApplyCheckpoint, CheckpointFile
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import TargetRegion
from wellcar.payload.wire import MessageWriter
from wellcar.payload.writer import BlobArea, write_payload

from .conftest import Images, Keys, Payloads
from .helpers import BS, flip_bit, raw_payload, read_meta, sha256

MIB = 1 << 20


class Slot:
    """A target path plus a checkpoint file that already holds (someone's) progress."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.target = root / "usr-b.img"
        self.checkpoint = CheckpointFile(root / "usr-b.progress.json")
        self.checkpoint.save(ApplyCheckpoint("0" * 64, str(self.target), 3, 12345))

    def apply(
        self,
        payload: Path,
        trusted: TrustedKeys | None,
        source: Path | None = None,
        region: TargetRegion | None = None,
    ) -> None:
        apply_payload(
            file_opener(payload),
            ApplyTargets(region or TargetRegion(self.target)),
            trusted,
            ApplySources(TargetRegion(source) if source else None),
            self.checkpoint,
        )

    @property
    def checkpoint_kept(self) -> bool:
        return self.checkpoint.load() is not None


def copy(src: Path, tmp_path: Path, name: str = "p.crau") -> Path:
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


# --- truncation -----------------------------------------------------------------------


def _cut_points(payload: Path) -> dict[str, tuple[int, str]]:
    meta = read_meta(payload)
    layout = meta.layout
    blob0 = meta.blobs[0]
    last = meta.blobs[-1]
    size = payload.stat().st_size
    points = {
        "empty": (0, "the CrAU header"),
        "header": (11, "the CrAU header"),
        "manifest": (HEADER_SIZE + layout.manifest_size // 2, "the manifest"),
        "first-blob": (layout.metadata_size + blob0.offset + blob0.length // 3, blob0.label),
        "last-byte": (size - 1, "signature blob" if not layout.signatures_first else last.label),
    }
    if layout.signatures_first:
        points["signature"] = (layout.metadata_size + 100, "the signature blob")
    else:
        points["signature"] = (layout.signed_size + 10, "the signature blob")
    return points


@pytest.mark.parametrize("kind", ["full", "flatcar"])
@pytest.mark.parametrize(
    "where", ["empty", "header", "manifest", "signature", "first-blob", "last-byte"]
)
def test_truncated_payload(
    tmp_path: Path,
    keys: Keys,
    payloads: Payloads,
    small_checkpoints: int,
    kind: str,
    where: str,
) -> None:
    original: Path = getattr(payloads, kind)
    cut, part = _cut_points(original)[where]
    payload = tmp_path / "p.crau"
    payload.write_bytes(original.read_bytes()[:cut])
    slot = Slot(tmp_path)
    with pytest.raises(PayloadTruncatedError, match="incomplete") as info:
        slot.apply(payload, keys.trust(keys.rsa))
    assert part in str(info.value)
    assert f"ends at byte {cut} " in str(info.value)
    before_writing = where in ("empty", "header", "manifest") or (
        kind == "full" and where == "signature"
    )
    if before_writing:
        assert not slot.target.exists()
        assert slot.checkpoint_kept  # not even read yet: left for a later attempt
    if kind == "full" and where == "last-byte":
        # The foreign record was dropped, and this run's progress is kept for a resume.
        saved = slot.checkpoint.load()
        assert saved is not None and saved.payload_id == read_meta(original).payload_id
    with pytest.raises(PayloadTruncatedError):
        verify_payload(payload, keys.trust(keys.rsa))


def test_trailing_garbage(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    payload = copy(payloads.full, tmp_path)
    size = payload.stat().st_size
    with open(payload, "ab") as f:
        f.write(b"\0junk")
    slot = Slot(tmp_path)
    with pytest.raises(PayloadFormatError, match=f"unexpected data after byte {size}"):
        slot.apply(payload, keys.trust(keys.rsa))
    assert not slot.checkpoint_kept
    with pytest.raises(PayloadFormatError, match="unexpected data"):
        verify_payload(payload, None)


# --- flipped bits ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "delta", "flatcar"])
@pytest.mark.parametrize("which", [0, -1, "middle"])
def test_flipped_bit_in_a_blob(
    tmp_path: Path,
    images: Images,
    keys: Keys,
    payloads: Payloads,
    kind: str,
    which: int | str,
) -> None:
    payload = copy(getattr(payloads, kind), tmp_path)
    meta = read_meta(payload)
    blob = meta.blobs[len(meta.blobs) // 2 if which == "middle" else int(which)]
    flip_bit(payload, meta.layout.metadata_size + blob.offset + blob.length // 2, bit=5)
    slot = Slot(tmp_path)
    with pytest.raises(PayloadIntegrityError, match="does not match its SHA-256") as info:
        slot.apply(payload, keys.trust(keys.rsa), source=images.old)
    assert str(info.value).startswith(f"{blob.label}:")
    assert not slot.checkpoint_kept
    with pytest.raises(PayloadIntegrityError, match=blob.label):
        verify_payload(payload, None)


def test_flipped_bit_in_the_manifest_hash_breaks_the_signature(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    payload = copy(payloads.full, tmp_path)
    position = payload.read_bytes().index(sha256(images.new_bytes))
    assert position < read_meta(payloads.full).layout.metadata_size
    flip_bit(payload, position + 7)
    slot = Slot(tmp_path)
    with pytest.raises(PayloadSignatureError, match="no signature verifies"):
        slot.apply(payload, keys.trust(keys.rsa))
    assert not slot.target.exists()
    assert not slot.checkpoint_kept


@pytest.mark.parametrize("kind", ["full", "delta", "with_boot"])
def test_flipped_bits_anywhere_in_signed_metadata_write_nothing(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, kind: str
) -> None:
    """Wellcar's layout: any change to header or manifest is caught before writing."""
    original: Path = getattr(payloads, kind)
    metadata_size = read_meta(original).layout.metadata_size
    trusted = keys.trust(keys.rsa, keys.ed25519)
    for i, position in enumerate(range(0, metadata_size, max(1, metadata_size // 23))):
        payload = copy(original, tmp_path, f"p{i}.crau")
        flip_bit(payload, position, bit=i % 8)
        slot = Slot(tmp_path / f"s{i}")
        with pytest.raises((PayloadSignatureError, PayloadFormatError)) as info:
            slot.apply(payload, trusted, source=images.old)
        assert not isinstance(info.value, PayloadTruncatedError) or position < HEADER_SIZE
        assert not slot.target.exists(), f"wrote after a flip at byte {position}"
        assert str(info.value)


def test_flipped_bit_in_the_signature(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    for kind in ("full", "flatcar"):
        payload = copy(getattr(payloads, kind), tmp_path, f"{kind}.crau")
        meta = read_meta(payload)
        layout = meta.layout
        start = layout.metadata_size if layout.signatures_first else layout.signed_size
        data = payload.read_bytes()
        sig_blob = data[start : start + layout.signatures_size]
        [signature] = decode_signatures(sig_blob).signatures
        flip_bit(payload, start + sig_blob.index(signature.data) + 100, bit=3)
        slot = Slot(tmp_path / kind)
        with pytest.raises(PayloadSignatureError, match="no signature verifies"):
            slot.apply(payload, keys.trust(keys.rsa))
        if layout.signatures_first:
            assert not slot.target.exists()
        assert not slot.checkpoint_kept


# --- keys and signatures --------------------------------------------------------------


def test_one_good_signature_is_enough_even_next_to_a_broken_one(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    payload = copy(payloads.two_keys, tmp_path)
    meta = read_meta(payload)
    assert meta.leading_signatures is not None
    rsa_sig = meta.leading_signatures.signatures[0]
    assert rsa_sig.version == 2
    start = meta.layout.metadata_size
    flip_bit(payload, start + meta.leading_signature_blob.index(rsa_sig.data) + 17)
    report = verify_payload(payload, keys.trust(keys.rsa, keys.ed25519))
    assert report.signed_by == keys.ed25519.key_id.hex()
    slot = Slot(tmp_path)
    with pytest.raises(PayloadSignatureError):
        slot.apply(payload, keys.trust(keys.rsa))
    assert not slot.target.exists()


def test_payload_signed_by_an_unknown_key(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    slot = Slot(tmp_path)
    with pytest.raises(PayloadSignatureError, match="not trust") as info:
        slot.apply(payloads.full, keys.trust(keys.stranger, keys.ed25519))
    assert keys.rsa.key_id.hex() in str(info.value)
    assert not slot.target.exists()
    assert not slot.checkpoint_kept
    with pytest.raises(PayloadSignatureError):
        verify_payload(payloads.flatcar, keys.trust(keys.stranger))


def test_unsigned_payload_when_keys_are_required(
    tmp_path: Path, keys: Keys, payloads: Payloads
) -> None:
    slot = Slot(tmp_path)
    with pytest.raises(PayloadSignatureError, match="not signed"):
        slot.apply(payloads.full_unsigned, keys.trust(keys.rsa))
    assert not slot.target.exists()
    assert not slot.checkpoint_kept
    with pytest.raises(PayloadSignatureError, match="not signed"):
        verify_payload(payloads.full_unsigned, keys.trust(keys.rsa))
    # Without keys it is accepted: hashes are still checked.
    assert verify_payload(payloads.full_unsigned, None).signed_by is None


def test_signature_with_an_unknown_algorithm(tmp_path: Path, images: Images, keys: Keys) -> None:
    """A signature blob whose only entry is of a version nobody verifies."""
    op = InstallOperation(
        OpType.REPLACE, 0, BS, dst_extents=(Extent(0, 1),), data_sha256=sha256(bytes(BS))
    )
    blob = encode_signatures(Signatures((Signature(99, b"s" * 64, b"k" * 8),)))
    manifest = Manifest(
        partition_operations=(dataclasses.replace(op, data_offset=len(blob)),),
        signatures_offset=0,
        signatures_size=len(blob),
        new_partition_info=InstallInfo(BS, sha256(bytes(BS))),
    )
    payload = tmp_path / "p.crau"
    payload.write_bytes(raw_payload(manifest, bytes(BS), signatures=blob))
    assert [s.algorithm for s in describe_payload(payload).signatures] == ["unknown-version-99"]
    slot = Slot(tmp_path)
    with pytest.raises(PayloadSignatureError, match="signed by: 6b6b6b6b6b6b6b6b"):
        slot.apply(payload, keys.trust(keys.rsa, keys.ed25519))
    assert not slot.target.exists()


def test_rsa_signature_presented_as_ed25519_is_refused(
    tmp_path: Path, keys: Keys, payloads: Payloads
) -> None:
    payload = copy(payloads.full, tmp_path)
    meta = read_meta(payload)
    layout = meta.layout
    assert meta.leading_signatures is not None
    [sig] = meta.leading_signatures.signatures
    relabelled = encode_signatures(Signatures((dataclasses.replace(sig, version=17),)))
    assert len(relabelled) == layout.signatures_size
    with open(payload, "r+b") as f:
        f.seek(layout.metadata_size)
        f.write(relabelled)
    with pytest.raises(PayloadSignatureError):
        verify_payload(payload, keys.trust(keys.rsa, keys.ed25519))


# --- sources and targets --------------------------------------------------------------


def test_delta_for_another_source(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    slot = Slot(tmp_path)
    with pytest.raises(SourceMismatchError, match="made for another source /usr") as info:
        slot.apply(payloads.delta, keys.trust(keys.rsa), source=images.other_old)
    old_hash = read_meta(payloads.delta).manifest.old_partition_info
    assert old_hash is not None and old_hash.hash.hex()[:16] in str(info.value)
    assert not slot.target.exists()
    assert not slot.checkpoint_kept


def test_delta_with_a_source_that_is_too_short(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    short = tmp_path / "short.img"
    short.write_bytes(images.old.read_bytes()[:-BS])
    slot = Slot(tmp_path)
    with pytest.raises(SourceMismatchError, match="smaller"):
        slot.apply(payloads.delta, keys.trust(keys.rsa), source=short)
    assert not slot.target.exists()


def test_delta_without_a_source(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    slot = Slot(tmp_path)
    with pytest.raises(SourceMismatchError, match="delta payload; give the running slot"):
        slot.apply(payloads.delta, keys.trust(keys.rsa))
    assert not slot.target.exists()
    assert not slot.checkpoint_kept


def test_delta_onto_its_own_source(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    running = copy(images.old, tmp_path, "usr-a.img")
    before = running.read_bytes()
    slot = Slot(tmp_path)
    with pytest.raises(TargetError, match="same slot"):
        slot.apply(
            payloads.delta, keys.trust(keys.rsa), source=running, region=TargetRegion(running)
        )
    assert running.read_bytes() == before


def test_block_device_target_too_small(
    tmp_path: Path, keys: Keys, payloads: Payloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wellcar.payload import targets

    device = tmp_path / "vda4"
    before = b"\x77" * (1 << 20)  # 1 MiB 'partition', the payload needs 4 MiB
    device.write_bytes(before)
    # Let targets see the file as a block device (its size is then what seeking finds).
    blockish = SimpleNamespace(**{**vars(stat), "S_ISBLK": lambda mode: True})
    monkeypatch.setattr(targets, "stat", blockish)
    slot = Slot(tmp_path)
    with pytest.raises(TargetError, match="1048576"):
        slot.apply(payloads.full, keys.trust(keys.rsa), region=TargetRegion(device))
    assert device.read_bytes() == before


def test_target_region_too_small(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    new_size = images.new.stat().st_size
    disk = tmp_path / "disk.img"
    before = bytes(range(256)) * ((new_size + 8 * BS) // 256)
    disk.write_bytes(before)
    slot = Slot(tmp_path)
    region = TargetRegion(disk, offset=4 * BS, size=new_size - BS)
    with pytest.raises(TargetError, match=f"needs {new_size} bytes") as info:
        slot.apply(payloads.full, keys.trust(keys.rsa), region=region)
    assert str(new_size - BS) in str(info.value)
    assert disk.read_bytes() == before
    assert not slot.checkpoint_kept


def test_fixed_region_on_a_missing_file(tmp_path: Path, payloads: Payloads) -> None:
    slot = Slot(tmp_path)
    region = TargetRegion(tmp_path / "no-such-disk", 0, 64 * MIB)
    with pytest.raises(TargetError, match="cannot open target"):
        slot.apply(payloads.full, None, region=region)
    assert not (tmp_path / "no-such-disk").exists()


# --- hand-made manifests with absurd claims -------------------------------------------

_BLOCK_A = b"a" * BS
_BLOCK_B = b"b" * BS


def good_manifest() -> Manifest:
    return Manifest(
        partition_operations=(
            InstallOperation(
                OpType.REPLACE, 0, BS, dst_extents=(Extent(0, 1),), data_sha256=sha256(_BLOCK_A)
            ),
            InstallOperation(
                OpType.REPLACE, BS, BS, dst_extents=(Extent(1, 1),), data_sha256=sha256(_BLOCK_B)
            ),
            InstallOperation(OpType.ZERO, dst_extents=(Extent(2, 2),)),
        ),
        new_partition_info=InstallInfo(4 * BS, sha256(_BLOCK_A + _BLOCK_B + bytes(2 * BS))),
    )


def _ops(manifest: Manifest, index: int, **changes: object) -> Manifest:
    ops = list(manifest.partition_operations)
    ops[index] = dataclasses.replace(ops[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(manifest, partition_operations=tuple(ops))


def _with_old(manifest: Manifest) -> Manifest:
    return dataclasses.replace(manifest, old_partition_info=InstallInfo(4 * BS, sha256(b"o")))


Mutation = Callable[[Manifest], Manifest]
ABSURD: dict[str, tuple[Mutation, str]] = {
    "huge new size": (
        lambda m: dataclasses.replace(m, new_partition_info=InstallInfo(1 << 50, b"h" * 32)),
        r"new_partition_info: size 1125899906842624 is outside",
    ),
    "zero new size": (
        lambda m: dataclasses.replace(m, new_partition_info=InstallInfo(0, b"h" * 32)),
        "new_partition_info: size 0 is outside",
    ),
    "short hash": (
        lambda m: dataclasses.replace(m, new_partition_info=InstallInfo(4 * BS, b"h" * 31)),
        "hash is 31 bytes, not a SHA-256",
    ),
    "no new info": (
        lambda m: dataclasses.replace(m, new_partition_info=None),
        "no new_partition_info",
    ),
    "block size": (lambda m: dataclasses.replace(m, block_size=512), "block size 512"),
    "extent beyond partition": (
        lambda m: _ops(m, 2, dst_extents=(Extent(3, 2),)),
        r"operation 2: writes blocks 3\.\.\.4, beyond the 4 blocks",
    ),
    "extent at 2**64-1": (
        lambda m: _ops(m, 2, dst_extents=(Extent(SPARSE_HOLE, 1),)),
        "operation 2: writes blocks",
    ),
    "empty extent": (lambda m: _ops(m, 2, dst_extents=(Extent(2, 0),)), "empty destination"),
    "no extents": (lambda m: _ops(m, 2, dst_extents=()), "operation 2: no destination extents"),
    "blob offsets not contiguous": (
        lambda m: _ops(m, 1, data_offset=BS + 1),
        "operation 1: data_offset 4097 should be 4096",
    ),
    "blobs out of order": (
        lambda m: _ops(_ops(m, 0, data_offset=BS), 1, data_offset=0),
        "operation 0: data_offset 4096 should be 0",
    ),
    "data_length over the limit": (
        lambda m: _ops(m, 1, data_length=(64 << 20) + 1),
        "operation 1: blob of 67108865 bytes exceeds the limit",
    ),
    "REPLACE longer than its extents": (
        lambda m: _ops(m, 1, data_length=BS + 1),
        "REPLACE carries 4097 bytes for 4096 bytes",
    ),
    "output over the limit": (
        lambda m: _ops(
            dataclasses.replace(m, new_partition_info=InstallInfo(1 << 30, b"h" * 32)),
            1,
            type=OpType.REPLACE_ZSTD,
            dst_extents=(Extent(1, (64 << 20) // BS + 1),),
        ),
        "operation 1: writes 67112960 bytes in one operation",
    ),
    "overlapping destinations": (
        lambda m: _ops(m, 2, dst_extents=(Extent(1, 2),)),
        "overlaps blocks already written by operation",
    ),
    "overlap inside one operation": (
        lambda m: _ops(m, 2, dst_extents=(Extent(2, 2), Extent(3, 1))),
        "operation 2: overlaps blocks already written by operation 2",
    ),
    "MOVE": (
        lambda m: _ops(m, 2, type=OpType.MOVE, src_extents=(Extent(0, 2),)),
        "operation 2: MOVE works in place",
    ),
    "BSDIFF": (
        lambda m: _ops(m, 1, type=OpType.BSDIFF),
        "operation 1: BSDIFF works in place",
    ),
    "ZERO with data": (
        lambda m: _ops(m, 2, data_offset=2 * BS, data_length=BS),
        "ZERO must not carry data",
    ),
    "REPLACE without data": (
        lambda m: _ops(m, 1, data_length=0),
        "operation 1: REPLACE without data",
    ),
    "missing data hash": (
        lambda m: _ops(m, 0, data_sha256=None),
        "operation 0: missing or malformed data_sha256",
    ),
    "REPLACE with a source": (
        lambda m: _ops(m, 0, src_extents=(Extent(0, 1),)),
        "REPLACE must not have source extents",
    ),
    "SOURCE_COPY without old info": (
        lambda m: _ops(m, 2, type=OpType.SOURCE_COPY, src_extents=(Extent(0, 2),)),
        "SOURCE_COPY reads the source /usr partition, but the manifest records no old hash",
    ),
    "source extent outside old partition": (
        lambda m: _ops(_with_old(m), 2, type=OpType.SOURCE_COPY, src_extents=(Extent(3, 2),)),
        r"source extent 3\+2 lies outside the 4 blocks",
    ),
    "SOURCE_COPY sizes differ": (
        lambda m: _ops(_with_old(m), 2, type=OpType.SOURCE_COPY, src_extents=(Extent(0, 1),)),
        "SOURCE_COPY source and destination differ",
    ),
    "SOURCE_COPY without source extents": (
        lambda m: _ops(_with_old(m), 2, type=OpType.SOURCE_COPY),
        "SOURCE_COPY without source extents",
    ),
    "only signatures_offset": (
        lambda m: dataclasses.replace(m, signatures_offset=0),
        "only one of signatures_offset/signatures_size",
    ),
    "huge signatures": (
        lambda m: dataclasses.replace(m, signatures_offset=0, signatures_size=1 << 20),
        "signatures_size 1048576 is outside",
    ),
    "signatures in the middle": (
        lambda m: dataclasses.replace(m, signatures_offset=BS, signatures_size=100),
        "signatures_offset 4096 is neither 0 nor the end of the data blobs",
    ),
    "noop writing blocks": (
        lambda m: dataclasses.replace(
            m, noop_operations=(InstallOperation(OpType.REPLACE, dst_extents=(Extent(0, 1),)),)
        ),
        "noop operation 0: must only cover the signature blob",
    ),
    "no operations": (
        lambda m: dataclasses.replace(m, partition_operations=()),
        "no operations for the /usr partition",
    ),
    "two kernels": (
        lambda m: dataclasses.replace(
            m,
            procedures=(
                InstallProcedure(ProcedureType.KERNEL, (), None, InstallInfo(BS, b"k" * 32)),
                InstallProcedure(ProcedureType.KERNEL, (), None, InstallInfo(BS, b"k" * 32)),
            ),
        ),
        "two kernel procedures",
    ),
    "procedure without new info": (
        lambda m: dataclasses.replace(m, procedures=(InstallProcedure(ProcedureType.INITRD),)),
        "initrd procedure has no new_info",
    ),
    "procedure writes beyond its file": (
        lambda m: dataclasses.replace(
            m,
            procedures=(
                InstallProcedure(
                    ProcedureType.KERNEL,
                    (InstallOperation(OpType.ZERO, dst_extents=(Extent(0, 2),)),),
                    None,
                    InstallInfo(BS, b"k" * 32),
                ),
            ),
        ),
        "kernel operation 0: writes blocks 0...1, beyond the 1 blocks of the new kernel",
    ),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_manifest_is_a_format_error(tmp_path: Path, case: str) -> None:
    mutate, message = ABSURD[case]
    manifest = mutate(good_manifest())
    encoded = encode_manifest(manifest)
    with pytest.raises(PayloadFormatError, match=message):
        plan_layout(decode_manifest(encoded), len(encoded))
    # The same payload, applied: refused before a byte is written.
    payload = tmp_path / "p.crau"
    payload.write_bytes(raw_payload(manifest, _BLOCK_A + _BLOCK_B))
    slot = Slot(tmp_path)
    with pytest.raises(PayloadFormatError, match=message):
        slot.apply(payload, None)
    assert not slot.target.exists()
    assert not slot.checkpoint_kept
    with pytest.raises(PayloadFormatError, match=message):
        describe_payload(payload)


def test_good_hand_made_manifest_applies(tmp_path: Path) -> None:
    """The baseline the absurd cases start from is itself fine."""
    payload = tmp_path / "p.crau"
    payload.write_bytes(raw_payload(good_manifest(), _BLOCK_A + _BLOCK_B))
    slot = Slot(tmp_path)
    slot.apply(payload, None)
    assert slot.target.read_bytes() == _BLOCK_A + _BLOCK_B + bytes(2 * BS)
    assert not slot.checkpoint_kept


def test_unknown_operation_type(tmp_path: Path) -> None:
    manifest = good_manifest()
    op = MessageWriter()
    op.varint(1, 99)
    extent = MessageWriter()
    extent.varint(1, 3)
    extent.varint(2, 1)
    op.bytes_field(6, extent.getvalue())
    extra = MessageWriter()
    extra.bytes_field(1, op.getvalue())
    encoded = encode_manifest(manifest) + extra.getvalue()
    payload = tmp_path / "p.crau"
    payload.write_bytes(
        struct.pack(">4sQQ", MAGIC, 1, len(encoded)) + encoded + _BLOCK_A + _BLOCK_B
    )
    slot = Slot(tmp_path)
    with pytest.raises(PayloadFormatError, match="operation 3: unknown operation type 99"):
        slot.apply(payload, None)
    assert not slot.target.exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (struct.pack(">4sQQ", b"CrAX", 1, 10), "not an update payload: magic is b'CrAX'"),
        (struct.pack(">4sQQ", MAGIC, 2, 10), "unsupported payload format version 2"),
        (struct.pack(">4sQQ", MAGIC, 1, 0), "manifest length 0 is outside"),
        (struct.pack(">4sQQ", MAGIC, 1, (64 << 20) + 1), "manifest length 67108865 is outside"),
        (struct.pack(">4sQQ", MAGIC, 1, (1 << 64) - 1), "is outside 1..67108864"),
    ],
)
def test_bad_header(tmp_path: Path, header: bytes, message: str) -> None:
    with pytest.raises(PayloadFormatError, match=message):
        decode_header(header)
    payload = tmp_path / "p.crau"
    payload.write_bytes(header + bytes(100))
    slot = Slot(tmp_path)
    with pytest.raises(PayloadFormatError, match=message) as info:
        slot.apply(payload, None)
    assert not isinstance(info.value, PayloadTruncatedError)
    assert not slot.target.exists()
    assert not slot.checkpoint_kept


def test_limits_are_configurable(tmp_path: Path, payloads: Payloads) -> None:
    payload = tmp_path / "p.crau"
    payload.write_bytes(raw_payload(good_manifest(), _BLOCK_A + _BLOCK_B))
    slot = Slot(tmp_path)
    tight = Limits(max_partition_bytes=2 * BS)
    with pytest.raises(PayloadFormatError, match=r"size 16384 is outside 1\.\.8192"):
        apply_payload(
            file_opener(payload), ApplyTargets(TargetRegion(slot.target)), None, limits=tight
        )
    with pytest.raises(PayloadFormatError, match="manifest length"):
        apply_payload(
            file_opener(payloads.full),
            ApplyTargets(TargetRegion(slot.target)),
            None,
            limits=Limits(max_manifest_bytes=64),
        )
    assert not slot.target.exists()


# --- decompression bombs and forged patches -------------------------------------------


def _single_op_payload(
    tmp_path: Path, op_type: OpType, blob: bytes, blocks: int = 1, src: Path | None = None
) -> Path:
    """An unsigned payload of one data operation writing ``blocks`` blocks."""
    old_info = None
    src_extents: tuple[Extent, ...] = ()
    if src is not None:
        old = src.read_bytes()
        old_info = InstallInfo(len(old), sha256(old))
        src_extents = (Extent(0, len(old) // BS),)
    manifest = Manifest(
        partition_operations=(
            InstallOperation(
                op_type,
                0,
                len(blob),
                src_extents=src_extents,
                dst_extents=(Extent(0, blocks),),
                data_sha256=sha256(blob),
            ),
        ),
        old_partition_info=old_info,
        new_partition_info=InstallInfo(blocks * BS, b"\x01" * 32),
    )
    (tmp_path / "blobs").write_bytes(blob)
    payload = tmp_path / "bomb.crau"
    write_payload(payload, manifest, BlobArea(tmp_path / "blobs", 0, len(blob)), [])
    return payload


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    """128 MiB of zeros in a few KiB of zstd."""
    blob = zstandard.ZstdCompressor(level=3).compress(bytes(128 * MIB))
    assert len(blob) < 64 << 10
    return blob


def _apply_measuring(
    slot: Slot, payload: Path, source: Path | None = None
) -> tuple[Exception, int]:
    tracemalloc.start()
    try:
        with pytest.raises(PayloadIntegrityError) as info:
            slot.apply(payload, None, source=source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return info.value, peak


@pytest.mark.parametrize("blocks", [1, 16])
def test_zstd_bomb_is_refused(tmp_path: Path, zstd_bomb: bytes, blocks: int) -> None:
    payload = _single_op_payload(tmp_path, OpType.REPLACE_ZSTD, zstd_bomb, blocks)
    slot = Slot(tmp_path)
    with pytest.raises(
        PayloadIntegrityError, match=f"operation 0: zstd data expands beyond {blocks * BS} bytes"
    ):
        slot.apply(payload, None)
    assert not slot.checkpoint_kept
    assert slot.target.stat().st_size == 0  # refused before writing its output


@pytest.mark.parametrize("op_type", [OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD_PATCH])
def test_zstd_bomb_memory_is_bounded(
    tmp_path: Path, images: Images, zstd_bomb: bytes, op_type: OpType
) -> None:
    source = None
    if op_type is OpType.SOURCE_ZSTD_PATCH:
        source = tmp_path / "old.img"
        source.write_bytes(images.old.read_bytes()[: 4 * BS])
    payload = _single_op_payload(tmp_path, op_type, zstd_bomb, 1, source)
    error, peak = _apply_measuring(Slot(tmp_path), payload, source)
    assert "expands beyond" in str(error)
    assert peak < 16 * MIB, f"{peak / MIB:.0f} MiB held to refuse a 4 KiB operation"


def test_bz2_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    blob = encode_bz2(bytes(24 * MIB))
    assert len(blob) < 4096
    payload = _single_op_payload(tmp_path, OpType.REPLACE_BZ, blob, 2)
    error, peak = _apply_measuring(Slot(tmp_path), payload)
    assert "operation 0: bzip2 data expands beyond 8192 bytes" in str(error)
    assert peak < 8 * MIB


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00" * 10, "zstd data is corrupt"),
        (encode_zstd(b"x" * 5000, 3)[:-6], "zstd data is truncated|corrupt"),
    ],
)
def test_corrupt_zstd_blob(blob: bytes, message: str) -> None:
    with pytest.raises(PayloadIntegrityError, match=message):
        decode_operation(OpType.REPLACE_ZSTD, blob, None, 2 * BS, "operation 7")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"BZh9garbage", "bzip2 data is corrupt"),
        (encode_bz2(b"y" * 5000)[:-8], "bzip2 data is truncated|corrupt"),
    ],
)
def test_corrupt_bz2_blob(blob: bytes, message: str) -> None:
    with pytest.raises(PayloadIntegrityError, match=message):
        decode_operation(OpType.REPLACE_BZ, blob, None, 2 * BS, "operation 7")


def _bsdiff_with_header(patch: bytes, new_len: int) -> bytes:
    return patch[:24] + struct.pack("<q", new_len) + patch[32:]


@pytest.mark.parametrize("new_len", [1 << 62, (1 << 40) + 3, 2 * BS + 1, -5])
def test_forged_bsdiff_header_with_huge_size(tmp_path: Path, new_len: int) -> None:
    source = bytes(range(256)) * 32  # 2 blocks
    patch = encode_bsdiff(source, source[::-1])
    forged = _bsdiff_with_header(patch, new_len)
    with pytest.raises(
        PayloadIntegrityError, match="operation 3: bsdiff header sizes are out of range"
    ):
        decode_operation(OpType.SOURCE_BSDIFF, forged, source, 2 * BS, "operation 3")
    # And through apply, with a source: refused, bounded.
    (tmp_path / "old").write_bytes(source)
    payload = _single_op_payload(tmp_path, OpType.SOURCE_BSDIFF, forged, 2, tmp_path / "old")
    error, peak = _apply_measuring(Slot(tmp_path), payload, tmp_path / "old")
    assert "bsdiff header sizes are out of range" in str(error)
    assert peak < 8 * MIB


def test_bsdiff_blocks_that_expand_beyond_the_output_are_refused() -> None:
    source = b"s" * (2 * BS)
    # A genuine patch for 2 blocks, with an 'extra' block swapped for a bomb.
    patch = encode_bsdiff(source, b"t" * (2 * BS))
    control_len, diff_len = struct.unpack_from("<qq", patch, 8)
    bomb = encode_bz2(bytes(32 * MIB))
    forged = patch[: 32 + control_len + diff_len] + bomb
    with pytest.raises(PayloadIntegrityError, match="bzip2 data expands beyond 8192 bytes"):
        decode_operation(OpType.SOURCE_BSDIFF, forged, source, 2 * BS, "operation 0")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (b"BSDIFF40" + bytes(10), "shorter than its header"),
        (b"BSDIFF39" + bytes(24), "not a BSDIFF40 patch"),
        (BSDIFF_MAGIC + struct.pack("<qqq", 1 << 40, 0, 10), "out of range"),
    ],
)
def test_malformed_bsdiff_patches(patch: bytes, message: str) -> None:
    with pytest.raises(PayloadIntegrityError, match=message):
        decode_operation(OpType.SOURCE_BSDIFF, patch, b"s" * BS, BS, "operation 0")
