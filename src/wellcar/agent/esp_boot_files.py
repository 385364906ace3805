"""Kernels, initrds and systemd-boot entries of both slots on the node's mounted ESP.

The text and names of what is written come from ``wellcar.disk.boot_entries``; this module
only reads and writes the files. GRUB's ``grub/grub.cfg`` and ``grub/grubenv`` (for BIOS
machines) are rewritten from the entries whenever an entry changes, on either firmware, so
the disk boots the same slot whichever firmware starts it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from uuid import UUID

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import BootEntryError, Slot, UsrVerity
from wellcar.disk.boot_entries import (
    GRUB_CFG,
    GRUBENV,
    LOADER_ENTRIES,
    BootEntryName,
    boot_entry_file_name,
    entry_usrhash,
    grub_cfg_for_entry_files,
    grubenv_tries_left,
    parse_boot_entry_file_name,
    parse_grubenv,
    render_boot_entry,
    render_grubenv,
    slot_boot_entry,
    slot_boot_files,
)


class EspBootFiles:
    """Kernels, initrds and systemd-boot entries of both slots on a mounted ESP.

    Files: ``EFI/<brand>/vmlinuz-a``, ``EFI/<brand>/initrd-a``, and one entry per slot in
    ``loader/entries/<brand>-a[+LEFT[-DONE]].conf``.
    """

    def __init__(self, esp: Path, brand: str = "wellcar", title: str = "Wellcar") -> None:
        self.esp = esp
        self.brand = brand
        self.title = title

    def kernel_path(self, slot: Slot) -> Path:
        return self.esp / slot_boot_files(self.brand, slot).kernel

    def initrd_path(self, slot: Slot) -> Path:
        return self.esp / slot_boot_files(self.brand, slot).initrd

    @property
    def entries_dir(self) -> Path:
        return self.esp / LOADER_ENTRIES

    def entries(self, slot: Slot) -> list[tuple[Path, BootEntryName]]:
        if not self.entries_dir.is_dir():
            return []
        found = []
        for path in sorted(self.entries_dir.iterdir()):
            name = parse_boot_entry_file_name(self.brand, path.name)
            if name is not None and name.slot is slot:
                found.append((path, name))
        return found

    def tries_left(self, slot: Slot) -> int | None:
        """The counter of the slot's entry; None when it has no counted entry."""
        counted = [name.tries_left for _, name in self.entries(slot) if name.tries_left is not None]
        return min(counted) if counted else None

    def install(
        self,
        slot: Slot,
        *,
        version: str,
        tries: int,
        partuuid: UUID,
        verity: UsrVerity | None = None,
        base_options: Sequence[str] = (),
    ) -> Path:
        """Write ``slot``'s entry with ``tries`` boots to prove itself; replaces older ones."""
        entry = slot_boot_entry(
            brand=self.brand,
            title=self.title,
            version=version,
            slot=slot,
            partuuid=partuuid,
            verity=verity,
            base_options=base_options,
            with_initrd=self.initrd_path(slot).exists(),
        )
        text = render_boot_entry(entry)
        target = self.entries_dir / boot_entry_file_name(self.brand, slot, tries)
        stale = [path for path, _ in self.entries(slot) if path != target]
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        write_file_atomically(target, text, mode=None)  # the ESP is FAT: no chmod
        for path in stale:
            path.unlink(missing_ok=True)
        self.write_grub_files({slot: tries})
        return target

    def bless(self, slot: Slot) -> Path | None:
        """Drop the counter (what systemd-bless-boot does): the entry is final."""
        final = self.entries_dir / boot_entry_file_name(self.brand, slot)
        for path, name in self.entries(slot):
            if name.tries_left is not None:
                os.replace(path, final)
        if self.grub_tries_left(slot) is not None:
            self.write_grub_files({slot: None})
        return final if final.exists() else None

    def remove(self, slot: Slot) -> None:
        for path, _ in self.entries(slot):
            path.unlink(missing_ok=True)
        self.write_grub_files({slot: None})

    # -- GRUB (BIOS machines)

    def grub_counters(self) -> dict[Slot, int | None]:
        """Each slot's tries left in grubenv (GRUB counts them down on BIOS machines); a
        missing or unreadable grubenv has none."""
        try:
            return grubenv_tries_left(parse_grubenv((self.esp / GRUBENV).read_bytes()))
        except (OSError, BootEntryError):
            return dict.fromkeys(Slot)

    def grub_tries_left(self, slot: Slot) -> int | None:
        return self.grub_counters()[slot]

    def write_grub_files(self, changed: Mapping[Slot, int | None] = MappingProxyType({})) -> None:
        """grub.cfg from the entries on the ESP, and grubenv with the ``changed`` counters
        (the others kept; a slot without an entry has none). The config is written before
        the counters: a new counted entry is never booted from an old config. With no
        entry left, nothing is written."""
        texts: dict[str, str] = {}
        slots: set[Slot] = set()
        for slot in Slot:
            for path, _ in self.entries(slot):
                try:
                    texts[path.name] = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue  # not bootable by either loader; GRUB boots the others
                slots.add(slot)
        config = grub_cfg_for_entry_files(self.brand, texts)
        if config is None:
            return
        counters = {**self.grub_counters(), **changed}
        counters.update({slot: None for slot in Slot if slot not in slots})
        (self.esp / GRUB_CFG).parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.esp / GRUB_CFG, config, mode=None)
        write_file_atomically(self.esp / GRUBENV, render_grubenv(counters), mode=None)

    def slots_by_usrhash(self) -> dict[str, Slot]:
        """The root hash (``verity.usrhash=``, or ``usrhash=`` of older entries) each of our
        entries boots with."""
        found: dict[str, Slot] = {}
        for slot in Slot:
            for path, _ in self.entries(slot):
                digest = entry_usrhash(path.read_text(encoding="utf-8", errors="replace"))
                if digest:
                    found[digest] = slot
        return found
