"""`wellcar disk`: create Flatcar-layout disk images, inspect them, and drive the A/B slots.

Works on image files, without root. Every command prints a table, or JSON with --json.
The slot commands keep a slot-status file next to the image (IMAGE.slots.json) unless
--status-file names another. Mistakes print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wellcar.cli.output import UsageError, err, fail, out
from wellcar.disk import (
    SECTOR_SIZE,
    DiskError,
    DiskLayout,
    GptDisk,
    GptPrio,
    Partition,
    PartitionNotFoundError,
    Slot,
    SlotInfo,
    SlotTable,
    create_disk_image,
    default_status_path,
    format_size,
    parse_size,
    read_gpt,
)
from wellcar.disk.boot_entries import plain_usr_option
from wellcar.disk.gpt import LEGACY_BIOS_BOOTABLE_BIT
from wellcar.disk.partition_types import FLATCAR_USR

disk_app = typer.Typer(
    help="Flatcar-layout disk images: create, show, and the A/B /usr slots (gptprio).",
    no_args_is_help=True,
)

ImageArg = Annotated[Path, typer.Argument(help="Disk image file", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
StatusFile = Annotated[
    Path | None,
    typer.Option("--status-file", help="Slot-status file [default: IMAGE.slots.json]"),
]
ActiveOpt = Annotated[
    str | None,
    typer.Option(
        "--active",
        help="The running slot (A or B) [default: the slot the last 'next' booted, "
        "else the one gptprio would boot]",
    ),
]


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Any disk or usage error inside ends the command with one line and status 1."""
    try:
        yield
    except (DiskError, UsageError) as exc:
        fail(str(exc))


def emit_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*row)
    out.print(t)


# ------------------------------------------------------------------------ value parsing


def parse_slot(text: str, option: str = "--slot") -> Slot:
    value = text.strip().upper()
    for slot in Slot:
        if value in (slot.value, slot.label, str(slot.partition_number)):
            return slot
    raise UsageError(f"{option} {text!r}: use A or B (USR-A/USR-B, or partition 3/4)")


