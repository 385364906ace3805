"""Create a disk image file partitioned with the Wellcar (Flatcar) layout."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from uuid import UUID

from .gpt import Partition
from .gpt_image import GptDisk, write_new_gpt
from .layout import DiskLayout


def derive_guid(seed: str, purpose: str) -> UUID:
    """A version-4-shaped GUID fixed by ``seed`` and ``purpose`` (reproducible images)."""
    digest = hashlib.sha256(f"wellcar-disk\0{seed}\0{purpose}".encode()).digest()
    return UUID(bytes=digest[:16], version=4)


def create_disk_image(
    path: Path,
    layout: DiskLayout | None = None,
    disk_size: int | None = None,
    *,
    seed: str | None = None,
    overwrite: bool = False,
) -> GptDisk:
    """Write a sparse image file of ``disk_size`` bytes (default: the smallest that fits,
    in whole MiB) with a GPT laid out as ``layout``.

    With a ``seed`` the disk GUID and the partition UUIDs are derived from it, so the same
    seed gives byte-identical tables; without one they are random. USR-A and USR-B always
    carry Flatcar's fixed UUIDs. USR-A starts as the good slot (priority 1, successful).
    Raises :class:`ImageAccessError` if the file exists and ``overwrite`` is false.
    """
    layout = layout or DiskLayout()
    plan = layout.plan(disk_size if disk_size is not None else layout.default_disk_size())

    def new_guid(purpose: str) -> UUID:
        return derive_guid(seed, purpose) if seed is not None else uuid.uuid4()

    partitions = tuple(
        Partition(
            number=placed.spec.number,
            type_guid=placed.spec.type.guid,
            unique_guid=placed.spec.fixed_uuid or new_guid(f"partition-{placed.spec.number}"),
            first_lba=placed.first_lba,
            last_lba=placed.last_lba,
            attributes=placed.spec.attributes,
            label=placed.spec.label,
        )
        for placed in plan.partitions
    )
    return write_new_gpt(
        path, plan.total_sectors, new_guid("disk"), partitions, overwrite=overwrite
    )
