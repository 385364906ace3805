"""Turning one operation's blob (and source bytes) into the bytes it writes.

Every decoder is told how many bytes the operation may produce and refuses to produce
more, so a compressed or patched blob can never inflate past the destination extents
(decompression bombs, forged bsdiff sizes). Encoders live here too, next to their
decoders, so the two sides of each format change together.
"""

from __future__ import annotations

import bz2
import struct

import bsdiff4.core
import zstandard

from wellcar.payload.errors import PayloadIntegrityError
from wellcar.payload.manifest import OpType

BSDIFF_MAGIC = b"BSDIFF40"
_BSDIFF_HEADER = struct.Struct("<8s8s8s8s")


def _bounded_bunzip(data: bytes, limit: int, label: str) -> bytes:
    decompressor = bz2.BZ2Decompressor()
    try:
        out = decompressor.decompress(data, max_length=limit + 1)
    except (OSError, ValueError, EOFError) as exc:
        raise PayloadIntegrityError(f"{label}: bzip2 data is corrupt ({exc})") from None
    if len(out) > limit:
        raise PayloadIntegrityError(f"{label}: bzip2 data expands beyond {limit} bytes")
    if not decompressor.eof:
        raise PayloadIntegrityError(f"{label}: bzip2 data is truncated")
    return out


def _bounded_unzstd(data: bytes, limit: int, label: str, dictionary: bytes | None = None) -> bytes:
    dict_data = (
        zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        if dictionary is not None
        else None
    )
    decompressor = zstandard.ZstdDecompressor(dict_data=dict_data, max_window_size=1 << 27)
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise PayloadIntegrityError(f"{label}: zstd data is corrupt ({exc})") from None
    if declared > limit:
        raise PayloadIntegrityError(
            f"{label}: zstd data expands beyond {limit} bytes (its header declares {declared})"
        )
    parts: list[bytes] = []
    produced = 0
    try:
        # Read at most limit + 1 bytes, so a bomb stops after one byte too many.
        with decompressor.stream_reader(data) as reader:
            while produced <= limit:
                piece = reader.read(limit + 1 - produced)
                if not piece:
                    break
                parts.append(piece)
                produced += len(piece)
    except zstandard.ZstdError as exc:
        raise PayloadIntegrityError(f"{label}: zstd data is corrupt ({exc})") from None
    if produced > limit:
        raise PayloadIntegrityError(f"{label}: zstd data expands beyond {limit} bytes")
    if declared >= 0 and produced != declared:
        raise PayloadIntegrityError(
            f"{label}: zstd data is truncated ({produced} of {declared} bytes)"
        )
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _bspatch(source: bytes, patch: bytes, limit: int, label: str) -> bytes:
    if len(patch) < _BSDIFF_HEADER.size:
        raise PayloadIntegrityError(f"{label}: bsdiff patch shorter than its header")
    magic, raw_control, raw_diff, raw_new = _BSDIFF_HEADER.unpack_from(patch)
    if magic != BSDIFF_MAGIC:
        raise PayloadIntegrityError(f"{label}: not a BSDIFF40 patch")
    control_len = bsdiff4.core.decode_int64(raw_control)
    diff_len = bsdiff4.core.decode_int64(raw_diff)
    new_len = bsdiff4.core.decode_int64(raw_new)
    body = len(patch) - _BSDIFF_HEADER.size
    if not (0 <= new_len <= limit and 0 <= control_len <= body and 0 <= diff_len <= body):
        raise PayloadIntegrityError(f"{label}: bsdiff header sizes are out of range")
    start = _BSDIFF_HEADER.size
    control = _bounded_bunzip(patch[start : start + control_len], 24 * (new_len + 1), label)
    start += control_len
    diff = _bounded_bunzip(patch[start : start + diff_len], new_len, label)
    extra = _bounded_bunzip(patch[start + diff_len :], new_len, label)
    if len(control) % 24:
        raise PayloadIntegrityError(f"{label}: bsdiff control block is malformed")
    try:
        result: bytes = bsdiff4.core.patch(source, new_len, control, diff, extra)
    except (ValueError, MemoryError) as exc:
        raise PayloadIntegrityError(f"{label}: bsdiff patch does not apply ({exc})") from None
    return result


def decode_operation(
    op_type: OpType, data: bytes, source: bytes | None, limit: int, label: str
) -> bytes:
    """The bytes a data-carrying operation writes (before zero padding)."""
    if op_type is OpType.REPLACE:
        return data
    if op_type is OpType.REPLACE_BZ:
        return _bounded_bunzip(data, limit, label)
    if op_type is OpType.REPLACE_ZSTD:
        return _bounded_unzstd(data, limit, label)
    if op_type is OpType.SOURCE_ZSTD_PATCH:
        assert source is not None
        return _bounded_unzstd(data, limit, label, dictionary=source)
    if op_type is OpType.SOURCE_BSDIFF:
        assert source is not None
        return _bspatch(source, data, limit, label)
    raise AssertionError(f"{op_type.name} carries no data")


# --- encoders (used by the generator) ---------------------------------------------------


def encode_bz2(data: bytes) -> bytes:
    return bz2.compress(data, 9)


def encode_zstd(data: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)


def encode_zstd_patch(source: bytes, data: bytes, level: int) -> bytes:
    dictionary = zstandard.ZstdCompressionDict(source, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    # The window must reach back over the whole dictionary, and no further: the match
    # finder's tables grow with it (window_log 27 cost ~250 MB per compressor at level 19).
    window_log = min(27, max(17, (len(source) + len(data) - 1).bit_length()))
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        source_size=len(data),
        dict_size=len(source),
        window_log=window_log,
        # Level 19's match-finder tables for a multi-MiB dictionary are hundreds of MB;
        # capped they cost a few percent of ratio and stay ~30 MB per compressor.
        chain_log=min(window_log, 22),
        hash_log=min(window_log, 21),
        write_content_size=True,
    )
    compressor = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
    return compressor.compress(data)


def encode_bsdiff(source: bytes, data: bytes) -> bytes:
    control, diff, extra = bsdiff4.core.diff(source, data)
    parts = [bz2.compress(control, 9), bz2.compress(diff, 9), bz2.compress(extra, 9)]
    header = BSDIFF_MAGIC + b"".join(
        bsdiff4.core.encode_int64(n) for n in (len(parts[0]), len(parts[1]), len(data))
    )
    return header + b"".join(parts)
