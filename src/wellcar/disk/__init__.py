"""Disk layout, GPT and A/B slots: Flatcar's partitions and gptprio bits, on image files.

- ``layout``: the partition table as data (:class:`DiskLayout`, :class:`Slot`);
- ``gpt`` / ``gpt_image``: the GPT format and reading/writing it in an image file;
- ``gptprio``: the attribute bits, GRUB's ``gptprio.next`` and cgpt's ``prioritize``;
- ``slots`` / ``slot_status``: the slot model and its status file;
- ``boot_entries`` / ``usr_verity``: the boot contract (ESP files, entries, kernel command
  lines, which slot booted) and a slot's dm-verity parameters.

See docs/disk.md.
"""

from __future__ import annotations

from .boot_entries import slot_from_boot_hint
from .disk_image import create_disk_image, derive_guid
from .errors import (
    BootedSlotUnknownError,
    BootEntryError,
    DiskError,
    GptCorruptError,
    GptHeaderError,
    ImageAccessError,
    ImageTooSmallError,
    InvalidAttributeError,
    InvalidSizeError,
    LayoutError,
    NoBootablePartitionError,
    NotGptError,
    PartitionNotFoundError,
    SlotStateError,
    SlotStatusError,
    UsrVerityError,
)
from .gpt import AttributeUpdate, Partition
from .gpt_image import GptDisk, HeaderCopy, read_gpt, repair_gpt, write_partition_attributes
from .gptprio import BootChoice, GptPrio, gptprio_next, prioritize
from .layout import (
    USR_A_NUMBER,
    USR_A_UUID,
    USR_B_NUMBER,
    USR_B_UUID,
    DiskLayout,
    DiskPlan,
    Filesystem,
    PartitionSpec,
    PlannedPartition,
    Slot,
)
from .partition_types import PartitionType, type_name
from .sizes import SECTOR_SIZE, format_size, parse_size
from .slot_status import (
    ContentPhase,
    SlotRecord,
    SlotStatus,
    default_status_path,
    load_slot_status,
    save_slot_status,
)
from .slots import (
    BootResult,
    ImageFileGpt,
    PartitionAttributeStore,
    SlotInfo,
    SlotState,
    SlotTable,
    derive_state,
    slot_partition,
)
from .usr_verity import UsrVerity

__all__ = [
    "SECTOR_SIZE",
    "USR_A_NUMBER",
    "USR_A_UUID",
    "USR_B_NUMBER",
    "USR_B_UUID",
    "AttributeUpdate",
    "BootChoice",
    "BootEntryError",
    "BootResult",
    "BootedSlotUnknownError",
    "ContentPhase",
    "DiskError",
    "DiskLayout",
    "DiskPlan",
    "Filesystem",
    "GptCorruptError",
    "GptDisk",
    "GptHeaderError",
    "GptPrio",
    "HeaderCopy",
    "ImageAccessError",
    "ImageFileGpt",
    "ImageTooSmallError",
    "InvalidAttributeError",
    "InvalidSizeError",
    "LayoutError",
    "NoBootablePartitionError",
    "NotGptError",
    "Partition",
    "PartitionAttributeStore",
    "PartitionNotFoundError",
    "PartitionSpec",
    "PartitionType",
    "PlannedPartition",
    "Slot",
    "SlotInfo",
    "SlotRecord",
    "SlotState",
    "SlotStateError",
    "SlotStatus",
    "SlotStatusError",
    "SlotTable",
    "UsrVerity",
    "UsrVerityError",
    "create_disk_image",
    "default_status_path",
    "derive_guid",
    "derive_state",
    "format_size",
    "gptprio_next",
    "load_slot_status",
    "parse_size",
    "prioritize",
    "read_gpt",
    "repair_gpt",
    "save_slot_status",
    "slot_from_boot_hint",
    "slot_partition",
    "type_name",
    "write_partition_attributes",
]
