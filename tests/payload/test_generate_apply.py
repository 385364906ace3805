"""Generate payloads, apply them, and compare what lands in the slot with the new image."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from wellcar.disk import UsrVerity
from wellcar.payload.apply import ApplyResult, ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import (
    PayloadError,
    PayloadIntegrityError,
    PayloadSignatureError,
)
from wellcar.payload.generate import PayloadInputs, generate_payload
from wellcar.payload.inspect import describe_payload, verify_payload
from wellcar.payload.manifest import (
    SPARSE_HOLE,
    Extent,
    InstallInfo,
    InstallOperation,
    Manifest,
    OpType,
    decode_signatures,
)
from wellcar.payload.operations import encode_bsdiff, encode_bz2, encode_zstd, encode_zstd_patch
from wellcar.payload.reader import file_opener
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import TargetRegion
from wellcar.payload.writer import BlobArea, resign_payload, write_payload

from .conftest import Images, Keys, Payloads
from .helpers import BS, FAST, flip_bit, make_blob, read_meta, sha256, text_block, vocabulary


def apply_file(
    payload: Path,
    target: Path | TargetRegion,
    trusted: TrustedKeys | None,
    source: Path | None = None,
    kernel: Path | None = None,
    initrd: Path | None = None,
) -> ApplyResult:
    region = target if isinstance(target, TargetRegion) else TargetRegion(target)
    return apply_payload(
        file_opener(payload),
        ApplyTargets(region, kernel, initrd),
        trusted,
        ApplySources(TargetRegion(source) if source else None),
    )


# --- full payloads --------------------------------------------------------------------


def test_full_payload_reproduces_the_new_image(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    target = tmp_path / "usr-b.img"
    result = apply_file(payloads.full, target, keys.trust(keys.rsa))
    new = images.new_bytes
    assert target.read_bytes() == new
    assert result.new_size == len(new)
    assert result.new_sha256 == sha256(new)
    assert result.signed_by == keys.rsa.key_id.hex()
    assert result.payload_bytes == payloads.full.stat().st_size
    assert result.resumed_from_operation is None
    assert result.operations == len(read_meta(payloads.full).manifest.partition_operations)

    desc = describe_payload(payloads.full)
    assert (desc.kind, desc.layout) == ("full", "signatures-first")
    assert set(desc.parts[0].operations) <= {"REPLACE_ZSTD", "REPLACE", "ZERO"}
    assert desc.parts[0].new_sha256 == sha256(new).hex()
    # A full payload of compressible data is smaller than the image, but not absurdly so.
    assert len(new) // 10 < desc.size < len(new) // 2


def test_full_payload_overwrites_a_slot_that_held_something_else(
    tmp_path: Path, images: Images, payloads: Payloads
) -> None:
    target = tmp_path / "usr-b.img"
    stale = random.Random(5).randbytes(len(images.new_bytes))
    target.write_bytes(stale)
    apply_file(payloads.full_unsigned, target, None)
    assert target.read_bytes() == images.new_bytes


def test_full_payload_into_a_region_of_a_disk_image(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    new = images.new_bytes
    offset, size = 3 * BS, len(new) + 16 * BS
    disk = tmp_path / "disk.img"
    before = random.Random(6).randbytes(offset + size + 5 * BS)
    disk.write_bytes(before)
    apply_file(payloads.full, TargetRegion(disk, offset, size), keys.trust(keys.rsa))
    after = disk.read_bytes()
    assert after[offset : offset + len(new)] == new
    # Nothing outside the partition's blocks moved.
    assert after[:offset] == before[:offset]
    assert after[offset + len(new) :] == before[offset + len(new) :]


def test_full_payload_zero_and_incompressible_chunks_and_unaligned_size(tmp_path: Path) -> None:
    rng = random.Random(7)
    words = vocabulary(7)
    text_mib = b"".join(text_block(rng, words) for _ in range(256))
    new = text_mib + bytes(1 << 20) + rng.randbytes(1 << 20) + text_mib[: (1 << 19) + 100]
    image = tmp_path / "new.img"
    image.write_bytes(new)
    payload = tmp_path / "p.crau"
    generate_payload(PayloadInputs(image), payload, [], FAST)
    ops = read_meta(payload).manifest.partition_operations
    assert [op.type for op in ops] == [
        OpType.REPLACE_ZSTD,
        OpType.ZERO,
        OpType.REPLACE,
        OpType.REPLACE_ZSTD,
    ]
    assert ops[2].data_length == 1 << 20
    target = tmp_path / "slot.img"
    target.write_bytes(b"\xa5" * (len(new) + 3 * BS))  # the ZERO chunk must really be zeroed
    apply_file(payload, target, None)
    written = target.read_bytes()
    # A growing slot file ends exactly at the new size: no block padding, no stale tail.
    assert written == new


def test_generate_reports_progress_and_operation_counts(tmp_path: Path, images: Images) -> None:
    seen: list[tuple[str, int, int]] = []
    report = generate_payload(
        PayloadInputs(images.new),
        tmp_path / "p.crau",
        [],
        FAST,
        lambda what, done, total: seen.append((what, done, total)),
    )
    chunks = -(-images.new.stat().st_size // (1 << 20))
    assert seen[-1] == ("/usr", chunks, chunks)
    assert [s[1] for s in seen] == list(range(1, chunks + 1))
    assert sum(report.operations.values()) == chunks
    assert report.payload_size == (tmp_path / "p.crau").stat().st_size
    assert report.new_size == images.new.stat().st_size
    assert not report.delta
    # The blob spool is gone, only the payload is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.crau"]


# --- deltas ---------------------------------------------------------------------------


def test_delta_reproduces_the_new_image_and_is_small(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    target = tmp_path / "usr-b.img"
    result = apply_file(payloads.delta, target, keys.trust(keys.rsa), source=images.old)
    assert target.read_bytes() == images.new_bytes
    assert result.signed_by == keys.rsa.key_id.hex()
    # A few hundred changed blocks out of a thousand: the delta is a small fraction.
    assert payloads.delta.stat().st_size * 10 < payloads.full.stat().st_size
    desc = describe_payload(payloads.delta)
    assert desc.kind == "delta"
    assert desc.parts[0].old_size == images.old.stat().st_size
    assert desc.parts[0].old_sha256 == hashlib.sha256(images.old.read_bytes()).hexdigest()


def test_delta_uses_copies_bsdiff_and_zstd_patches(payloads: Payloads) -> None:
    """The synthetic upgrade has a block-aligned shift, a relocation and an unaligned edit."""
    ops = describe_payload(payloads.delta).parts[0].operations
    assert ops.get("SOURCE_COPY", 0) >= 2  # before and after the inserted blocks
    # The changed blocks are encoded against the source, whichever of bsdiff or a zstd
    # patch measured smaller (nearby changes share one operation).
    assert ops.get("SOURCE_BSDIFF", 0) + ops.get("SOURCE_ZSTD_PATCH", 0) >= 1
    manifest = read_meta(payloads.delta).manifest
    copies = [op for op in manifest.partition_operations if op.type is OpType.SOURCE_COPY]
    # Behind the 8 inserted blocks, new block n comes from old block n - 8.
    assert any(op.dst_extents[0].start_block - op.src_extents[0].start_block == 8 for op in copies)


def test_delta_of_identical_images_is_only_copies(tmp_path: Path, images: Images) -> None:
    payload = tmp_path / "same.crau"
    generate_payload(PayloadInputs(images.old, images.old), payload, [], FAST)
    ops = read_meta(payload).manifest.partition_operations
    assert {op.type for op in ops} == {OpType.SOURCE_COPY}
    target = tmp_path / "slot"
    apply_file(payload, target, None, source=images.old)
    assert target.read_bytes() == images.old.read_bytes()


def test_delta_between_slots_of_one_disk_image(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    """USR-A (running, the source) and USR-B (the target) are regions of the same file."""
    old, new = images.old.read_bytes(), images.new_bytes
    slot_size = len(new) + 32 * BS
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\x11" * BS + old.ljust(slot_size, b"\0") + b"\x22" * slot_size + b"\x33")
    usr_a = TargetRegion(disk, BS, slot_size)
    usr_b = TargetRegion(disk, BS + slot_size, slot_size)
    apply_payload(
        file_opener(payloads.delta),
        ApplyTargets(usr_b),
        keys.trust(keys.rsa),
        ApplySources(usr_a),
    )
    after = disk.read_bytes()
    assert after[: BS + slot_size] == b"\x11" * BS + old.ljust(slot_size, b"\0")
    assert after[BS + slot_size : BS + slot_size + len(new)] == new
    assert after[-1:] == b"\x33"


def test_delta_from_an_unaligned_old_image(tmp_path: Path) -> None:
    old = make_blob(20 * BS - 3000, seed=61)
    new = old[: 5 * BS] + b"x" * BS + old[6 * BS :]
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    payload = tmp_path / "p.crau"
    generate_payload(PayloadInputs(tmp_path / "new", tmp_path / "old"), payload, [], FAST)
    target = tmp_path / "slot"
    apply_file(payload, target, None, source=tmp_path / "old")
    assert target.read_bytes()[: len(new)] == new


def test_every_operation_type_applies(tmp_path: Path, images: Images, keys: Keys) -> None:
    """A hand-built manifest using each decoder, several extents per operation."""
    source = images.old.read_bytes()[: 64 * BS]
    rng = random.Random(11)
    expected = bytearray(40 * BS)
    blobs = bytearray()
    ops: list[InstallOperation] = []

    def add(op_type: OpType, blob: bytes, dst: tuple[Extent, ...], **kw: object) -> None:
        ops.append(
            InstallOperation(
                op_type,
                data_offset=len(blobs),
                data_length=len(blob),
                dst_extents=dst,
                data_sha256=sha256(blob),
                **kw,  # type: ignore[arg-type]
            )
        )
        blobs.extend(blob)

    def put(data: bytes, dst: tuple[Extent, ...]) -> None:
        pos = 0
        for e in dst:
            n = e.num_blocks * BS
            chunk = data[pos : pos + n]
            expected[e.start_block * BS : e.start_block * BS + len(chunk)] = chunk
            pos += n

    raw = rng.randbytes(5000)  # shorter than its two blocks: the rest is zero-filled
    add(OpType.REPLACE, raw, (Extent(0, 2),))
    put(raw, (Extent(0, 2),))
    text = source[3 * BS : 5 * BS]
    add(OpType.REPLACE_BZ, encode_bz2(text), (Extent(2, 2),))
    put(text, (Extent(2, 2),))
    text4 = source[30 * BS : 34 * BS]
    add(OpType.REPLACE_ZSTD, encode_zstd(text4, 3), (Extent(4, 4),))
    put(text4, (Extent(4, 4),))
    ops.append(InstallOperation(OpType.ZERO, dst_extents=(Extent(8, 2), Extent(36, 4))))
    copy_src = (Extent(40, 2), Extent(10, 2))
    ops.append(
        InstallOperation(OpType.SOURCE_COPY, src_extents=copy_src, dst_extents=(Extent(10, 4),))
    )
    put(source[40 * BS : 42 * BS] + source[10 * BS : 12 * BS], (Extent(10, 4),))
    old_region = source[20 * BS : 24 * BS]
    relocated = bytearray(old_region)
    for off in range(0, len(relocated), 64):
        relocated[off] ^= 0x10
    dst = (Extent(14, 2), Extent(30, 2))
    add(
        OpType.SOURCE_BSDIFF,
        encode_bsdiff(old_region, bytes(relocated)),
        dst,
        src_extents=(Extent(20, 4),),
    )
    put(bytes(relocated), dst)
    dict_src = source[: 16 * BS]
    edited = b"inserted!" + dict_src[5 * BS : 13 * BS - 9]
    add(
        OpType.SOURCE_ZSTD_PATCH,
        encode_zstd_patch(dict_src, edited, 3),
        (Extent(16, 8),),
        src_extents=(Extent(0, 16),),
    )
    put(edited, (Extent(16, 8),))
    ops.append(InstallOperation(OpType.ZERO, dst_extents=(Extent(24, 6), Extent(32, 4))))
    new_size = 40 * BS - 100
    assert expected[new_size:] == bytes(100)
    manifest = Manifest(
        partition_operations=tuple(ops),
        old_partition_info=InstallInfo(len(source), sha256(source)),
        new_partition_info=InstallInfo(new_size, sha256(bytes(expected[:new_size]))),
    )
    (tmp_path / "blobs").write_bytes(blobs)
    (tmp_path / "source").write_bytes(source)
    payload = tmp_path / "all-ops.crau"
    write_payload(payload, manifest, BlobArea(tmp_path / "blobs", 0, len(blobs)), [keys.rsa])
    target = tmp_path / "slot"
    target.write_bytes(b"\x5a" * 40 * BS)
    result = apply_file(payload, target, keys.trust(keys.rsa), source=tmp_path / "source")
    assert target.read_bytes() == bytes(expected[:new_size])
    assert result.operations == len(ops)
    # The bsdiff and zstd patches are far smaller than the data they produce.
    sizes = {
        op.type: op.data_length or 0 for op in read_meta(payload).manifest.partition_operations
    }
    assert sizes[OpType.SOURCE_BSDIFF] < 2 * BS // 8
    assert sizes[OpType.SOURCE_ZSTD_PATCH] < 8 * BS // 8


# --- update_engine-compatible payloads ------------------------------------------------


def test_flatcar_compatible_payload(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    desc = describe_payload(payloads.flatcar)
    assert desc.layout == "signatures-last"
    assert set(desc.parts[0].operations) <= {"REPLACE_BZ", "REPLACE"}
    assert desc.parts[0].operations.get("REPLACE_BZ", 0) >= 1
    assert [s.algorithm for s in desc.signatures] == ["rsa_pkcs1_sha256"]

    meta = read_meta(payloads.flatcar)
    layout, manifest = meta.layout, meta.manifest
    assert manifest.signatures_offset == layout.blobs_size
    [noop] = manifest.noop_operations
    assert noop.type is OpType.REPLACE
    assert noop.data_offset == manifest.signatures_offset
    assert noop.data_length == manifest.signatures_size
    assert noop.dst_extents == (Extent(SPARSE_HOLE, -(-layout.signatures_size // BS)),)
    assert not manifest.procedures

    # update_engine's rule: the RSA signature covers every byte before the signature blob.
    data = payloads.flatcar.read_bytes()
    assert len(data) == layout.signed_size + layout.signatures_size
    signatures = decode_signatures(data[layout.signed_size :])
    keys.trust(keys.rsa).verify(sha256(data[: layout.signed_size]), signatures)

    target = tmp_path / "usr-b.img"
    result = apply_file(payloads.flatcar, target, keys.trust(keys.rsa))
    assert target.read_bytes() == images.new_bytes
    assert result.signed_by == keys.rsa.key_id.hex()


def test_flatcar_compatible_payload_carries_usr_verity_as_an_unknown_field(
    tmp_path: Path, images: Images, keys: Keys
) -> None:
    """update_engine skips field 1000; our applier reads it from the same bytes."""
    verity = UsrVerity("c0" * 32, 1024 * BS)
    payload = tmp_path / "flatcar-verity.crau"
    options = dataclasses.replace(FAST, flatcar_compatible=True)
    generate_payload(PayloadInputs(images.new, usr_verity=verity), payload, [keys.rsa], options)
    assert describe_payload(payload).layout == "signatures-last"
    result = apply_file(payload, tmp_path / "usr-b.img", keys.trust(keys.rsa))
    assert result.usr_verity == verity


def test_flatcar_compatible_refuses_deltas_and_initrd(tmp_path: Path, images: Images) -> None:
    options = dataclasses.replace(FAST, flatcar_compatible=True)
    with pytest.raises(PayloadError, match="full payloads"):
        generate_payload(PayloadInputs(images.new, images.old), tmp_path / "p", [], options)
    with pytest.raises(PayloadError, match="no initrd"):
        generate_payload(
            PayloadInputs(images.new, initrd=images.initrd), tmp_path / "p", [], options
        )
    assert not (tmp_path / "p").exists()


# --- kernel and initrd ----------------------------------------------------------------


def test_kernel_and_initrd_land_after_verification(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    kernel, initrd = boot / "vmlinuz-b", boot / "initrd-b"
    result = apply_file(
        payloads.with_boot, tmp_path / "usr-b.img", keys.trust(keys.ed25519), None, kernel, initrd
    )
    assert (tmp_path / "usr-b.img").read_bytes() == images.new_bytes
    assert result.written == {"kernel": kernel, "initrd": initrd}
    assert result.signed_by == keys.ed25519.key_id.hex()
    assert sorted(p.name for p in boot.iterdir()) == ["initrd-b", "vmlinuz-b"]  # no .partial
    for written, original in ((kernel, images.kernel), (initrd, images.initrd)):
        want = original.read_bytes()
        got = written.read_bytes()
        assert got[: len(want)] == want
    desc = describe_payload(payloads.with_boot)
    parts = {p.name: p for p in desc.parts}
    assert set(parts) == {"usr", "kernel", "initrd"}
    assert parts["kernel"].new_size == images.kernel.stat().st_size
    assert parts["initrd"].new_sha256 == sha256(images.initrd.read_bytes()).hex()


def test_kernel_and_initrd_are_byte_identical(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    apply_file(payloads.with_boot, tmp_path / "usr", keys.trust(keys.ed25519), None, kernel, initrd)
    assert kernel.read_bytes() == images.kernel.read_bytes()
    assert initrd.read_bytes() == images.initrd.read_bytes()


def test_stale_partial_kernel_does_not_leak_into_the_new_one(
    tmp_path: Path, images: Images, payloads: Payloads
) -> None:
    kernel = tmp_path / "vmlinuz"
    (tmp_path / "vmlinuz.partial").write_bytes(b"\xee" * (2 << 20))
    apply_file(payloads.with_boot, tmp_path / "usr", None, None, kernel, None)
    assert kernel.stat().st_size == images.kernel.stat().st_size


def test_failed_apply_never_installs_kernel_or_initrd(
    tmp_path: Path, images: Images, payloads: Payloads
) -> None:
    payload = tmp_path / "p.crau"
    shutil.copyfile(payloads.with_boot, payload)
    meta = read_meta(payload)
    last = meta.blobs[-1]
    assert last.label.startswith("initrd operation")
    flip_bit(payload, meta.layout.metadata_size + last.offset + last.length // 2)
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(b"the running kernel")
    with pytest.raises(PayloadIntegrityError, match=last.label):
        apply_file(payload, tmp_path / "usr", None, None, kernel, initrd)
    assert kernel.read_bytes() == b"the running kernel"
    assert not initrd.exists()


def test_boot_files_without_targets_are_verified_then_discarded(
    tmp_path: Path, images: Images, payloads: Payloads
) -> None:
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    result = apply_file(payloads.with_boot, tmp_path / "usr", None)
    assert result.written == {}
    assert (tmp_path / "usr").read_bytes() == images.new_bytes
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - tmp_before if "wellcar-" in n}
    assert not leftovers


# --- signatures -----------------------------------------------------------------------


@pytest.mark.parametrize("trusted", ["rsa", "ed25519", "both"])
def test_two_signatures_either_key_is_enough(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, trusted: str
) -> None:
    chosen = [keys.rsa, keys.ed25519] if trusted == "both" else [getattr(keys, trusted)]
    target = tmp_path / "usr"
    result = apply_file(payloads.two_keys, target, keys.trust(*chosen))
    assert target.read_bytes() == images.new_bytes
    assert result.signed_by in {k.key_id.hex() for k in chosen}
    assert verify_payload(payloads.two_keys, keys.trust(*chosen)).signed_by == result.signed_by


def test_two_signatures_neither_key_trusted(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    target = tmp_path / "usr"
    with pytest.raises(PayloadSignatureError, match="no signature verifies") as info:
        apply_file(payloads.two_keys, target, keys.trust(keys.stranger))
    message = str(info.value)
    assert keys.rsa.key_id.hex() in message and keys.ed25519.key_id.hex() in message
    assert keys.stranger.key_id.hex() in message
    assert not target.exists()
    desc = describe_payload(payloads.two_keys)
    assert [(s.algorithm, s.key_id, s.length) for s in desc.signatures] == [
        ("rsa_pkcs1_sha256", keys.rsa.key_id.hex(), 256),
        ("ed25519", keys.ed25519.key_id.hex(), 64),
    ]


def test_resign_swaps_keys(tmp_path: Path, images: Images, keys: Keys, payloads: Payloads) -> None:
    resigned = tmp_path / "resigned.crau"
    size = resign_payload(payloads.full, resigned, [keys.ed25519])
    assert size == resigned.stat().st_size
    assert verify_payload(resigned, keys.trust(keys.ed25519)).signed_by == keys.ed25519.key_id.hex()
    with pytest.raises(PayloadSignatureError):
        verify_payload(resigned, keys.trust(keys.rsa))
    desc = describe_payload(resigned)
    assert desc.layout == "signatures-first"
    assert [s.key_id for s in desc.signatures] == [keys.ed25519.key_id.hex()]
    # The blobs and what they build are the same; only the signature changed.
    assert desc.parts == describe_payload(payloads.full).parts
    target = tmp_path / "usr"
    apply_file(resigned, target, keys.trust(keys.ed25519))
    assert target.read_bytes() == images.new_bytes


def test_resign_keeps_or_changes_the_layout(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    last = tmp_path / "last.crau"
    resign_payload(payloads.flatcar, last, [keys.stranger])
    assert describe_payload(last).layout == "signatures-last"
    assert len(read_meta(last).manifest.noop_operations) == 1
    verify_payload(last, keys.trust(keys.stranger))

    first = tmp_path / "first.crau"
    resign_payload(payloads.flatcar, first, [keys.rsa, keys.ed25519], signatures_first=True)
    assert describe_payload(first).layout == "signatures-first"
    assert not read_meta(first).manifest.noop_operations
    target = tmp_path / "usr"
    apply_file(first, target, keys.trust(keys.ed25519))
    assert target.read_bytes() == images.new_bytes

    signed = tmp_path / "signed.crau"
    resign_payload(payloads.full_unsigned, signed, [keys.rsa])
    assert describe_payload(signed).layout == "signatures-first"
    verify_payload(signed, keys.trust(keys.rsa))

    in_place = tmp_path / "in-place.crau"
    shutil.copyfile(payloads.delta, in_place)
    resign_payload(in_place, in_place, [keys.ed25519])
    verify_payload(in_place, keys.trust(keys.ed25519))
    target = tmp_path / "usr2"
    apply_file(in_place, target, keys.trust(keys.ed25519), source=images.old)
    assert target.read_bytes() == images.new_bytes


def test_resign_refuses_a_corrupt_payload(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    corrupt = tmp_path / "corrupt.crau"
    shutil.copyfile(payloads.full, corrupt)
    meta = read_meta(corrupt)
    blob = meta.blobs[1]
    flip_bit(corrupt, meta.layout.metadata_size + blob.offset + 3)
    with pytest.raises(PayloadIntegrityError, match=blob.label):
        resign_payload(corrupt, tmp_path / "out.crau", [keys.rsa])
    assert not (tmp_path / "out.crau").exists()


# --- generator inputs -----------------------------------------------------------------


def test_generate_refuses_missing_and_empty_inputs(tmp_path: Path, images: Images) -> None:
    with pytest.raises(PayloadError, match="does not exist"):
        generate_payload(PayloadInputs(tmp_path / "nope"), tmp_path / "p", [], FAST)
    with pytest.raises(PayloadError, match="does not exist"):
        generate_payload(PayloadInputs(images.new, tmp_path / "nope"), tmp_path / "p", [], FAST)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(PayloadError, match="empty"):
        generate_payload(PayloadInputs(tmp_path / "empty"), tmp_path / "p", [], FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("empty", ["old", "kernel"])
def test_generate_output_is_always_a_valid_payload(
    tmp_path: Path, images: Images, empty: str
) -> None:
    blank = tmp_path / "blank"
    blank.write_bytes(b"")
    inputs = (
        PayloadInputs(images.new, old_usr=blank)
        if empty == "old"
        else PayloadInputs(images.new, kernel=blank)
    )
    payload = tmp_path / "p.crau"
    try:
        generate_payload(inputs, payload, [], FAST)
    except PayloadError:
        return  # refusing the input is fine too
    verify_payload(payload, None)


def test_unaligned_new_usr_is_hashed_over_its_real_size(tmp_path: Path) -> None:
    data = make_blob(3 * BS + 17, seed=12)
    image = tmp_path / "usr.img"
    image.write_bytes(data)
    payload = tmp_path / "p.crau"
    generate_payload(PayloadInputs(image), payload, [], FAST)
    info = read_meta(payload).manifest.new_partition_info
    assert info == InstallInfo(len(data), sha256(data))
    target = tmp_path / "slot"
    apply_file(payload, target, None)
    assert target.read_bytes()[: len(data)] == data


def test_bz2_blob_is_standard_bzip2(payloads: Payloads) -> None:
    """update_engine decompresses REPLACE_BZ with plain libbz2: check the blob is that."""
    data = payloads.flatcar.read_bytes()
    meta = read_meta(payloads.flatcar)
    blob = next(b for b in meta.blobs if b.op.type is OpType.REPLACE_BZ)
    start = meta.layout.metadata_size + blob.offset
    assert len(bz2.decompress(data[start : start + blob.length])) == blob.op.dst_blocks * BS


# --- dm-verity parameters ---------------------------------------------------------------

VERITY = UsrVerity("9f" * 32, 1024 * BS)  # the new image's last 8 blocks "are" the tree


@pytest.mark.parametrize("delta", [False, True], ids=["full", "delta"])
def test_usr_verity_travels_signed_from_generate_to_apply(
    tmp_path: Path, images: Images, keys: Keys, delta: bool
) -> None:
    payload = tmp_path / "p.crau"
    inputs = PayloadInputs(images.new, images.old if delta else None, usr_verity=VERITY)
    generate_payload(inputs, payload, [keys.ed25519], FAST)
    assert read_meta(payload).manifest.usr_verity == VERITY

    target = tmp_path / "usr-b.img"
    result = apply_file(payload, target, keys.trust(keys.ed25519), source=images.old)
    assert result.usr_verity == VERITY
    assert result.signed_by == keys.ed25519.key_id.hex()
    assert target.read_bytes() == images.new_bytes

    desc = describe_payload(payload)
    assert desc.usr_verity == VERITY
    assert desc.as_json()["usr_verity"] == {"root_hash": "9f" * 32, "hash_offset": 1024 * BS}

    # Re-signing keeps it; it is part of what the signature covers.
    resigned = tmp_path / "resigned.crau"
    resign_payload(payload, resigned, [keys.rsa])
    assert describe_payload(resigned).usr_verity == VERITY


def test_payloads_without_usr_verity_say_so(tmp_path: Path, keys: Keys, payloads: Payloads) -> None:
    assert describe_payload(payloads.full).usr_verity is None
    assert describe_payload(payloads.full).as_json()["usr_verity"] is None
    assert apply_file(payloads.full, tmp_path / "t", keys.trust(keys.rsa)).usr_verity is None


def test_usr_verity_is_covered_by_the_signature(tmp_path: Path, images: Images, keys: Keys) -> None:
    """A root hash swapped in transit (one bit) fails the signature before any write."""
    payload = tmp_path / "p.crau"
    generate_payload(PayloadInputs(images.new, usr_verity=VERITY), payload, [keys.rsa], FAST)
    meta = read_meta(payload)
    data = payload.read_bytes()
    at = data.index(bytes.fromhex(VERITY.root_hash), 0, meta.layout.metadata_size)
    flip_bit(payload, at)
    target = tmp_path / "usr-b.img"
    with pytest.raises(PayloadSignatureError):
        apply_file(payload, target, keys.trust(keys.rsa))
    assert not target.exists() or target.stat().st_size == 0


def test_generate_refuses_a_hash_offset_outside_the_new_usr(tmp_path: Path, images: Images) -> None:
    size = images.new.stat().st_size
    past_end = UsrVerity("9f" * 32, -(-size // BS) * BS)
    with pytest.raises(PayloadError, match=f"hash offset {past_end.hash_offset} is not inside"):
        generate_payload(PayloadInputs(images.new, usr_verity=past_end), tmp_path / "p", [], FAST)
    assert not (tmp_path / "p").exists()
