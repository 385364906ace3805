"""Reading a release tree over HTTP(S) or from a local folder, under the node's rules.

HTTP reads go through wellcar.netfetch: identity encoding only, a byte cap counted as
the bytes arrive, a wall-clock deadline, redirects by hand (https never to http). A
local folder is read the same way (capped), so a tree copied onto a USB stick or the
live medium installs offline. :class:`LocalFetcher` lets python-tuf read a local tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface

from wellcar.install.errors import SourceError
from wellcar.netfetch import (
    IDENTITY,
    Deadline,
    FetchError,
    RedirectRefused,
    raw_chunks,
    send_following_redirects,
)

READ_CHUNK = 1 << 20
SMALL_DEADLINE_SECONDS = 120.0
# An image download may take long on a slow link, but not forever: 10 minutes plus
# 1 MiB/s (Flatcar's installer has no limit at all; a stalled mirror must not hang a
# PXE-booted machine for ever).
IMAGE_BASE_SECONDS, IMAGE_BYTES_PER_SECOND = 600.0, 1 << 20


class NotInTree(SourceError):
    """The file is not there (HTTP 404 / no such file)."""


def _is_url(base: str) -> bool:
    return urlsplit(base).scheme in ("http", "https")


class TreeLocation:
    """A release tree's root: ``https://host/path/`` or a local directory."""

    def __init__(self, base: str, client: httpx.Client | None = None) -> None:
        self.is_url = _is_url(base)
        if not self.is_url:
            scheme = urlsplit(base).scheme
            if scheme and scheme != "file":
                raise SourceError(f"-b {base}: give an http(s) URL or a local folder")
            path = Path(unquote(urlsplit(base).path) if scheme == "file" else base)
            if not path.is_dir():
                raise SourceError(f"-b {base}: no such folder (give the release tree's root)")
            self.root: Path | None = path.resolve()
            self.base = self.root.as_uri() + "/"
        else:
            self.root = None
            self.base = base.rstrip("/") + "/"
        self._client = client

    def __str__(self) -> str:
        return str(self.root) if self.root is not None else self.base

    def url(self, relative: str) -> str:
        return self.base + quote(relative)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            # No keep-alive: each file gets a fresh connection its deadline can watch.
            self._client = httpx.Client(
                timeout=30.0,
                follow_redirects=False,
                headers={"User-Agent": "wellcar-install", **IDENTITY},
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def read_small(self, relative: str, limit: int) -> bytes:
        """A small file (metadata, DIGESTS), at most ``limit`` bytes."""
        return b"".join(self.stream(relative, limit, SMALL_DEADLINE_SECONDS))

    def stream(self, relative: str, limit: int, seconds: float | None = None) -> Iterator[bytes]:
        """The file's bytes as they arrive, refusing more than ``limit``. Errors before
        the first byte are raised here (404, no network), later ones while iterating."""
        if self.root is not None:
            return self._local_stream(relative, limit)
        deadline_seconds = seconds or IMAGE_BASE_SECONDS + limit / IMAGE_BYTES_PER_SECOND
        return self._http_stream(relative, limit, deadline_seconds)

    def _local_stream(self, relative: str, limit: int) -> Iterator[bytes]:
        assert self.root is not None
        path = self.root / relative
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotInTree(f"{path}: not in the release tree") from None
        except OSError as exc:
            raise SourceError(f"{path}: {exc.strerror}") from None
        return _capped_file(handle, path, limit)

    def _http_stream(self, relative: str, limit: int, seconds: float) -> Iterator[bytes]:
        url = self.url(relative)
        deadline = Deadline(seconds, url)
        deadline.start()
        try:
            response = send_following_redirects(
                self.client, "GET", url, headers=dict(IDENTITY), timeout=30.0, deadline=deadline
            )
        except (httpx.HTTPError, RedirectRefused, FetchError) as exc:
            deadline.cancel()
            raise SourceError(f"cannot fetch {url}: {exc or type(exc).__name__}") from None
        if response.status_code == 404:
            response.close()
            deadline.cancel()
            raise NotInTree(f"{url}: HTTP 404 (not in the release tree)")
        if response.status_code != 200:
            response.close()
            deadline.cancel()
            raise SourceError(f"{url}: HTTP {response.status_code}")
        return _response_chunks(url, response, deadline, limit)


def _capped_file(handle: BinaryIO, path: Path, limit: int) -> Iterator[bytes]:
    total = 0
    try:
        while chunk := handle.read(READ_CHUNK):
            total += len(chunk)
            if total > limit:
                raise SourceError(f"{path} is larger than {limit} bytes; it is not the release's")
            yield chunk
    except OSError as exc:
        raise SourceError(f"reading {path} failed: {exc.strerror}") from None
    finally:
        handle.close()


def _response_chunks(
    url: str, response: httpx.Response, deadline: Deadline, limit: int
) -> Iterator[bytes]:
    try:
        yield from raw_chunks(response, deadline, limit)
    except FetchError as exc:
        raise SourceError(f"{url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: the download broke off ({exc or type(exc).__name__})") from None
    finally:
        deadline.cancel()
        response.close()


class LocalFetcher(FetcherInterface):
    """python-tuf's downloads from a local tree (``file://`` URLs of TreeLocation)."""

    def __init__(self, location: TreeLocation) -> None:
        self.location = location

    def _fetch(self, url: str) -> Iterator[bytes]:
        assert self.location.root is not None
        path = Path(unquote(urlsplit(url).path))
        if not path.is_relative_to(self.location.root):
            raise tuf_errors.DownloadError(f"{url} is outside the release tree")
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise tuf_errors.DownloadHTTPError(f"{path}: no such file", 404) from None
        except OSError as exc:
            raise tuf_errors.DownloadError(f"{path}: {exc.strerror}") from None
        return _chunks(handle)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk
