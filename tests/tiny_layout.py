"""The smallest disk layout the slot machinery accepts: a whole node in 12 MiB of file."""

from __future__ import annotations

from wellcar.disk import DiskLayout
from wellcar.disk.sizes import MiB

TINY = DiskLayout(
    esp_size=1 * MiB,
    bios_boot_size=1 * MiB,
    usr_size=4 * MiB,
    oem_size=1 * MiB,
    oem_config_size=1 * MiB,
    root_size=2 * MiB,
)
