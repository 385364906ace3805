"""The machine's A/B slots and boot, as the update agent sees them.

:class:`SlotBackend` is everything the agent needs from the node: the slot table (GPT
gptprio bits + slot-status file), which slot is running, where an update's /usr, kernel
and initrd go, the boot id, boot-loader entries and the reboot itself. Two backends:

- ``simulated_node.FileSlotBackend``: a whole node on a disk image *file*, for tests and
  the end-to-end test; "booting" is GRUB's ``gptprio.next``.
- ``block_device_backend.BlockDeviceSlotBackend``: the real machine (its disk found by
  ``slot_disk``, its systemd-boot entries kept by ``esp_boot_files``).

What the boot loader reads (entries, kernel command lines) is rendered and parsed only by
``wellcar.disk.boot_entries``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from wellcar.disk import Slot, SlotTable, UsrVerity
from wellcar.payload.targets import TargetRegion

# ------------------------------------------------------------------------------ errors


class SlotBackendError(Exception):
    """Base class of the errors raised by this module."""


class NodeNotPoweredOnError(SlotBackendError):
    """A FileSlotBackend node was asked about its boot before its first power_on()."""


class SlotDiskNotFoundError(SlotBackendError):
    """No (or more than one) disk holds both USR-A and USR-B."""


class EspNotFoundError(SlotBackendError):
    """No EFI system partition is mounted where one is looked for."""


class CommandFailedError(SlotBackendError):
    """An external command (lsblk, systemctl) could not be run or exited non-zero."""


# ---------------------------------------------------------------------------- protocol


class SlotBackend(Protocol):
    """The node's slots and boot, as the agent uses them."""

    def reconcile(self) -> None:
        """Once per boot, before anything reads the slot table: bring what the firmware
        recorded (systemd-boot's counters on the ESP) into the GPT bits. The one writer of
        that fact; reading the table never writes."""
        ...

    def slot_table(self) -> SlotTable:
        """The slot table, with the running slot fixed to :meth:`booted_slot` (read-only)."""
        ...

    def booted_slot(self) -> Slot: ...

    def usr_region(self, slot: Slot) -> TargetRegion:
        """Where ``slot``'s /usr bytes live (inside :meth:`payload_image`)."""
        ...

    def kernel_path(self, slot: Slot) -> Path | None:
        """Where a payload's kernel for ``slot`` is written (None: kernels are not kept)."""
        ...

    def initrd_path(self, slot: Slot) -> Path | None: ...

    def payload_image(self) -> Path:
        """The disk image or whole-disk device whose slots are written (install_into_slot)."""
        ...

    def reboot(self) -> None: ...

    def boot_id(self) -> str:
        """Changes on every boot; lets the agent tell "same boot" from "after a reboot"."""
        ...

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        """After ``make_bootable(slot)``: whatever the boot loader needs besides the GPT bits.

        ``verity`` comes from the verified payload's manifest: with it the entry boots the
        slot's /usr through dm-verity, without it /usr is mounted directly.
        """
        ...

    def bless_boot_entry(self, slot: Slot) -> None:
        """After ``mark_good(slot)``: make the slot's boot entry permanent (idempotent)."""
        ...

    def remove_boot_entry(self, slot: Slot) -> None:
        """After ``mark_bad(slot)`` or before rewriting it: the boot loader must not offer it."""
        ...
