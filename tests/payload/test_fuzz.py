"""Hostile bytes: the parser, the layout checks, the decoders and whole payload files.

Whatever arrives, the only exceptions are :class:`PayloadError` subclasses, and a payload
that is accepted installs exactly the new image.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import random
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wellcar.payload.apply import ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import PayloadError, PayloadFormatError, PayloadIntegrityError
from wellcar.payload.generate import PayloadInputs, generate_payload
from wellcar.payload.inspect import describe_payload, verify_payload
from wellcar.payload.layout import HEADER_SIZE, plan_layout
from wellcar.payload.manifest import OpType, decode_manifest, decode_signatures
from wellcar.payload.operations import BSDIFF_MAGIC, decode_operation
from wellcar.payload.reader import file_opener
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import TargetRegion

from .conftest import Keys
from .helpers import BS, FAST, make_blob, make_old_image, read_meta

# WELLCAR_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("WELLCAR_FUZZ_EXAMPLES", "150")),
    deadline=1500,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _decode_and_plan(raw: bytes) -> None:
    try:
        manifest = decode_manifest(raw)
        plan_layout(manifest, max(1, len(raw)))
    except PayloadFormatError as exc:
        assert str(exc)


# --- the manifest parser and the layout checks ----------------------------------------


@given(st.binary(max_size=2000))
@FUZZ
def test_arbitrary_bytes_as_manifest(raw: bytes) -> None:
    _decode_and_plan(raw)


@st.composite
def protobuf_like(draw: st.DrawFn) -> bytes:
    """Bytes made of plausible fields (so the fuzzer gets past the first key)."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 12))):
        number = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 9, 10, 11]))
        wire = draw(st.sampled_from([0, 0, 2, 2, 1, 5, 3]))
        out.append((number << 3 | wire) & 0x7F)
        if wire == 0:
            out += draw(st.binary(min_size=1, max_size=10))
        elif wire == 2:
            body = draw(st.binary(max_size=40))
            out.append(draw(st.sampled_from([len(body), len(body) + 1, 0x7F])) & 0x7F)
            out += body
        else:
            out += draw(st.binary(max_size=8))
    return bytes(out)


@given(protobuf_like())
@FUZZ
def test_field_soup_as_manifest(raw: bytes) -> None:
    _decode_and_plan(raw)


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, float, bytes]]:
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]),
                st.floats(0, 1, allow_nan=False),
                st.binary(min_size=1, max_size=9),
            ),
            min_size=1,
            max_size=4,
        )
    )


def mutate(data: bytes, steps: list[tuple[str, float, bytes]], lo: int = 0, hi: int = -1) -> bytes:
    """Apply ``steps``; positions fall between ``lo`` and ``hi`` (default: the end)."""
    buf = bytearray(data)
    for kind, where, value in steps:
        end = len(buf) if hi < 0 else min(hi, len(buf))
        pos = lo + int(where * max(0, end - lo))
        pos = min(pos, len(buf))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= 1 << (value[0] % 8)
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = value
        elif kind == "delete":
            del buf[pos : pos + len(value)]
        elif kind == "overwrite":
            buf[pos : pos + len(value)] = value
    return bytes(buf)


# --- small payloads to mutate ---------------------------------------------------------


@dataclass(frozen=True)
class Small:
    old: Path
    new: bytes
    kernel: bytes
    payloads: dict[str, bytes]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Small:
    root = tmp_path_factory.mktemp("small")
    old = make_old_image(24, seed=41)
    blocks = [old[i : i + BS] for i in range(0, len(old), BS)]
    blocks[3] = blocks[3][:100] + b"CHANGED" + blocks[3][107:]
    blocks[10:10] = [make_blob(BS, seed=42), make_blob(BS, seed=43)]
    new = b"".join(blocks)
    (root / "old").write_bytes(old)
    (root / "new").write_bytes(new)
    kernel = make_blob(5000, seed=44)
    (root / "kernel").write_bytes(kernel)
    options = dataclasses.replace(FAST, chunk_bytes=16 * BS)  # several operations
    made: dict[str, bytes] = {}
    for name, inputs, signers, opts in (
        ("full", PayloadInputs(root / "new"), [keys.rsa], options),
        ("delta", PayloadInputs(root / "new", root / "old"), [keys.ed25519], options),
        (
            "flatcar",
            PayloadInputs(root / "new"),
            [keys.rsa],
            dataclasses.replace(options, flatcar_compatible=True),
        ),
        (
            "boot",
            PayloadInputs(root / "new", kernel=root / "kernel"),
            [keys.rsa, keys.ed25519],
            options,
        ),
        ("unsigned", PayloadInputs(root / "new", root / "old"), [], options),
    ):
        generate_payload(inputs, root / name, signers, opts)
        made[name] = (root / name).read_bytes()
    return Small(root / "old", new, kernel, made)


def test_small_payloads_are_sound(small: Small, keys: Keys) -> None:
    """The fuzz inputs apply cleanly before they are mutated."""
    trusted = keys.trust(keys.rsa, keys.ed25519)
    for name, data in small.payloads.items():
        with tempfile.TemporaryDirectory() as tmp:
            _apply(Path(tmp), data, None if name == "unsigned" else trusted, small)
            assert Path(tmp, "usr").read_bytes()[: len(small.new)] == small.new


@given(
    st.sampled_from(["full", "delta", "flatcar", "boot", "unsigned"]),
    st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]),
    st.data(),
)
@FUZZ
def test_mutated_manifests_raise_only_format_errors(
    small: Small, name: str, kind: str, data: st.DataObject
) -> None:
    payload = small.payloads[name]
    manifest_size = struct.unpack_from(">Q", payload, 12)[0]
    manifest = payload[HEADER_SIZE : HEADER_SIZE + manifest_size]
    steps = data.draw(mutations())
    steps[0] = (kind, *steps[0][1:])
    _decode_and_plan(mutate(manifest, steps))


