"""Fetching an offered payload: resumable, bounded, verified.

``download_payload`` streams into ``<dest_dir>/<sha256-hex>.partial`` and
renames to ``<dest_dir>/<sha256-hex>.payload`` only after the size and the Omaha
``sha256`` matched, so a file under the final name is always a verified payload.
Naming by the expected hash makes resuming safe: a partial file can only ever
hold the beginning of the one payload whose hash it is named after.

How failures are handled, after update_engine's ``payload_state``:

* transient trouble (connection errors, timeouts, HTTP 408/425/429/5xx, a body
  that ends early) counts against the current URL and is retried there,
  resuming with an HTTP Range request, up to ``max_failures_per_url`` times;
* a URL that is plainly wrong (another 4xx, a size that does not match, a
  refused redirect) moves on to the next URL at once;
* a hash mismatch discards the partial file and moves on (unless the bad
  bytes may have come from an earlier attempt: then this URL gets one fresh try);
* local write errors (ENOSPC) stop everything: no URL can fix a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from wellcar.atomic_file import fsync_directory
from wellcar.logline import log_fields
from wellcar.netfetch import (
    IDENTITY,
    MAX_REDIRECTS,
    Deadline,
    FetchDeadlineError,
    FetchEncodedError,
    RedirectRefused,
    refuse_encoded,
    send_following_redirects,
)
from wellcar.omaha import ErrorCode

from .errors import AgentError, DownloadError, PayloadHashMismatch, PayloadSizeMismatch
from .omaha_client import UPDATER_VERSION, UpdateOffer

__all__ = [
    "ProgressCallback",
    "download_payload",
    "final_path",
    "partial_path",
    "remove_stale",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (bytes on disk, total size)
PARTIAL_SUFFIX = ".partial"
FINAL_SUFFIX = ".payload"
# Statuses that mean "try again later" rather than "not here".
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
# The whole download (every URL and retry) ends by this deadline: enough for the payload
# at a slow but working link, and never weeks for a server that drips bytes.
DEADLINE_BASE_SECONDS = 600.0
DEADLINE_MIN_BYTES_PER_SECOND = 32 * 1024


def download_deadline(size: int) -> float:
    """Seconds a download of ``size`` bytes may take in all (about 2.7 h for 300 MB)."""
    return DEADLINE_BASE_SECONDS + size / DEADLINE_MIN_BYTES_PER_SECOND


def partial_path(offer: UpdateOffer, dest_dir: Path) -> Path:
    return dest_dir / (offer.sha256_hex + PARTIAL_SUFFIX)


def final_path(offer: UpdateOffer, dest_dir: Path) -> Path:
    return dest_dir / (offer.sha256_hex + FINAL_SUFFIX)


def remove_stale(dest_dir: Path, keep: UpdateOffer | None = None) -> list[Path]:
    """Delete payloads and partial downloads other than ``keep``'s; the removed paths."""
    kept = set()
    if keep is not None:
        kept = {partial_path(keep, dest_dir).name, final_path(keep, dest_dir).name}
    removed: list[Path] = []
    if not dest_dir.is_dir():
        return removed
    for path in dest_dir.iterdir():
        if path.name in kept or not path.name.endswith((PARTIAL_SUFFIX, FINAL_SUFFIX)):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


class _Transient(Exception):
    """Retry the same URL (resuming)."""


