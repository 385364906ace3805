"""Interrupted applies continue from their last checkpoint, and only when that is safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellcar.payload.apply import ApplyResult, ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import (
    PayloadIntegrityError,
    PayloadTruncatedError,
    ResumeStateError,
)
from wellcar.payload.resume import ApplyCheckpoint, CheckpointFile
from wellcar.payload.signing import TrustedKeys
from wellcar.payload.targets import TargetRegion

from .conftest import Images, Keys, Payloads
from .helpers import RecordingOpener, read_meta


def run(
    opener: RecordingOpener,
    target: Path,
    trusted: TrustedKeys | None,
    checkpoint: CheckpointFile,
    source: Path | None = None,
    kernel: Path | None = None,
    initrd: Path | None = None,
) -> ApplyResult:
    return apply_payload(
        opener,
        ApplyTargets(TargetRegion(target), kernel, initrd),
        trusted,
        ApplySources(TargetRegion(source) if source else None),
        checkpoint,
    )


@pytest.mark.parametrize(
    ("kind", "cut"),
    [("full", 0.6), ("full", 0.95), ("delta", 0.7), ("with_boot", 0.5)],
)
def test_interrupted_apply_resumes(
    tmp_path: Path,
    images: Images,
    keys: Keys,
    payloads: Payloads,
    small_checkpoints: int,
    kind: str,
    cut: float,
) -> None:
    payload: Path = getattr(payloads, kind)
    data = payload.read_bytes()
    trusted = keys.trust(keys.rsa, keys.ed25519)
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    kernel, initrd = tmp_path / "kernel", tmp_path / "initrd"
    first = RecordingOpener(data, max_read=4096, cuts=[int(len(data) * cut)])
    with pytest.raises(PayloadTruncatedError, match="incomplete"):
        run(first, target, trusted, checkpoint, images.old, kernel, initrd)
    saved = checkpoint.load()
    assert saved is not None
    assert saved.next_operation > 0
    assert saved.target == str(target)
    assert not kernel.exists() and not initrd.exists()

    second = RecordingOpener(data, max_read=4096)
    result = run(second, target, trusted, checkpoint, images.old, kernel, initrd)
    assert result.resumed_from_operation == saved.next_operation
    assert second.offsets[0] == 0  # metadata (and leading signatures) are read again
    assert len(second.offsets) == 2 and second.offsets[1] > 0
    meta = read_meta(payload)
    assert second.offsets[1] == meta.layout.metadata_size + saved.next_blob_offset
    # Only the rest of the payload was read the second time.
    assert second.streams[1].pos == len(data)
    assert target.read_bytes() == images.new_bytes
    assert checkpoint.load() is None
    if kind == "with_boot":
        assert kernel.read_bytes()[: images.kernel.stat().st_size] == images.kernel.read_bytes()
        assert initrd.read_bytes()[: images.initrd.stat().st_size] == images.initrd.read_bytes()


def test_stream_error_keeps_the_checkpoint(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, small_checkpoints: int
) -> None:
    data = payloads.full.read_bytes()
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    broken = RecordingOpener(
        data, cuts=[len(data) * 3 // 4], error=ConnectionResetError(104, "Connection reset")
    )
    with pytest.raises(OSError, match="reset"):
        run(broken, target, keys.trust(keys.rsa), checkpoint)
    assert checkpoint.load() is not None
    again = RecordingOpener(data)
    result = run(again, target, keys.trust(keys.rsa), checkpoint)
    assert result.resumed_from_operation is not None and result.resumed_from_operation > 0
    assert target.read_bytes() == images.new_bytes


def _interrupt(
    payload: Path, target: Path, checkpoint: CheckpointFile, trusted: TrustedKeys | None
) -> ApplyCheckpoint | None:
    data = payload.read_bytes()
    with pytest.raises(PayloadTruncatedError):
        run(RecordingOpener(data, cuts=[len(data) * 3 // 4]), target, trusted, checkpoint)
    return checkpoint.load()


def test_checkpoint_of_another_payload_is_ignored(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, small_checkpoints: int
) -> None:
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    assert _interrupt(payloads.full, target, checkpoint, keys.trust(keys.rsa)) is not None
    # Same content, but signed differently: another payload id.
    opener = RecordingOpener(payloads.two_keys.read_bytes())
    result = run(opener, target, keys.trust(keys.rsa), checkpoint)
    assert result.resumed_from_operation is None
    assert opener.offsets == [0]
    assert target.read_bytes() == images.new_bytes
    assert checkpoint.load() is None


def test_checkpoint_of_another_target_is_ignored(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, small_checkpoints: int
) -> None:
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    assert _interrupt(payloads.full, tmp_path / "usr-a", checkpoint, None) is not None
    opener = RecordingOpener(payloads.full.read_bytes())
    result = run(opener, tmp_path / "usr-b", None, checkpoint)
    assert result.resumed_from_operation is None
    assert opener.offsets == [0]
    assert (tmp_path / "usr-b").read_bytes() == images.new_bytes


@pytest.mark.parametrize("content", ["", "{", "[]", '{"payload_id": 1}', "\x00\xff"])
def test_torn_or_foreign_checkpoint_file_is_ignored(
    tmp_path: Path, images: Images, payloads: Payloads, content: str
) -> None:
    path = tmp_path / "progress.json"
    path.write_text(content)
    checkpoint = CheckpointFile(path)
    assert checkpoint.load() is None
    opener = RecordingOpener(payloads.full.read_bytes())
    result = run(opener, tmp_path / "usr", None, checkpoint)
    assert result.resumed_from_operation is None
    assert opener.offsets == [0]
    assert (tmp_path / "usr").read_bytes() == images.new_bytes


def test_signatures_last_with_signature_check_restarts(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, small_checkpoints: int
) -> None:
    """The trailing signature covers every byte, so a checked apply must read them all."""
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    # A checked apply of a signatures-last payload does not even save progress...
    assert _interrupt(payloads.flatcar, target, checkpoint, keys.trust(keys.rsa)) is None
    # ...and one saved by an unchecked apply is not used by a checked one.
    saved = _interrupt(payloads.flatcar, target, checkpoint, None)
    assert saved is not None and saved.next_operation > 0
    opener = RecordingOpener(payloads.flatcar.read_bytes())
    result = run(opener, target, keys.trust(keys.rsa), checkpoint)
    assert result.resumed_from_operation is None
    assert opener.offsets == [0]
    assert result.signed_by == keys.rsa.key_id.hex()
    assert target.read_bytes() == images.new_bytes
    assert checkpoint.load() is None


def test_signatures_last_without_signature_check_resumes(
    tmp_path: Path, images: Images, payloads: Payloads, small_checkpoints: int
) -> None:
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    saved = _interrupt(payloads.flatcar, target, checkpoint, None)
    assert saved is not None
    opener = RecordingOpener(payloads.flatcar.read_bytes())
    result = run(opener, target, None, checkpoint)
    assert result.resumed_from_operation == saved.next_operation
    assert opener.offsets[1] > 0
    assert target.read_bytes() == images.new_bytes


def test_checkpoint_with_wrong_blob_offset_is_refused_and_cleared(
    tmp_path: Path, payloads: Payloads, small_checkpoints: int
) -> None:
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    saved = _interrupt(payloads.full, target, checkpoint, None)
    assert saved is not None
    raw = json.loads(checkpoint.path.read_text())
    raw["next_blob_offset"] += 1
    checkpoint.path.write_text(json.dumps(raw))
    with pytest.raises(ResumeStateError, match="resume position"):
        run(RecordingOpener(payloads.full.read_bytes()), target, None, checkpoint)
    assert checkpoint.load() is None


def test_checkpoint_that_lies_fails_final_verification(
    tmp_path: Path, payloads: Payloads, small_checkpoints: int
) -> None:
    """A record claiming work that never reached the disk costs a failed check, not a slot."""
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    saved = _interrupt(payloads.full, target, checkpoint, None)
    assert saved is not None
    with open(target, "r+b") as f:  # the 'done' part of the slot is lost
        f.write(bytes(4096 * 16))
    with pytest.raises(PayloadIntegrityError, match="written /usr does not match"):
        run(RecordingOpener(payloads.full.read_bytes()), target, None, checkpoint)
    assert checkpoint.load() is None


def test_resume_inside_procedures_without_boot_targets(
    tmp_path: Path, images: Images, payloads: Payloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wellcar.payload.apply.CHECKPOINT_BYTES", 512 << 10)
    data = payloads.with_boot.read_bytes()
    meta = read_meta(payloads.with_boot)
    initrd_blob = next(b for b in meta.blobs if b.label.startswith("initrd"))
    cut = meta.layout.metadata_size + initrd_blob.offset + initrd_blob.length // 2
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    with pytest.raises(PayloadTruncatedError):
        run(RecordingOpener(data, cuts=[cut]), target, None, checkpoint)
    saved = checkpoint.load()
    entries = len(meta.manifest.partition_operations)
    assert saved is not None and saved.next_operation > entries  # past the kernel operation
    result = run(RecordingOpener(data), target, None, checkpoint)
    assert result.resumed_from_operation == saved.next_operation
    assert target.read_bytes() == images.new_bytes
