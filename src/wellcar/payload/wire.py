"""The protobuf wire format, the small part of it the payload manifest needs.

Written by hand rather than generated so that decoding is bounded (every length is checked
against the bytes that remain before anything is sliced) and typed, and so that unknown
fields are skipped the way protobuf specifies. Only wire types 0 (varint), 1 (64-bit),
2 (length-delimited) and 5 (32-bit) exist in proto2 messages without groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wellcar.payload.errors import PayloadFormatError

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

_MAX_VARINT_BYTES = 10
UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Field:
    """One decoded field: its number, wire type and value (an int or the raw bytes)."""

    number: int
    wire_type: int
    value: int | bytes


def encode_varint(value: int) -> bytes:
    if value < 0 or value > UINT64_MAX:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int, where: str) -> tuple[int, int]:
    """Decode the varint at ``pos``; return (value, position after it)."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= len(buf):
            raise PayloadFormatError(f"{where}: message ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if result > UINT64_MAX:
                raise PayloadFormatError(f"{where}: varint larger than 64 bits")
            return result, pos
    raise PayloadFormatError(f"{where}: varint longer than 10 bytes")


def iter_fields(buf: bytes, where: str) -> Iterator[Field]:
    """Yield the fields of one encoded message, refusing anything that overruns ``buf``."""
    pos = 0
    size = len(buf)
    while pos < size:
        key, pos = decode_varint(buf, pos, where)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise PayloadFormatError(f"{where}: field number 0 is invalid")
        if wire_type == VARINT:
            value, pos = decode_varint(buf, pos, where)
            yield Field(number, wire_type, value)
        elif wire_type == LENGTH_DELIMITED:
            length, pos = decode_varint(buf, pos, where)
            if length > size - pos:
                raise PayloadFormatError(
                    f"{where}: field {number} claims {length} bytes but only {size - pos} remain"
                )
            yield Field(number, wire_type, buf[pos : pos + length])
            pos += length
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if width > size - pos:
                raise PayloadFormatError(f"{where}: field {number} is cut short")
            yield Field(number, wire_type, int.from_bytes(buf[pos : pos + width], "little"))
            pos += width
        else:
            raise PayloadFormatError(f"{where}: unsupported wire type {wire_type}")


def expect_int(field: Field, where: str) -> int:
    if not isinstance(field.value, int) or field.wire_type != VARINT:
        raise PayloadFormatError(f"{where}: field {field.number} should be a varint")
    return field.value


def expect_bytes(field: Field, where: str) -> bytes:
    if not isinstance(field.value, bytes):
        raise PayloadFormatError(f"{where}: field {field.number} should be length-delimited")
    return field.value


class MessageWriter:
    """Appends fields in the order given; proto2 readers accept any order."""

    def __init__(self) -> None:
        self._out = bytearray()

    def varint(self, number: int, value: int | None) -> None:
        if value is None:
            return
        self._out += encode_varint(number << 3 | VARINT)
        self._out += encode_varint(value)

    def bytes_field(self, number: int, value: bytes | None) -> None:
        if value is None:
            return
        self._out += encode_varint(number << 3 | LENGTH_DELIMITED)
        self._out += encode_varint(len(value))
        self._out += value

    def getvalue(self) -> bytes:
        return bytes(self._out)