class _UrlBroken(Exception):
    """Give up on this URL; ``error`` says why (it is raised if every URL fails so)."""

    def __init__(self, error: AgentError) -> None:
        super().__init__(error.message)
        self.error = error


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _PartialFile:
    """The partial download: an append-only file plus the running SHA-256 of
    its content, so resuming never re-reads what is already on disk twice."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.hasher = hashlib.sha256()
        self.size = 0
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DownloadError(
                f"cannot create {path}: {exc.strerror}", error_code=ErrorCode.DOWNLOAD_WRITE_ERROR
            ) from None
        existing = os.fstat(self.fd).st_size
        if existing > limit:
            self.reset()  # cannot be a prefix of the payload
        else:
            while chunk := os.read(self.fd, 1 << 20):
                self.hasher.update(chunk)
                self.size += len(chunk)

    def reset(self) -> None:
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.hasher = hashlib.sha256()
        self.size = 0

    def append(self, data: bytes) -> None:
        if self.size + len(data) > self.limit:  # callers check; this is the last line
            raise AssertionError("refusing to write past the payload size")
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            # Keep what is on disk: once space is freed the download resumes.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
                os.lseek(self.fd, self.size, os.SEEK_SET)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(
                    f"no space left on the device of {self.path.parent} after "
                    f"{self.size} of {self.limit} bytes; free some space and the download "
                    "resumes",
                    error_code=ErrorCode.DOWNLOAD_WRITE_ERROR,
                ) from None
            raise DownloadError(
                f"cannot write {self.path}: {exc.strerror}",
                error_code=ErrorCode.DOWNLOAD_WRITE_ERROR,
            ) from None
        self.hasher.update(data)
        self.size += len(data)

    def close(self) -> None:
        os.close(self.fd)


def _file_matches(path: Path, offer: UpdateOffer) -> bool:
    try:
        if path.stat().st_size != offer.size:
            return False
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return False
    return digest == offer.sha256_hex


def _size_mismatch(url: str, message: str) -> _UrlBroken:
    return _UrlBroken(PayloadSizeMismatch(f"{url}: {message}"))


class _Downloader:
    def __init__(
        self,
        offer: UpdateOffer,
        part: _PartialFile,
        http: httpx.Client,
        on_progress: ProgressCallback | None,
        auth: tuple[str, str] | None,
        timeout: float,
        max_redirects: int,
        deadline: Deadline,
    ) -> None:
        self.deadline = deadline
        self.offer = offer
        self.part = part
        self.http = http
        self.on_progress = on_progress
        self.auth = auth
        self.timeout = timeout
        self.max_redirects = max_redirects

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.part.size, self.offer.size)

    def attempt(self, url: str) -> None:
        """Bring the partial file to the full size from ``url`` or raise
        _Transient / _UrlBroken (DownloadError for local failures)."""
        part, size = self.part, self.offer.size
        start = part.size
        headers = {**IDENTITY, "User-Agent": UPDATER_VERSION}
        if start > 0:
            headers["Range"] = f"bytes={start}-"
        try:
            response = send_following_redirects(
                self.http,
                "GET",
                url,
                headers=headers,
                timeout=self.timeout,
                max_redirects=self.max_redirects,
                auth=self.auth,
                deadline=self.deadline,
            )
        except RedirectRefused as exc:
            raise _UrlBroken(DownloadError(f"{url}: {exc}")) from None
        except httpx.HTTPError as exc:
            raise _Transient(f"{url}: {type(exc).__name__}: {exc}") from None
        with contextlib.closing(response):
            self._check_response(url, response, start)
            try:
                # No chunk_size: httpx would buffer up to it and lose the buffer
                # when the connection breaks, and those bytes are the resume point.
                for chunk in response.iter_raw():
                    self.deadline.check()
                    if part.size + len(chunk) > size:
                        # An endless (or just wrong) body: never hold or write more
                        # than the payload's size; what is on disk is suspect too.
                        part.reset()
                        raise _size_mismatch(url, f"server sent more than {size} bytes")
                    part.append(chunk)
                    self._progress()
            except httpx.HTTPError as exc:
                raise _Transient(f"{url}: broke off after {part.size} bytes: {exc}") from None
        if part.size < size:
            raise _Transient(f"{url}: body ended after {part.size} of {size} bytes")

    def _check_response(self, url: str, response: httpx.Response, start: int) -> None:
        part, size = self.part, self.offer.size
        status = response.status_code
        if status == 416 and start > 0:
            part.reset()  # our partial file does not fit what the server has
            raise _Transient(f"{url}: range {start}- not satisfiable; restarting from 0")
        if status in TRANSIENT_STATUSES:
            raise _Transient(f"{url}: HTTP {status}")
        if status not in (200, 206):
            raise _UrlBroken(DownloadError(f"{url}: HTTP {status}"))
        try:
            refuse_encoded(response)
        except FetchEncodedError as exc:
            raise _UrlBroken(DownloadError(f"{url}: {exc}")) from None
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if m is None or int(m.group(1)) != start or int(m.group(2)) < int(m.group(1)):
                part.reset()  # cannot tell where these bytes go; start over without Range
                raise _Transient(f"{url}: unusable Content-Range for a request from {start}")
            if m.group(3) != "*" and int(m.group(3)) != size:
                raise _size_mismatch(url, f"Content-Range says {m.group(3)} bytes, not {size}")
            expected = int(m.group(2)) - start + 1
        else:
            if start > 0:
                log.info(
                    "the server ignored the range request; downloading from the start",
                    extra=log_fields(url=url),
                )
                part.reset()
                self._progress()
            expected = size
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit():
            remaining = size - part.size
            if int(declared) > remaining:
                raise _size_mismatch(url, f"Content-Length {declared} but {remaining} to go")
            if status == 200 and int(declared) != expected:
                raise _size_mismatch(url, f"Content-Length {declared}, expected {expected}")


def download_payload(
    offer: UpdateOffer,
    dest_dir: Path,
    http: httpx.Client,
    on_progress: ProgressCallback | None = None,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 60.0,
    retry_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    max_redirects: int = MAX_REDIRECTS,
    deadline_seconds: float | None = None,
) -> Path:
    """Download ``offer`` into ``dest_dir`` and return the verified file.

    Raises DownloadError (9 transfer, 14 local write), PayloadSizeMismatch (11)
    or PayloadHashMismatch (10) when no URL yields the promised bytes.
    ``auth`` (``config.download_auth``) is sent only to each URL's own origin.
    Everything ends within ``deadline_seconds`` (default: ``download_deadline(size)``);
    then DownloadError (9), and the partial file stays for the next check to resume.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = final_path(offer, dest_dir)
    if final.exists():
        if _file_matches(final, offer):
            if on_progress is not None:
                on_progress(offer.size, offer.size)
            return final
        log.warning(
            "the payload does not match its hash any more; downloading again",
            extra=log_fields(path=final),
        )
        final.unlink()
    partial = partial_path(offer, dest_dir)
    part = _PartialFile(partial, offer.size)
    try:
        free = shutil.disk_usage(dest_dir).free
        if free < offer.size - part.size:
            raise DownloadError(
                f"not enough space in {dest_dir}: {offer.size - part.size} bytes needed, "
                f"{free} free",
                error_code=ErrorCode.DOWNLOAD_WRITE_ERROR,
            )
        seconds = download_deadline(offer.size) if deadline_seconds is None else deadline_seconds
        deadline = Deadline(seconds, f"download of payload {offer.version}")
        downloader = _Downloader(
            offer, part, http, on_progress, auth, timeout, max_redirects, deadline
        )
        downloader._progress()
        try:
            with deadline:
                _fetch_from_urls(downloader, retry_delay, sleep)
        except FetchDeadlineError as exc:
            raise DownloadError(
                f"{exc} ({part.size} of {offer.size} bytes); the next check resumes it"
            ) from None
        os.fsync(part.fd)
    finally:
        part.close()
    os.replace(partial, final)
    fsync_directory(dest_dir)
    return final


