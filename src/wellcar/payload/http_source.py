"""Payload streams over HTTP, with range requests so an interrupted apply can resume."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from wellcar.payload.errors import PayloadError, PayloadTruncatedError, PayloadUnavailableError
from wellcar.payload.reader import Opener, PayloadStream

# Statuses that say "try again later" rather than "this payload is not here".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpPayloadStream:
    """Reads a payload from ``url`` starting at ``offset`` (Range request when > 0)."""

    def __init__(self, client: httpx.Client, url: str, offset: int) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            self.response = client.send(
                client.build_request("GET", url, headers=headers), stream=True
            )
        except httpx.HTTPError as exc:
            raise PayloadUnavailableError(f"cannot fetch payload {url}: {exc}") from None
        status = self.response.status_code
        if status not in (200, 206):
            self.response.close()
            if status in TRANSIENT_STATUSES:
                raise PayloadUnavailableError(f"payload server busy: HTTP {status} for {url}")
            raise PayloadError(f"fetching payload {url} failed: HTTP {status}")
        self._chunks: Iterator[bytes] = self.response.iter_bytes(1 << 20)
        self._buffer = b""
        if offset and status == 200:
            self._skip(offset)  # the server ignored the range; drop what we already have

    def _skip(self, count: int) -> None:
        while count:
            data = self.read(min(count, 1 << 20))
            if not data:
                return
            count -= len(data)

    def read(self, size: int, /) -> bytes:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return b""
            except httpx.HTTPError as exc:
                raise PayloadTruncatedError(f"payload download broke off: {exc}") from None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        self.response.close()


def http_opener(client: httpx.Client, url: str) -> Opener:
    def open_at(offset: int) -> PayloadStream:
        return HttpPayloadStream(client, url, offset)

    return open_at
