"""The protobuf wire codec and the manifest/signature codecs: round trips and edge values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wellcar.disk import UsrVerity
from wellcar.payload.errors import PayloadFormatError
from wellcar.payload.manifest import (
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
from wellcar.payload.wire import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    UINT64_MAX,
    VARINT,
    MessageWriter,
    decode_varint,
    encode_varint,
    iter_fields,
)

u64 = st.integers(min_value=0, max_value=UINT64_MAX)
opt_u64 = st.none() | u64
small_bytes = st.binary(max_size=40)

extents = st.builds(Extent, start_block=u64, num_blocks=u64)
operations = st.builds(
    InstallOperation,
    type=st.sampled_from(list(OpType)),
    data_offset=opt_u64,
    data_length=opt_u64,
    src_extents=st.lists(extents, max_size=3).map(tuple),
    src_length=opt_u64,
    dst_extents=st.lists(extents, max_size=3).map(tuple),
    dst_length=opt_u64,
    data_sha256=st.none() | small_bytes,
)
infos = st.builds(InstallInfo, size=u64, hash=small_bytes)
procedures = st.builds(
    InstallProcedure,
    type=st.sampled_from(list(ProcedureType)),
    operations=st.lists(operations, max_size=3).map(tuple),
    old_info=st.none() | infos,
    new_info=st.none() | infos,
)
verities = st.builds(
    UsrVerity,
    root_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
    hash_offset=st.integers(min_value=1, max_value=UINT64_MAX // 4096).map(lambda n: n * 4096),
)
manifests = st.builds(
    Manifest,
    partition_operations=st.lists(operations, max_size=5).map(tuple),
    noop_operations=st.lists(operations, max_size=2).map(tuple),
    block_size=u64,
    signatures_offset=opt_u64,
    signatures_size=opt_u64,
    old_partition_info=st.none() | infos,
    new_partition_info=st.none() | infos,
    procedures=st.lists(procedures, max_size=3).map(tuple),
    usr_verity=st.none() | verities,
).filter(  # the decoder refuses a hash tree outside the new /usr
    lambda m: (
        m.usr_verity is None
        or m.new_partition_info is None
        or m.usr_verity.hash_offset < m.new_partition_info.size
    )
)
signature_sets = st.builds(
    Signatures,
    signatures=st.lists(
        st.builds(
            Signature, version=u64, data=st.binary(max_size=300), key_id=st.none() | small_bytes
        ),
        max_size=4,
    ).map(tuple),
)


# --- varints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (1 << 63, b"\x80" * 9 + b"\x01"),
        (UINT64_MAX, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint_edge_values(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded, 0, "t") == (value, len(encoded))
    # Decoding from the middle of a buffer leaves the rest alone.
    assert decode_varint(b"\x05" + encoded + b"\xff", 1, "t") == (value, 1 + len(encoded))


@pytest.mark.parametrize("value", [-1, UINT64_MAX + 1, 1 << 70])
def test_varint_encoder_refuses_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_varint(value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff" * 9 + b"\x02", "larger than 64 bits"),  # 2**64 exactly
        (b"\xff" * 10 + b"\x01", "longer than 10 bytes"),  # 11 bytes
        (b"\x80" * 10 + b"\x00", "longer than 10 bytes"),  # 11 bytes, value 0
        (b"\x80\x80", "ends inside a varint"),
        (b"", "ends inside a varint"),
    ],
)
def test_varint_decoder_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadFormatError, match=message) as info:
        decode_varint(raw, 0, "the place")
    assert "the place" in str(info.value)


@given(u64)
@settings(max_examples=200, deadline=None)
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert 1 <= len(encoded) <= 10
    assert decode_varint(encoded, 0, "t") == (value, len(encoded))


def test_iter_fields_all_wire_types_and_overruns() -> None:
    buf = (
        encode_varint(1 << 3 | VARINT)
        + encode_varint(150)
        + encode_varint(2 << 3 | FIXED64)
        + (7).to_bytes(8, "little")
        + encode_varint(3 << 3 | LENGTH_DELIMITED)
        + b"\x03abc"
        + encode_varint(4 << 3 | FIXED32)
        + (9).to_bytes(4, "little")
    )
    fields = [(f.number, f.wire_type, f.value) for f in iter_fields(buf, "m")]
    assert fields == [
        (1, VARINT, 150),
        (2, FIXED64, 7),
        (3, LENGTH_DELIMITED, b"abc"),
        (4, FIXED32, 9),
    ]

    with pytest.raises(PayloadFormatError, match="claims 4 bytes but only 3 remain"):
        list(iter_fields(b"\x1a\x04abc", "m"))
    with pytest.raises(PayloadFormatError, match="cut short"):
        list(iter_fields(b"\x11" + bytes(7), "m"))
    with pytest.raises(PayloadFormatError, match="field number 0"):
        list(iter_fields(b"\x00\x00", "m"))
    for wire_type in (3, 4, 6, 7):  # groups and undefined types
        with pytest.raises(PayloadFormatError, match=f"unsupported wire type {wire_type}"):
            list(iter_fields(bytes([1 << 3 | wire_type, 0]), "m"))


# --- manifest and signatures ----------------------------------------------------------


@given(manifests)
@settings(max_examples=150, deadline=2000)
def test_manifest_round_trip(manifest: Manifest) -> None:
    assert decode_manifest(encode_manifest(manifest)) == manifest


@given(signature_sets)
@settings(max_examples=100, deadline=2000)
def test_signatures_round_trip(signatures: Signatures) -> None:
    assert decode_signatures(encode_signatures(signatures)) == signatures


@given(
    manifests,
    st.integers(min_value=11, max_value=536_870_911).filter(lambda n: n != 1000),
    small_bytes,
)
@settings(max_examples=50, deadline=2000)
def test_unknown_manifest_fields_are_skipped(manifest: Manifest, number: int, junk: bytes) -> None:
    extra = MessageWriter()
    extra.bytes_field(number, junk)
    extra.varint(number, len(junk))
    assert decode_manifest(extra.getvalue() + encode_manifest(manifest)) == manifest


def test_manifest_uses_update_engine_field_numbers() -> None:
    """Spot-check the wire bytes against update_engine's DeltaArchiveManifest numbering."""
    op = InstallOperation(
        OpType.REPLACE_BZ, data_offset=0, data_length=5, dst_extents=(Extent(0, 1),)
    )
    manifest = Manifest(
        partition_operations=(op,),
        block_size=4096,
        signatures_offset=5,
        signatures_size=9,
        new_partition_info=InstallInfo(4096, b"h" * 32),
    )
    fields = {f.number: f for f in iter_fields(encode_manifest(manifest), "m")}
    assert fields[3].value == 4096  # block_size
    assert fields[4].value == 5  # signatures_offset
    assert fields[5].value == 9  # signatures_size
    info = {f.number: f.value for f in iter_fields(fields[9].value, "i")}  # type: ignore[arg-type]
    assert info == {1: 4096, 2: b"h" * 32}
    op_fields = {f.number: f.value for f in iter_fields(fields[1].value, "o")}  # type: ignore[arg-type]
    assert op_fields[1] == 1  # REPLACE_BZ
    assert op_fields[3] == 5
    dst = {f.number: f.value for f in iter_fields(op_fields[6], "e")}  # type: ignore[arg-type]
    assert dst == {1: 0, 2: 1}


