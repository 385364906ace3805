"""Reading a response body: raw bytes only, counted, under a deadline."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from wellcar.netfetch.deadline import Deadline
from wellcar.netfetch.errors import FetchEncodedError, FetchTooLargeError

IDENTITY = {"Accept-Encoding": "identity"}  # request headers: never a compressed body


def refuse_encoded(response: httpx.Response) -> None:
    """FetchEncodedError when the body is compressed anyway (a decompression bomb hides
    its size; the raw bytes are never decoded here)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchEncodedError(
            f"served compressed (Content-Encoding {encoding[:20]}) although identity was "
            "asked; refusing it"
        )


def _declared_length(response: httpx.Response) -> int | None:
    declared = response.headers.get("content-length", "").strip()
    return int(declared) if declared.isdigit() else None


def raw_chunks(
    response: httpx.Response, deadline: Deadline | None, max_bytes: int | None
) -> Iterator[bytes]:
    """The body as it arrives (no decoding), refusing more than ``max_bytes`` and checking
    ``deadline`` at every read."""
    refuse_encoded(response)
    declared = _declared_length(response)
    if max_bytes is not None and declared is not None and declared > max_bytes:
        raise FetchTooLargeError(f"Content-Length {declared} exceeds {max_bytes} bytes")
    total = 0
    for chunk in response.iter_raw():
        if deadline is not None:
            deadline.check()
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise FetchTooLargeError(f"body exceeds {max_bytes} bytes")
        yield chunk
    if deadline is not None:
        deadline.check()


def read_capped(response: httpx.Response, limit: int, deadline: Deadline | None = None) -> bytes:
    """The whole raw body, refused as soon as it exceeds ``limit`` bytes, so that a hostile
    endless body is never held in memory."""
    return b"".join(raw_chunks(response, deadline, limit))
