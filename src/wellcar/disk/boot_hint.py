"""Which slot is running, from what the booted system can tell us.

On a node the booted /usr is named by the kernel command line GRUB built
(``mount.usr=PARTUUID=<uuid>``, or ``mount.usr=/dev/mapper/usr verity.usr=PARTUUID=<uuid>``
with dm-verity) or by the device behind /usr (``rootdev -s /usr`` → ``/dev/sda4``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from uuid import UUID

from .errors import PartitionNotFoundError
from .gpt import Partition
from .layout import Slot

# The verity key names the partition under /dev/mapper/usr, so it is asked first.
_CMDLINE_KEYS = ("verity.usr", "mount.usr", "usr")
_DEVICE_NUMBER = re.compile(r"^/dev/\S*?\D(\d+)$")


def _slot_by_uuid(value: str, partitions: Sequence[Partition]) -> Slot | None:
    try:
        wanted = UUID(value)
    except ValueError:
        return None
    for slot in Slot:
        actual = next(
            (p.unique_guid for p in partitions if p.number == slot.partition_number),
            slot.partition_uuid,
        )
        if wanted == actual:
            return slot
    return None


def _slot_from_value(value: str, partitions: Sequence[Partition]) -> Slot | None:
    """A single reference to a partition: slot name, label, PARTUUID or device path."""
    upper = value.strip().upper()
    for slot in Slot:
        if upper in (slot.value, slot.label):
            return slot
    for prefix in ("PARTLABEL=", "/DEV/DISK/BY-PARTLABEL/"):
        if upper.startswith(prefix):
            return _slot_from_value(value.strip()[len(prefix) :], partitions)
    for prefix in ("PARTUUID=", "/DEV/DISK/BY-PARTUUID/"):
        if upper.startswith(prefix):
            return _slot_by_uuid(value.strip()[len(prefix) :], partitions)
    by_uuid = _slot_by_uuid(value.strip(), partitions)
    if by_uuid is not None:
        return by_uuid
    device = _DEVICE_NUMBER.match(value.strip())
    if device:
        number = int(device.group(1))
        return next((slot for slot in Slot if slot.partition_number == number), None)
    return None


def slot_from_boot_hint(hint: str, partitions: Sequence[Partition] = ()) -> Slot:
    """The slot a hint names: ``A``/``B``, ``USR-A``, a PARTUUID, ``/dev/vda4``, or a whole
    kernel command line. ``partitions`` (from the GPT) let PARTUUIDs other than Flatcar's
    fixed ones match; without them the fixed ones are used."""
    try:
        words = shlex.split(hint)
    except ValueError:
        words = hint.split()
    assignments = {key: value for key, _, value in (word.partition("=") for word in words)}
    for key in _CMDLINE_KEYS:
        if key in assignments:
            found = _slot_from_value(assignments[key], partitions)
            if found is not None:
                return found
    found = _slot_from_value(hint, partitions)
    if found is not None:
        return found
    raise PartitionNotFoundError(
        f"boot hint {hint!r} does not name a /usr slot: give A or B, USR-A or USR-B, a "
        "PARTUUID, a device such as /dev/vda3, or a kernel command line with mount.usr="
    )
