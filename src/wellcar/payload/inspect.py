"""Describing and verifying a payload without applying it.

``describe_payload`` reads only the metadata (and seeks to a trailing signature blob);
``verify_payload`` streams the whole payload once, checking every blob's SHA-256 and the
signatures, so a release pipeline or a mirror can check a payload before serving it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wellcar.disk import UsrVerity
from wellcar.payload.errors import PayloadIntegrityError, PayloadSignatureError
from wellcar.payload.manifest import (
    InstallInfo,
    InstallOperation,
    Signatures,
    SignatureVersion,
    decode_signatures,
)
from wellcar.payload.reader import PayloadReader, file_opener, read_metadata
from wellcar.payload.signing import TrustedKeys


@dataclass(frozen=True)
class SignatureSummary:
    algorithm: str
    key_id: str | None
    length: int


@dataclass(frozen=True)
class PartSummary:
    name: str
    new_size: int
    new_sha256: str
    old_size: int | None
    old_sha256: str | None
    operations: dict[str, int]
    blob_bytes: int


@dataclass(frozen=True)
class PayloadDescription:
    path: str
    size: int
    manifest_size: int
    block_size: int
    kind: str  # "full" or "delta"
    layout: str  # "signatures-first" (Wellcar), "signatures-last" (update_engine), "unsigned"
    signatures: list[SignatureSummary]
    parts: list[PartSummary]
    payload_id: str
    usr_verity: UsrVerity | None = None  # how the node boots the new /usr (dm-verity)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _info(info: InstallInfo | None) -> tuple[int | None, str | None]:
    return (info.size, info.hash.hex()) if info else (None, None)


def _part(
    name: str,
    ops: tuple[InstallOperation, ...],
    new: InstallInfo | None,
    old: InstallInfo | None,
) -> PartSummary:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.type.name] = counts.get(op.type.name, 0) + 1
    new_size, new_hash = _info(new)
    old_size, old_hash = _info(old)
    return PartSummary(
        name=name,
        new_size=new_size or 0,
        new_sha256=new_hash or "",
        old_size=old_size,
        old_sha256=old_hash,
        operations=counts,
        blob_bytes=sum(op.data_length or 0 for op in ops),
    )


def _summaries(signatures: Signatures) -> list[SignatureSummary]:
    out = []
    for sig in signatures.signatures:
        try:
            algorithm = SignatureVersion(sig.version).name.lower()
        except ValueError:
            algorithm = f"unknown-version-{sig.version}"
        out.append(
            SignatureSummary(algorithm, sig.key_id.hex() if sig.key_id else None, len(sig.data))
        )
    return out


def describe_payload(path: Path) -> PayloadDescription:
    opener = file_opener(path)
    reader = PayloadReader(opener(0))
    try:
        meta = read_metadata(reader)
    finally:
        reader.stream.close()
    layout = meta.layout
    signatures = meta.leading_signatures
    if layout.signed and not layout.signatures_first:
        tail = PayloadReader(opener(layout.signed_size), layout.signed_size)
        try:
            signatures = decode_signatures(
                tail.read_exact(layout.signatures_size, "the signature blob")
            )
        finally:
            tail.stream.close()
    manifest = meta.manifest
    parts = [
        _part(
            "usr",
            manifest.partition_operations,
            manifest.new_partition_info,
            manifest.old_partition_info,
        )
    ]
    parts += [
        _part(p.type.name.lower(), p.operations, p.new_info, p.old_info)
        for p in manifest.procedures
    ]
    return PayloadDescription(
        path=str(path),
        size=path.stat().st_size,
        manifest_size=layout.manifest_size,
        block_size=manifest.block_size,
        kind="delta" if manifest.is_delta else "full",
        layout=(
            "unsigned"
            if not layout.signed
            else "signatures-first"
            if layout.signatures_first
            else "signatures-last"
        ),
        signatures=_summaries(signatures) if signatures else [],
        parts=parts,
        payload_id=meta.payload_id,
        usr_verity=manifest.usr_verity,
    )


@dataclass(frozen=True)
class VerifyReport:
    payload_bytes: int
    blobs: int
    signed_by: str | None


def verify_payload(path: Path, trusted: TrustedKeys | None) -> VerifyReport:
    """Check structure, every blob hash and (with ``trusted``) the signatures."""
    reader = PayloadReader(file_opener(path)(0))
    try:
        meta = read_metadata(reader)
        layout = meta.layout
        signed_by: str | None = None
        if trusted is not None and not layout.signed:
            raise PayloadSignatureError("the payload is not signed")
        if trusted is not None and meta.leading_signatures is not None:
            signed_by = trusted.verify(
                reader.signed_hasher.digest(), meta.leading_signatures
            ).key_id.hex()
        for blob in meta.blobs:
            data = reader.read_exact(blob.length, f"the data of {blob.label}")
            if hashlib.sha256(data).digest() != blob.op.data_sha256:
                raise PayloadIntegrityError(
                    f"{blob.label}: data does not match its SHA-256 in the manifest"
                )
        if layout.signed and not layout.signatures_first:
            reader.hashing = False
            digest = reader.signed_hasher.digest()
            trailing = decode_signatures(
                reader.read_exact(layout.signatures_size, "the signature blob")
            )
            if trusted is not None:
                signed_by = trusted.verify(digest, trailing).key_id.hex()
        reader.expect_end()
        return VerifyReport(reader.offset, len(meta.blobs), signed_by)
    finally:
        reader.stream.close()
