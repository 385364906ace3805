"""Ignition's ``kernelArguments`` on a Wellcar node: the slots' boot entries on the ESP.

Flatcar's Ignition edits GRUB's ``oem/grub.cfg`` and reboots once. Wellcar's boot entries
belong to the boot contract (``wellcar.disk.boot_entries``): the arguments are applied to
every entry of the brand on the ESP (both slots where both exist), then the node reboots
once so they are in ``/proc/cmdline``. The update agent builds a new slot's entry from the
running command line, so the arguments stay across updates without being stored twice.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import BootEntryError
from wellcar.disk.boot_entries import (
    GRUB_CFG,
    LOADER_ENTRIES,
    grub_cfg_for_entry_files,
    kernel_argument_conflict,
    parse_boot_entry,
    parse_boot_entry_file_name,
    render_boot_entry,
)
from wellcar.disk.boot_entries import apply_kernel_arguments as apply_to_words
from wellcar.ignition.errors import ApplyError
from wellcar.ignition.report import Report
from wellcar.ignition.types import KernelArguments

ESP_MOUNT = Path("/boot")  # where the image's fstab mounts the ESP


def check_kernel_arguments(arguments: KernelArguments, report: Report) -> None:
    """Validation: a word the boot contract owns (``verity.usr=``, ``root=``, …) may be
    neither added nor removed, and a word cannot be both wanted and unwanted."""
    for key, words in (
        ("shouldExist", arguments.should_exist),
        ("shouldNotExist", arguments.should_not_exist),
    ):
        for index, word in enumerate(words):
            problem = kernel_argument_conflict(word)
            if problem is not None:
                report.error(f"$.kernelArguments.{key}[{index}]", problem)
    for word in sorted(set(arguments.should_exist) & set(arguments.should_not_exist)):
        report.error("$.kernelArguments", f"{word!r} is in both shouldExist and shouldNotExist")


def wants_kernel_arguments(arguments: KernelArguments) -> bool:
    return bool(arguments.should_exist or arguments.should_not_exist)


def set_kernel_arguments(arguments: KernelArguments, esp: Path, brand: str) -> tuple[Path, ...]:
    """Rewrite each of ``brand``'s entries whose command line changes; returns those.

    Every new text is rendered before the first file is replaced, so a bad entry leaves
    all of them as they were."""
    entries = esp / LOADER_ENTRIES
    ours = sorted(
        path
        for path in (entries.iterdir() if entries.is_dir() else ())
        if parse_boot_entry_file_name(brand, path.name) is not None
    )
    if not ours:
        raise ApplyError(
            f"kernelArguments: no {brand} boot entries in {entries}; is the ESP mounted at {esp}?"
        )
    changes: list[tuple[Path, str]] = []
    for path in ours:
        try:
            entry = parse_boot_entry(path.read_text(encoding="utf-8"))
            options = apply_to_words(
                entry.options,
                should_exist=arguments.should_exist,
                should_not_exist=arguments.should_not_exist,
            )
            if options != entry.options:
                changes.append((path, render_boot_entry(replace(entry, options=options))))
        except (BootEntryError, OSError, UnicodeDecodeError) as exc:
            raise ApplyError(f"kernelArguments: {path}: {exc}") from exc
    for path, text in changes:
        write_file_atomically(path, text, mode=None)  # the ESP is FAT: no chmod
    if changes:
        # BIOS machines boot GRUB: its config is rendered from the same entries.
        texts = {path.name: path.read_text(encoding="utf-8") for path in ours}
        grub_cfg = grub_cfg_for_entry_files(brand, texts)
        if grub_cfg is not None and (esp / GRUB_CFG).parent.is_dir():
            write_file_atomically(esp / GRUB_CFG, grub_cfg, mode=None)
    return tuple(path for path, _ in changes)
