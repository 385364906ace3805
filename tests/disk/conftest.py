"""Fixtures for the disk tests: small Flatcar-layout images on plain files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_layout import TINY
from wellcar.disk import create_disk_image

# Every partition present, each as small as the 1 MiB alignment allows (USR a bit larger so
# that payload-style writes have room): whole images of 16 MiB, sparse on disk.


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A fresh tiny image: USR-A good (P1 S1), USR-B empty."""
    path = tmp_path / "disk.img"
    create_disk_image(path, TINY, seed="tests")
    return path