def _fetch_from_urls(d: _Downloader, retry_delay: float, sleep: Callable[[float], None]) -> None:
    offer, part = d.offer, d.part
    expected = bytes.fromhex(offer.sha256_hex)
    problems: list[str] = []
    # A wrong payload says more than a dead mirror: if any URL served wrong
    # bytes, that is what gets reported (10/11) when no URL works.
    verification_error: AgentError | None = None
    max_failures = max(1, offer.max_failures_per_url)
    for url in offer.urls:
        failures = 0
        while failures < max_failures:
            d.deadline.check()
            resumed_from = part.size
            try:
                d.attempt(url)
            except _Transient as exc:
                failures += 1
                problems.append(str(exc))
                log.warning(
                    "download failed",
                    extra=log_fields(error=exc, failures=failures, max_failures=max_failures),
                )
                if failures < max_failures and retry_delay > 0:
                    sleep(retry_delay)
                continue
            except _UrlBroken as exc:
                problems.append(str(exc))
                if isinstance(exc.error, PayloadSizeMismatch):
                    verification_error = exc.error
                log.warning("download failed; trying the next URL", extra=log_fields(error=exc))
                break
            if part.hasher.digest() == expected:
                return
            part.reset()
            message = f"{url}: SHA-256 of the payload does not match the offer"
            problems.append(message)
            verification_error = PayloadHashMismatch(message)
            log.warning("download failed", extra=log_fields(error=message))
            if resumed_from == 0:
                break
            failures += 1  # the bad bytes may be an old partial's: one fresh try here
    if verification_error is not None:
        raise verification_error
    summary = "; ".join(problems[-2 * len(offer.urls) :]) or "no URLs"
    raise DownloadError(f"payload {offer.version} could not be downloaded: {summary}")