def _size_option(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except DiskError as exc:
        raise UsageError(f"{option}: {exc}") from exc


def _size_or(text: str | None, option: str, default: int) -> int:
    size = _size_option(text, option)
    return default if size is None else size


def _slot_table(image: Path, status_file: Path | None, active: str | None) -> SlotTable:
    running = parse_slot(active, "--active") if active is not None else None
    return SlotTable.for_image(image, status_file, active=running)


# ------------------------------------------------------------------------------ JSON


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _prio_json(prio: GptPrio) -> dict[str, Any]:
    return {"priority": prio.priority, "tries": prio.tries, "successful": prio.successful}


def _partition_json(partition: Partition) -> dict[str, Any]:
    usr = partition.type_guid == FLATCAR_USR.guid
    return {
        "number": partition.number,
        "label": partition.label,
        "type": partition.type_name,
        "type_guid": str(partition.type_guid).upper(),
        "uuid": str(partition.unique_guid).upper(),
        "first_lba": partition.first_lba,
        "last_lba": partition.last_lba,
        "start": partition.byte_offset,
        "size": partition.byte_size,
        "attributes": f"{partition.attributes:#018x}",
        "legacy_bios_bootable": partition.has_attribute_bit(LEGACY_BIOS_BOOTABLE_BIT),
        "gptprio": _prio_json(GptPrio.from_attributes(partition.attributes)) if usr else None,
    }


def _slot_json(info: SlotInfo) -> dict[str, Any]:
    record = info.record
    return {
        "slot": info.slot.value,
        "partition": info.partition.number,
        "label": info.partition.label,
        "uuid": str(info.partition.unique_guid).upper(),
        "state": info.state.value,
        "active": info.active,
        **_prio_json(info.prio),
        "phase": record.phase.value,
        "version": record.version,
        "size": record.size,
        "sha256": record.sha256,
        "write_started_at": _stamp(record.write_started_at),
        "written_at": _stamp(record.written_at),
        "verified_at": _stamp(record.verified_at),
        "made_bootable_at": _stamp(record.made_bootable_at),
        "marked_good_at": _stamp(record.marked_good_at),
        "marked_bad_at": _stamp(record.marked_bad_at),
    }


def _disk_json(disk: GptDisk) -> dict[str, Any]:
    return {
        "image": str(disk.path),
        "disk_guid": str(disk.disk_guid).upper(),
        "size": disk.size_bytes,
        "sector_size": SECTOR_SIZE,
        "header": disk.source.value,
        "needs_repair": disk.needs_repair,
        "primary_problem": disk.primary_problem,
        "backup_problem": disk.backup_problem,
        "partitions": [_partition_json(p) for p in disk.partitions],
    }


# ----------------------------------------------------------------------------- tables


def _prio_cell(partition: Partition) -> str:
    if partition.type_guid != FLATCAR_USR.guid:
        return "-"
    return GptPrio.from_attributes(partition.attributes).describe()


def show_disk(disk: GptDisk) -> None:
    out.print(
        f"{disk.path}: GPT, {format_size(disk.size_bytes)}, disk GUID "
        f"{str(disk.disk_guid).upper()}, read from the {disk.source} header"
    )
    for copy, problem in (("primary", disk.primary_problem), ("backup", disk.backup_problem)):
        if problem:
            err.print(f"warning: {copy} GPT copy: {problem} (any write repairs it)", markup=False)
    table(None, ["#", "LABEL", "TYPE", "START (LBA)", "SIZE", "UUID", "GPTPRIO", "ATTRIBUTES"], [
        [str(p.number), p.label, p.type_name, str(p.first_lba), format_size(p.byte_size),
         str(p.unique_guid).upper(), _prio_cell(p), f"{p.attributes:#018x}"]
        for p in disk.partitions
    ])  # fmt: skip


def show_slots(slots: Sequence[SlotInfo]) -> None:
    def role(info: SlotInfo) -> str:
        if info.active:
            return "running"
        return "update target" if any(other.active for other in slots) else "-"

    table(None, ["SLOT", "PART", "STATE", "PRIORITY", "TRIES", "SUCCESSFUL", "ROLE", "VERSION",
                 "SHA256"], [
        [i.slot.value, f"{i.partition.number} {i.partition.label}", i.state.value,
         str(i.prio.priority), str(i.prio.tries), "yes" if i.prio.successful else "no",
         role(i), i.record.version or "-", (i.record.sha256 or "-")[:16]]
        for i in slots
    ])  # fmt: skip


def _report_slot(info: SlotInfo, table_: SlotTable, as_json: bool, action: str) -> None:
    if as_json:
        emit_json(_slot_json(info))
        return
    out.print(f"slot {info.slot} {action}: {info.state} ({info.prio.describe()})")
    show_slots(table_.slots())


# ---------------------------------------------------------------------------- commands


@disk_app.command("create")
def create(
    image: ImageArg,
    size: Annotated[
        str | None,
        typer.Option(help="Image size, e.g. 4G; ROOT then takes the rest [default: smallest]"),
    ] = None,
    usr_size: Annotated[str | None, typer.Option(help="Size of USR-A and of USR-B")] = None,
    esp_size: Annotated[str | None, typer.Option(help="Size of the EFI system partition")] = None,
    root_size: Annotated[
        str | None, typer.Option(help="Size of ROOT, or 'rest' for the rest of the image")
    ] = None,
    seed: Annotated[
        str | None, typer.Option(help="Derive the disk GUID and partition UUIDs from this")
    ] = None,
    flatcar_sizes: Annotated[
        bool, typer.Option("--flatcar-sizes", help="Start from Flatcar's real sizes")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file")] = False,
    as_json: AsJson = False,
) -> None:
    """Create a sparse image file with the Flatcar partition layout (USR-A good, USR-B empty)."""
    with reporting_errors():
        base = DiskLayout.flatcar() if flatcar_sizes else DiskLayout()
        disk_size = _size_option(size, "--size")
        if root_size is not None and root_size.strip().lower() == "rest":
            root: int | None = None
        elif root_size is not None:
            root = _size_option(root_size, "--root-size")
        else:  # an explicit image size is there to be used: ROOT grows into it
            root = None if disk_size is not None else base.root_size
        layout = replace(
            base,
            esp_size=_size_or(esp_size, "--esp-size", base.esp_size),
            usr_size=_size_or(usr_size, "--usr-size", base.usr_size),
            root_size=root,
        )
        if image.exists() and not force:
            raise UsageError(f"{image} already exists (use --force to replace it)")
        disk = create_disk_image(image, layout, disk_size, seed=seed, overwrite=force)
        # A slot-status file left from an earlier image describes slots that are gone.
        stale = default_status_path(image)
        try:
            stale.unlink(missing_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot remove the old slot-status file {stale}: {exc}") from exc
    if as_json:
        emit_json(_disk_json(disk))
    else:
        show_disk(disk)


@disk_app.command("show")
def show(
    image: ImageArg,
    status_file: StatusFile = None,
    active: ActiveOpt = None,
    as_json: AsJson = False,
) -> None:
    """Show the partitions, their gptprio bits and the state of the two /usr slots."""
    no_slots: str | None = None
    slots: Sequence[SlotInfo] = ()
    with reporting_errors():
        disk = read_gpt(image)
        try:
            slots = _slot_table(image, status_file, active).slots()
        except PartitionNotFoundError as exc:  # any GPT disk can be shown, slots or not
            no_slots = str(exc)
    if as_json:
        running = next((info.slot for info in slots if info.active), None)
        emit_json({
            **_disk_json(disk),
            "active_slot": running.value if running else None,
            "update_target": running.other.value if running else None,
            "slots": [_slot_json(info) for info in slots],
            "slots_problem": no_slots,
        })  # fmt: skip
        return
    show_disk(disk)
    if no_slots:
        out.print(f"no A/B slots: {no_slots}")
    else:
        show_slots(slots)


@disk_app.command("next")
def next_boot(image: ImageArg, status_file: StatusFile = None, as_json: AsJson = False) -> None:
    """Boot the image once, as GRUB's gptprio.next: pick a slot, use up one try, record it."""
    with reporting_errors():
        slots = SlotTable.for_image(image, status_file)
        result = slots.boot_next()
        partition = slots.partition(result.slot)
    cmdline = plain_usr_option(partition.unique_guid)
    if as_json:
        emit_json({
            "slot": result.slot.value, "partition": partition.number, "label": partition.label,
            "before": _prio_json(result.before), "after": _prio_json(result.after),
            "tries_used": result.before.tries != result.after.tries, "cmdline": cmdline,
        })  # fmt: skip
        return
    out.print(
        f"boots slot {result.slot} ({partition.label}, partition {partition.number}): "
        f"{result.before.describe()} → {result.after.describe()}"
        f"{'' if result.before.tries else ' (successful, no try used)'}; {cmdline}"
    )


@disk_app.command("prioritize")
def prioritize_slot(
    image: ImageArg,
    slot: Annotated[str, typer.Option("--slot", help="A or B", show_default=False)],
    status_file: StatusFile = None,
    active: ActiveOpt = None,
    as_json: AsJson = False,
) -> None:
    """Put a slot first in the boot order, as cgpt prioritize (manual rollback)."""
    with reporting_errors():
        slots = _slot_table(image, status_file, active)
        info = slots.prioritize(parse_slot(slot))
    _report_slot(info, slots, as_json, "is first in the boot order")


@disk_app.command("mark-good")
def mark_good(
    image: ImageArg,
    slot: Annotated[str | None, typer.Option("--slot", help="A or B [default: running]")] = None,
    status_file: StatusFile = None,
    active: ActiveOpt = None,
    as_json: AsJson = False,
) -> None:
    """Mark the running slot good (successful, no tries), as flatcar-setgoodroot does."""
    with reporting_errors():
        slots = _slot_table(image, status_file, active)
        target = parse_slot(slot) if slot is not None else _running(slots)
        info = slots.mark_good(target)
    _report_slot(info, slots, as_json, "marked good")


@disk_app.command("mark-bad")
def mark_bad(
    image: ImageArg,
    slot: Annotated[str | None, typer.Option("--slot", help="A or B [default: running]")] = None,
    status_file: StatusFile = None,
    active: ActiveOpt = None,
    as_json: AsJson = False,
) -> None:
    """Mark a slot bad (priority 0): the other slot boots next."""
    with reporting_errors():
        slots = _slot_table(image, status_file, active)
        target = parse_slot(slot) if slot is not None else _running(slots)
        info = slots.mark_bad(target)
    _report_slot(info, slots, as_json, "marked bad")


def _running(slots: SlotTable) -> Slot:
    running = slots.active
    if running is None:
        raise UsageError("no slot is running or bootable: name one with --slot")
    return running
