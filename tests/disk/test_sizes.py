"""Sizes as people write them."""

from __future__ import annotations

import pytest

from wellcar.disk import InvalidSizeError, format_size, parse_size
from wellcar.disk.sizes import GiB, KiB, MiB, TiB


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("512", 512),
        ("4K", 4 * KiB),
        ("64M", 64 * MiB),
        ("64m", 64 * MiB),
        ("64MiB", 64 * MiB),
        ("64MB", 64 * MiB),
        (" 2 GiB ", 2 * GiB),
        ("1.5G", 3 * GiB // 2),
        ("1T", TiB),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12Q", "", "M", "-1M", "1e3", "1.5", "0.3K", "64 M B", "1,5G"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidSizeError, match=repr(text).replace(".", r"\.")):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (2 * KiB, "2 KiB"), (64 * MiB, "64 MiB"), (3 * GiB // 2, "1.5 GiB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
