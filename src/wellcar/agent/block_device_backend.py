"""The real machine's slots: the boot disk's GPT, /proc/cmdline, the ESP and systemctl."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wellcar.disk import AttributeUpdate, GptPrio, Slot, SlotTable, UsrVerity, slot_partition
from wellcar.disk.boot_entries import (
    booted_slot_from_cmdline,
    kernel_cmdline_words,
    partuuid_in_cmdline,
)
from wellcar.logline import log_fields
from wellcar.payload.targets import TargetRegion

from .esp_boot_files import EspBootFiles
from .slot_backend import CommandFailedError, EspNotFoundError, SlotDiskNotFoundError
from .slot_disk import (
    BlockDeviceGpt,
    CommandRunner,
    run_command,
    slot_disk_from_lsblk,
    slot_disk_from_partlabel_links,
)
from .state_dir import StateDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostPaths:
    """Where the backend looks on the host (tests point these into a temporary tree)."""

    proc: Path = Path("/proc")
    dev: Path = Path("/dev")
    sys_class_block: Path = Path("/sys/class/block")
    sys_firmware_efi: Path = Path("/sys/firmware/efi")  # present when UEFI booted the node
    esp_candidates: tuple[Path, ...] = (Path("/boot"), Path("/efi"), Path("/boot/efi"))


class BlockDeviceSlotBackend:
    """The real machine: the boot disk's GPT, /proc/cmdline, the ESP and systemctl.

    Both boot loaders are served. With systemd-boot (UEFI), every slot made bootable also
    gets an entry with a boot counter (``wellcar-b+1.conf``); systemd-boot counts it down
    on each boot. On BIOS machines GRUB boots from a grub.cfg rendered from the same
    entries and counts down ``grub/grubenv`` instead. :meth:`reconcile` copies the count
    of the loader that booted into the GPT's tries, so the rules of :class:`SlotTable`
    (a slot out of tries that is not running has failed) hold for both.
    """

    def __init__(
        self,
        *,
        state_dir: Path = Path("/var/lib/wellcar"),
        disk: Path | None = None,
        esp: Path | None = None,
        brand: str = "wellcar",
        title: str = "Wellcar",
        base_options: Sequence[str] | None = None,
        paths: HostPaths = HostPaths(),
        run: CommandRunner = run_command,
    ) -> None:
        self.state_dir = state_dir
        self.status_path = StateDir(state_dir).slot_status
        self._disk = disk
        self._esp = esp
        self._brand = brand
        self._title = title
        self._base_options = tuple(base_options) if base_options is not None else None
        self._paths = paths
        self._run = run

    # -- host facts

    def cmdline(self) -> str:
        return (self._paths.proc / "cmdline").read_text(encoding="utf-8", errors="replace")

    def disk(self) -> Path:
        """The whole-disk device holding USR-A and USR-B (found once, then remembered)."""
        if self._disk is None:
            self._disk = self._locate_disk()
        return self._disk

    def _locate_disk(self) -> Path:
        booted = partuuid_in_cmdline(self.cmdline())
        try:
            output = self._run(["lsblk", "-J", "-l", "-o", "NAME,PKNAME,PARTLABEL,PARTUUID"])
            return self._paths.dev / slot_disk_from_lsblk(output, booted)
        except (CommandFailedError, SlotDiskNotFoundError) as exc:
            log.info(
                "lsblk did not find the slot disk; trying by-partlabel links",
                extra=log_fields(error=exc),
            )
        return slot_disk_from_partlabel_links(self._paths.dev, self._paths.sys_class_block)

    def esp_files(self) -> EspBootFiles | None:
        """The ESP's boot files, or None when no ESP is mounted (a GRUB-only machine)."""
        esp = self._esp
        if esp is None:
            esp = next((c for c in self._paths.esp_candidates if (c / "EFI").is_dir()), None)
        return EspBootFiles(esp, self._brand, self._title) if esp is not None else None

    def _require_esp(self) -> EspBootFiles:
        files = self.esp_files()
        if files is None:
            looked = ", ".join(str(c) for c in self._paths.esp_candidates)
            raise EspNotFoundError(f"no EFI system partition with an EFI directory at {looked}")
        return files

    def _store(self) -> BlockDeviceGpt:
        return BlockDeviceGpt(self.disk())

    # -- SlotBackend

    def booted_slot(self) -> Slot:
        files = self.esp_files()
        return booted_slot_from_cmdline(
            self.cmdline(),
            self._store().read_gpt().partitions,
            files.slots_by_usrhash() if files is not None else None,
        )

    def slot_table(self) -> SlotTable:
        # The table's changes are saved next to the agent's state: the directory must be.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return SlotTable(self._store(), self.status_path, active=self.booted_slot())

    def booted_with_uefi(self) -> bool:
        """UEFI firmware (systemd-boot) started this boot; else a BIOS (GRUB)."""
        return self._paths.sys_firmware_efi.is_dir()

    def reconcile(self) -> None:
        """Copy a try the boot loader used (systemd-boot's entry counter, or GRUB's in
        grubenv on a BIOS machine) into the GPT bits, so the rules of :class:`SlotTable`
        hold for both boot loaders."""
        files = self.esp_files()
        if files is None:
            return
        uefi = self.booted_with_uefi()
        counters = (
            {slot: files.tries_left(slot) for slot in Slot} if uefi else files.grub_counters()
        )
        store = self._store()
        disk = store.read_gpt()
        for slot in Slot:
            left = counters[slot]
            partition = slot_partition(disk, slot)
            prio = GptPrio.from_attributes(partition.attributes)
            if left is None or prio.priority == 0 or prio.successful or prio.tries <= left:
                continue
            log.info(
                "the boot loader used a try of the slot",
                extra=log_fields(
                    slot=slot,
                    loader="systemd-boot" if uefi else "grub",
                    tries_before=prio.tries,
                    tries_after=left,
                ),
            )
            lowered = GptPrio(prio.priority, left, False).apply_to(partition.attributes)
            store.write_attributes([AttributeUpdate(partition.number, lowered)])

    def usr_region(self, slot: Slot) -> TargetRegion:
        partition = slot_partition(self._store().read_gpt(), slot)
        return TargetRegion(self.disk(), partition.byte_offset, partition.byte_size)

    def kernel_path(self, slot: Slot) -> Path:
        return self._require_esp().kernel_path(slot)

    def initrd_path(self, slot: Slot) -> Path:
        return self._require_esp().initrd_path(slot)

    def payload_image(self) -> Path:
        return self.disk()

    def reboot(self) -> None:
        self._run(["systemctl", "reboot"])

    def boot_id(self) -> str:
        path = self._paths.proc / "sys" / "kernel" / "random" / "boot_id"
        return path.read_text(encoding="ascii").strip()

    def _entry_base_options(self) -> tuple[str, ...]:
        if self._base_options is not None:
            return self._base_options
        # The running boot's command line minus its /usr: console, root= and whatever the
        # vendor or user added carry over to the other slot's entry.
        # Words, not a dict: repeated keys such as console= all matter.
        return tuple(kernel_cmdline_words(self.cmdline()))

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        files = self.esp_files()
        if files is None:
            return  # GRUB-only machine: the GPT bits already say everything
        partuuid = slot_partition(self._store().read_gpt(), slot).unique_guid
        path = files.install(
            slot,
            version=version,
            tries=tries,
            partuuid=partuuid,
            verity=verity,
            base_options=self._entry_base_options(),
        )
        log.info("wrote boot entry", extra=log_fields(path=path))

    def bless_boot_entry(self, slot: Slot) -> None:
        files = self.esp_files()
        if files is not None:
            files.bless(slot)

    def remove_boot_entry(self, slot: Slot) -> None:
        files = self.esp_files()
        if files is not None:
            files.remove(slot)
