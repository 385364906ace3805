"""Byte sizes: the units the disk code works in, and parsing/formatting sizes for people."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidSizeError

SECTOR_SIZE = 512
"""Logical sector size. Only 512-byte sectors are supported (what Flatcar images use)."""

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

ALIGNMENT = MiB
"""Partition start and size alignment (2048 sectors), what sfdisk and sgdisk default to."""

# Binary multiples only, as qemu-img, sfdisk and truncate read "M" and "G": a "64M" ESP
# must be exactly 64 MiB, or it stops being a multiple of the alignment.
_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:ib|b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"1073741824"``, ``"64M"``, ``"64MiB"``, ``"1.5G"``, ``"2T"``.

    A bare number is bytes; K, M, G and T (optionally followed by ``iB`` or ``B``) are
    powers of 1024. The result must be a whole number of bytes.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidSizeError(
            f"size {text!r} is not understood: use a number of bytes or a number with "
            "K, M, G or T (binary units, e.g. 64M, 1.5G, 8GiB)"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise InvalidSizeError(f"size {text!r} is not a number") from exc
    value = number * _UNITS[match["unit"].lower()]
    if value != value.to_integral_value():
        raise InvalidSizeError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def format_size(size: int) -> str:
    """A short human form: ``"64 MiB"``, ``"1.5 GiB"``, ``"512 B"``."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            value = size / unit
            return f"{value:.0f} {name}" if value == int(value) else f"{value:.1f} {name}"
    return f"{size} B"


def is_aligned(size: int, alignment: int = ALIGNMENT) -> bool:
    return size % alignment == 0