def _apply(tmp: Path, data: bytes, trusted: TrustedKeys | None, small: Small) -> None:
    (tmp / "p").write_bytes(data)
    # A fixed-size region: a mutated manifest cannot make the apply write more than this.
    (tmp / "usr").write_bytes(bytes(2 * len(small.new)))
    apply_payload(
        file_opener(tmp / "p"),
        ApplyTargets(TargetRegion(tmp / "usr", 0, 2 * len(small.new)), tmp / "kernel"),
        trusted,
        ApplySources(TargetRegion(small.old)),
    )


@given(
    st.sampled_from(["full", "delta", "flatcar", "boot", "unsigned"]),
    st.sampled_from(["metadata", "anywhere"]),
    mutations(),
)
@FUZZ
def test_mutated_payload_files(
    small: Small, keys: Keys, name: str, region: str, steps: list[tuple[str, float, bytes]]
) -> None:
    original = small.payloads[name]
    metadata_end = HEADER_SIZE + struct.unpack_from(">Q", original, 12)[0]
    mutated = mutate(original, steps, 0, metadata_end if region == "metadata" else -1)
    assume(mutated != original)
    checked = keys.trust(keys.rsa, keys.ed25519)
    # Without signature checks only payloads without a boot file are tried: nothing bounds
    # the size of a kernel whose manifest nobody vouches for.
    modes: list[TrustedKeys | None] = [checked] if name == "boot" else [checked, None]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "p").write_bytes(mutated)
        for call in (
            describe_payload,
            lambda p: verify_payload(p, None),
            lambda p: verify_payload(p, checked),
        ):
            try:
                call(tmp / "p")
            except PayloadError as exc:
                assert str(exc)
        for trusted in modes:
            if name == "unsigned" and trusted is not None:
                continue
            try:
                _apply(tmp, mutated, trusted, small)
            except PayloadError as exc:
                assert str(exc)
                continue
            # Accepted: then it must have installed exactly the new image (and kernel).
            assert (tmp / "usr").read_bytes()[: len(small.new)] == small.new
            if name == "boot":
                assert (tmp / "kernel").read_bytes()[: len(small.kernel)] == small.kernel


# --- the decoders ---------------------------------------------------------------------


@st.composite
def bsdiff_patches(draw: st.DrawFn) -> bytes:
    """BSDIFF40 patches with a consistent header and hostile control/diff/extra blocks."""
    entries = draw(st.integers(0, 4))
    values = st.one_of(
        st.integers(-8, 8192), st.sampled_from([-(1 << 63), (1 << 63) - 1, 1 << 40, -(1 << 40)])
    )
    control = b"".join(struct.pack("<q", draw(values)) for _ in range(3 * entries)) + draw(
        st.sampled_from([b"", b"\x01"])
    )
    diff = draw(st.binary(max_size=300))
    extra = draw(st.binary(max_size=300))
    parts = [bz2.compress(control), bz2.compress(diff), bz2.compress(extra)]
    new_len = draw(st.integers(0, 2 * BS))
    return (
        BSDIFF_MAGIC + struct.pack("<qqq", len(parts[0]), len(parts[1]), new_len) + b"".join(parts)
    )


@given(bsdiff_patches())
@FUZZ
def test_hostile_bsdiff_patches(patch: bytes) -> None:
    source = bytes(range(256)) * 16
    try:
        out = decode_operation(OpType.SOURCE_BSDIFF, patch, source, 2 * BS, "operation 1")
    except PayloadIntegrityError as exc:
        assert str(exc).startswith("operation 1:")
    else:
        assert len(out) <= 2 * BS


@given(
    st.sampled_from(
        [OpType.REPLACE_BZ, OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD_PATCH, OpType.SOURCE_BSDIFF]
    ),
    st.binary(max_size=600),
    st.sampled_from(["raw", "prefix"]),
)
@FUZZ
def test_arbitrary_blobs_to_decoders(op_type: OpType, blob: bytes, shape: str) -> None:
    prefix = {
        OpType.REPLACE_BZ: b"BZh9",
        OpType.REPLACE_ZSTD: b"\x28\xb5\x2f\xfd",
        OpType.SOURCE_ZSTD_PATCH: b"\x28\xb5\x2f\xfd",
        OpType.SOURCE_BSDIFF: BSDIFF_MAGIC,
    }[op_type]
    data = prefix + blob if shape == "prefix" else blob
    source = random.Random(len(blob)).randbytes(2 * BS)
    try:
        out = decode_operation(op_type, data, source, 2 * BS, "operation 2")
    except PayloadIntegrityError as exc:
        assert str(exc).startswith("operation 2:")
    else:
        assert len(out) <= 2 * BS


@given(st.binary(max_size=400))
@FUZZ
def test_arbitrary_signature_blobs(raw: bytes) -> None:
    try:
        decode_signatures(raw)
    except PayloadFormatError as exc:
        assert "signature blob" in str(exc)


def test_fuzz_fixture_layouts(small: Small) -> None:
    """The mutation targets cover both signature placements and a procedure."""
    layouts = {}
    for name, data in small.payloads.items():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "p").write_bytes(data)
            meta = read_meta(Path(tmp) / "p")
            layouts[name] = (meta.layout.signatures_first, len(meta.manifest.procedures))
            assert len(meta.blobs) >= 1
    assert layouts["flatcar"] == (False, 0)
    assert layouts["full"] == (True, 0)
    assert layouts["boot"] == (True, 1)