def test_defaults_when_fields_are_absent() -> None:
    decoded = decode_manifest(b"")
    assert decoded == Manifest()
    assert decoded.block_size == 4096
    assert decode_signatures(b"") == Signatures()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x0a\x02\x10\x01", "operation 0: operation without a type"),
        (b"\x0a\x02\x08\x63", "operation 0: unknown operation type 99"),
        (b"\x08\x01", "field 1 should be length-delimited"),
        (b"\x1a\x00", "field 3 should be a varint"),
        (b"\x4a\x02\x08\x01", "new_partition_info: partition info without size or hash"),
        (b"\x52\x02\x08\x63", "procedure 0: unknown procedure type 99"),
        (b"\x0a\x06\x08\x00\x32\x02\x08\x01", "extent without start_block or num_blocks"),
    ],
)
def test_malformed_manifests_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadFormatError, match=message):
        decode_manifest(raw)


def test_signature_entry_without_data_is_rejected() -> None:
    with pytest.raises(PayloadFormatError, match="entry 0: without version or data"):
        decode_signatures(b"\x0a\x02\x08\x02")


# --- the usr_verity extension (field 1000) ----------------------------------------------

ROOT_HASH = bytes(range(32))


def _verity_field(inner: bytes) -> bytes:
    w = MessageWriter()
    w.bytes_field(1000, inner)
    return w.getvalue()


