"""Reading a payload front to back, once, from any byte stream.

``PayloadReader`` is the only thing that touches the incoming bytes: it counts them,
keeps the running SHA-256 of the signed region, and turns a short read into a
:class:`PayloadTruncatedError` that says how far the payload got. Streams come from an
*opener* (a function from byte offset to stream) so a resumed apply can ask for the
rest of a file or send an HTTP range request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wellcar.payload.errors import PayloadFormatError, PayloadTruncatedError
from wellcar.payload.layout import (
    DEFAULT_LIMITS,
    HEADER_SIZE,
    Blob,
    Limits,
    PayloadLayout,
    decode_header,
    plan_layout,
)
from wellcar.payload.manifest import Manifest, Signatures, decode_manifest, decode_signatures


class PayloadStream(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


Opener = Callable[[int], PayloadStream]


def file_opener(path: Path) -> Opener:
    def open_at(offset: int) -> PayloadStream:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise PayloadFormatError(f"cannot open payload {path}: {exc.strerror}") from None
        stream.seek(offset)
        return stream

    return open_at


class PayloadReader:
    def __init__(self, stream: PayloadStream, start: int = 0) -> None:
        self.stream = stream
        self.offset = start
        self.signed_hasher = hashlib.sha256()
        self.hashing = start == 0
        self.blob_area_start = 0  # set once the metadata is known; blob offsets count from it

    def read_exact(self, size: int, what: str) -> bytes:
        parts: list[bytes] = []
        remaining = size
        while remaining:
            chunk = self.stream.read(min(remaining, 8 << 20))
            if not chunk:
                got = size - remaining
                raise PayloadTruncatedError(
                    f"payload ends at byte {self.offset + got} inside {what} "
                    f"({got} of {size} bytes); the download is incomplete"
                )
            parts.append(chunk)
            remaining -= len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.offset += size
        if self.hashing:
            self.signed_hasher.update(data)
        return data

    def expect_end(self) -> None:
        if self.stream.read(1):
            raise PayloadFormatError(
                f"unexpected data after byte {self.offset}, where the payload should end"
            )


@dataclass(frozen=True)
class PayloadMetadata:
    """Everything before the data blobs, decoded and checked."""

    header_and_manifest: bytes
    manifest: Manifest
    layout: PayloadLayout
    blobs: list[Blob]
    leading_signatures: Signatures | None  # present when the signature blob comes first
    leading_signature_blob: bytes

    @property
    def payload_id(self) -> str:
        """Names this payload's content: its metadata plus leading signatures."""
        return hashlib.sha256(self.header_and_manifest + self.leading_signature_blob).hexdigest()


def read_metadata(reader: PayloadReader, limits: Limits = DEFAULT_LIMITS) -> PayloadMetadata:
    header = reader.read_exact(HEADER_SIZE, "the CrAU header")
    manifest_size = decode_header(header, limits)
    manifest_bytes = reader.read_exact(manifest_size, "the manifest")
    manifest = decode_manifest(manifest_bytes)
    layout, blobs = plan_layout(manifest, manifest_size, limits)
    leading: Signatures | None = None
    leading_blob = b""
    if layout.signatures_first:
        reader.hashing = False  # the signed region ends where the signature blob starts
        leading_blob = reader.read_exact(layout.signatures_size, "the signature blob")
        leading = decode_signatures(leading_blob)
    return PayloadMetadata(
        header_and_manifest=header + manifest_bytes,
        manifest=manifest,
        layout=layout,
        blobs=blobs,
        leading_signatures=leading,
        leading_signature_blob=leading_blob,
    )
