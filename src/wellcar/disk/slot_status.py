"""The slot-status file: what was written into each /usr slot, and how far it got.

The GPT attributes say whether a slot may boot; they cannot say what is in it. That lives
here, one small JSON file for both slots (like RAUC's central status file), replaced
atomically on every change (temporary file, fsync, rename, fsync of the directory) so a
power cut leaves either the old or the new record, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from wellcar.atomic_file import write_file_atomically

from .errors import SlotStatusError
from .layout import Slot

FORMAT = "wellcar-slot-status"
FORMAT_VERSION = 1
SIDECAR_SUFFIX = ".slots.json"

_Choice = TypeVar("_Choice", bound=StrEnum)


class ContentPhase(StrEnum):
    """How far writing an update into a slot got."""

    EMPTY = "empty"  # nothing known to be in it
    WRITING = "writing"  # begin_write was called; the content is being replaced
    WRITTEN = "written"  # every byte is in
    VERIFIED = "verified"  # the content was checked against its digest
    BAD = "bad"  # marked bad: must be rewritten before it may boot again


@dataclass(frozen=True)
class SlotRecord:
    """The record of one slot."""

    phase: ContentPhase = ContentPhase.EMPTY
    version: str | None = None
    size: int | None = None  # bytes of the written image (the partition may be larger)
    sha256: str | None = None  # hex digest of those bytes
    write_started_at: datetime | None = None
    written_at: datetime | None = None
    verified_at: datetime | None = None
    made_bootable_at: datetime | None = None
    marked_good_at: datetime | None = None
    marked_bad_at: datetime | None = None


_TIMESTAMPS = (
    "write_started_at",
    "written_at",
    "verified_at",
    "made_bootable_at",
    "marked_good_at",
    "marked_bad_at",
)


@dataclass(frozen=True)
class SlotStatus:
    """The whole file: both records, the disk they belong to, the last simulated boot."""

    disk_guid: UUID | None = None  # set on first save; guards against a wrong status file
    # The slot the last boot_next() picked: on an image file that is "the booted slot".
    booted_slot: Slot | None = None
    a: SlotRecord = field(default_factory=SlotRecord)
    b: SlotRecord = field(default_factory=SlotRecord)

    def record(self, slot: Slot) -> SlotRecord:
        return self.a if slot is Slot.A else self.b

    def with_record(self, slot: Slot, record: SlotRecord) -> SlotStatus:
        return replace(self, a=record) if slot is Slot.A else replace(self, b=record)


def default_status_path(image: Path) -> Path:
    """``IMAGE.slots.json`` next to a disk image file."""
    return image.with_name(image.name + SIDECAR_SUFFIX)


# ------------------------------------------------------------------------------ encoding


def _encode_record(record: SlotRecord) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "phase": record.phase.value,
        "version": record.version,
        "size": record.size,
        "sha256": record.sha256,
    }
    for name in _TIMESTAMPS:
        stamp: datetime | None = getattr(record, name)
        encoded[name] = stamp.isoformat() if stamp else None
    return encoded


def encode_slot_status(status: SlotStatus) -> str:
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "disk_guid": str(status.disk_guid) if status.disk_guid else None,
        "booted_slot": status.booted_slot.value if status.booted_slot else None,
        "slots": {slot.value: _encode_record(status.record(slot)) for slot in Slot},
    }
    return json.dumps(document, indent=2) + "\n"


# ------------------------------------------------------------------------------ decoding


class _Reader:
    """Typed access to one JSON object, with errors that name the file and the field."""

    def __init__(self, path: Path, where: str, value: object) -> None:
        if not isinstance(value, dict):
            raise SlotStatusError(f"{path}: {where or 'the document'} is not a JSON object")
        self.path, self.where, self.value = path, where, value

    def fail(self, key: str, expected: str) -> SlotStatusError:
        name = f"{self.where}.{key}" if self.where else key
        return SlotStatusError(f"{self.path}: {name} should be {expected}")

    def text(self, key: str) -> str | None:
        value = self.value.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "a string or null")
        return value

    def count(self, key: str) -> int | None:
        value = self.value.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(key, "an integer or null")
        return value

    def timestamp(self, key: str) -> datetime | None:
        text = self.text(key)
        if text is None:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.fail(key, "an ISO 8601 timestamp") from exc

    def choice(self, key: str, enum: type[_Choice]) -> _Choice | None:
        text = self.text(key)
        if text is None:
            return None
        try:
            return enum(text)
        except ValueError as exc:
            allowed = ", ".join(member.value for member in enum)
            raise self.fail(key, f"one of {allowed}") from exc

    def child(self, key: str) -> _Reader:
        name = f"{self.where}.{key}" if self.where else key
        return _Reader(self.path, name, self.value.get(key, {}))


def _decode_record(reader: _Reader) -> SlotRecord:
    stamps = {name: reader.timestamp(name) for name in _TIMESTAMPS}
    return SlotRecord(
        phase=reader.choice("phase", ContentPhase) or ContentPhase.EMPTY,
        version=reader.text("version"),
        size=reader.count("size"),
        sha256=reader.text("sha256"),
        **stamps,
    )


def decode_slot_status(text: str, path: Path) -> SlotStatus:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SlotStatusError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    top = _Reader(path, "", document)
    if top.value.get("format") != FORMAT or top.value.get("version") != FORMAT_VERSION:
        raise SlotStatusError(
            f"{path} is not a {FORMAT} version {FORMAT_VERSION} file "
            f"(format {top.value.get('format')!r}, version {top.value.get('version')!r})"
        )
    guid = top.text("disk_guid")
    try:
        disk_guid = UUID(guid) if guid else None
    except ValueError as exc:
        raise top.fail("disk_guid", "a GUID") from exc
    slots = top.child("slots")
    return SlotStatus(
        disk_guid=disk_guid,
        booted_slot=top.choice("booted_slot", Slot),
        a=_decode_record(slots.child(Slot.A.value)),
        b=_decode_record(slots.child(Slot.B.value)),
    )


# ------------------------------------------------------------------------------ file I/O


def load_slot_status(path: Path) -> SlotStatus:
    """The status in ``path``; a missing file is the status of a fresh disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SlotStatus()
    except (OSError, UnicodeDecodeError) as exc:
        raise SlotStatusError(f"{path}: cannot read the slot-status file ({exc})") from exc
    return decode_slot_status(text, path)


def save_slot_status(path: Path, status: SlotStatus) -> None:
    """Replace ``path`` atomically with ``status``."""
    try:
        write_file_atomically(path, encode_slot_status(status), mode=0o644)
    except OSError as exc:
        raise SlotStatusError(f"{path}: cannot write the slot-status file ({exc})") from exc
