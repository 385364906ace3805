"""The slot-status file: format, round trip, atomic replacement, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from wellcar.disk import (
    ContentPhase,
    Slot,
    SlotRecord,
    SlotStatus,
    SlotStatusError,
    default_status_path,
    load_slot_status,
    save_slot_status,
)

WHEN = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
STATUS = SlotStatus(
    disk_guid=UUID("6d81a96a-994e-4ddb-b91f-3315a943d349"),
    booted_slot=Slot.B,
    b=SlotRecord(
        phase=ContentPhase.VERIFIED,
        version="4459.2.1",
        size=123_456,
        sha256="ab" * 32,
        write_started_at=WHEN,
        written_at=WHEN,
        verified_at=WHEN,
    ),
)


def test_default_path_is_a_sidecar() -> None:
    assert default_status_path(Path("/images/disk.img")) == Path("/images/disk.img.slots.json")


def test_missing_file_is_a_fresh_disk(tmp_path: Path) -> None:
    assert load_slot_status(tmp_path / "none.json") == SlotStatus()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    save_slot_status(path, STATUS)
    assert load_slot_status(path) == STATUS


def test_file_format(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    save_slot_status(path, STATUS)
    document = json.loads(path.read_text())
    assert document["format"] == "wellcar-slot-status" and document["version"] == 1
    assert document["disk_guid"] == "6d81a96a-994e-4ddb-b91f-3315a943d349"
    assert document["booted_slot"] == "B"
    assert document["slots"]["A"]["phase"] == "empty"
    assert document["slots"]["B"] == {
        "phase": "verified",
        "version": "4459.2.1",
        "size": 123456,
        "sha256": "ab" * 32,
        "write_started_at": "2026-05-01T12:30:00+00:00",
        "written_at": "2026-05-01T12:30:00+00:00",
        "verified_at": "2026-05-01T12:30:00+00:00",
        "made_bootable_at": None,
        "marked_good_at": None,
        "marked_bad_at": None,
    }


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    save_slot_status(path, SlotStatus())
    inode = path.stat().st_ino
    save_slot_status(path, STATUS)
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]  # no temp left
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SlotStatusError, match="cannot write the slot-status file"):
        save_slot_status(tmp_path / "nowhere" / "status.json", STATUS)


def _document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "format": "wellcar-slot-status",
        "version": 1,
        "disk_guid": None,
        "booted_slot": None,
        "slots": {"A": {"phase": "empty"}, "B": {"phase": "written"}},
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "the document is not a JSON object"),
        (json.dumps(_document(format="rauc")), "is not a wellcar-slot-status version 1 file"),
        (json.dumps(_document(version=2)), "version 2"),
        (json.dumps(_document(disk_guid="nope")), "disk_guid should be a GUID"),
        (json.dumps(_document(booted_slot="C")), "booted_slot should be one of A, B"),
        (json.dumps(_document(slots=[])), "slots is not a JSON object"),
        (json.dumps(_document(slots={"B": {"phase": "done"}})), "slots.B.phase should be one of"),
        (json.dumps(_document(slots={"B": {"size": "12"}})), "slots.B.size should be an integer"),
        (json.dumps(_document(slots={"B": {"size": True}})), "slots.B.size should be an integer"),
        (json.dumps(_document(slots={"A": {"version": 4}})), "slots.A.version should be a string"),
        (
            json.dumps(_document(slots={"A": {"written_at": "yesterday"}})),
            "slots.A.written_at should be an ISO 8601 timestamp",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "status.json"
    path.write_text(content)
    with pytest.raises(SlotStatusError, match=message):
        load_slot_status(path)


def test_missing_records_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(json.dumps(_document(slots={})))
    assert load_slot_status(path) == SlotStatus()