def _verity_message(root_hash: bytes | None = ROOT_HASH, offset: int | None = 8192) -> bytes:
    w = MessageWriter()
    w.bytes_field(1, root_hash)
    w.varint(2, offset)
    return w.getvalue()


def test_usr_verity_round_trips_as_field_1000() -> None:
    verity = UsrVerity(ROOT_HASH.hex(), 8192)
    manifest = Manifest(new_partition_info=InstallInfo(12288, b"h" * 32), usr_verity=verity)
    encoded = encode_manifest(manifest)
    fields = {f.number: f.value for f in iter_fields(encoded, "m")}
    inner = {f.number: f.value for f in iter_fields(fields[1000], "v")}  # type: ignore[arg-type]
    assert inner == {1: ROOT_HASH, 2: 8192}  # raw 32 bytes, not hex text
    assert decode_manifest(encoded) == manifest
    assert decode_manifest(encoded).usr_verity == verity


def test_a_manifest_without_usr_verity_has_no_field_1000() -> None:
    manifest = Manifest(new_partition_info=InstallInfo(12288, b"h" * 32))
    encoded = encode_manifest(manifest)
    assert 1000 not in {f.number for f in iter_fields(encoded, "m")}
    assert decode_manifest(encoded).usr_verity is None


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        (_verity_message(ROOT_HASH[:31]), "root hash is 31 bytes, not 32"),
        (_verity_message(ROOT_HASH + b"\0"), "root hash is 33 bytes, not 32"),
        (_verity_message(b""), "root hash is 0 bytes, not 32"),
        (_verity_message(None), "usr_verity: without root hash or hash offset"),
        (_verity_message(offset=None), "usr_verity: without root hash or hash offset"),
        (_verity_message(offset=0), "hash offset 0 is not a positive multiple of 4096"),
        (_verity_message(offset=4097), "hash offset 4097 is not a positive multiple of 4096"),
        (b"\x08\x01", "usr_verity: field 1 should be length-delimited"),
        (b"\x12\x01x", "usr_verity: field 2 should be a varint"),
    ],
)
def test_malformed_usr_verity_is_refused(inner: bytes, message: str) -> None:
    with pytest.raises(PayloadFormatError, match=message):
        decode_manifest(_verity_field(inner))


def test_usr_verity_must_be_a_message() -> None:
    w = MessageWriter()
    w.varint(1000, 5)
    with pytest.raises(PayloadFormatError, match="field 1000 should be length-delimited"):
        decode_manifest(w.getvalue())


def test_usr_verity_hash_tree_must_lie_inside_the_new_usr() -> None:
    base = encode_manifest(Manifest(new_partition_info=InstallInfo(8192, b"h" * 32)))
    verity = _verity_field(_verity_message(offset=8192))
    with pytest.raises(PayloadFormatError, match="hash offset 8192 is not inside the 8192-byte"):
        decode_manifest(base + verity)
    # Either order of the fields: the check runs once the whole manifest is read.
    with pytest.raises(PayloadFormatError, match="not inside"):
        decode_manifest(verity + base)
    assert decode_manifest(base + _verity_field(_verity_message(offset=4096))).usr_verity
