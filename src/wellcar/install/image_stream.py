"""The published image as a stream of disk bytes: hashed as it arrives, decompressed as
it flows (stdlib + the Debian ``zstd`` and ``gzip`` tools, which the node ships).

The compressed bytes feed the hashes the release keys signed (TUF target or DIGESTS
entry) in a thread that pipes them into ``zstd -dc`` / ``gzip -dc``; the caller reads
the disk bytes in bounded pieces from the tool's output, so a small file that expands
without end is cut off by the reader's own limit (the image's size from its GPT), never
held in memory. A raw image passes through. The verdict on the source (length and
hashes) is only known once every byte has passed: :meth:`ImageStream.finish`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO

from wellcar.install.errors import ImageFormatError, SourceError, VerificationError
from wellcar.release.image_artifacts import Compression

F_SETPIPE_SZ = 1031  # Linux fcntl
PIPE_BYTES = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_TOOLS = {Compression.ZSTD: ["zstd", "-dc", "-q"], Compression.GZIP: ["gzip", "-dc"]}


def detect_compression(first_bytes: bytes) -> Compression:
    """By magic number: zstd, gzip, else raw (the GPT check then decides)."""
    if first_bytes.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    if first_bytes.startswith(GZIP_MAGIC):
        return Compression.GZIP
    return Compression.NONE


@dataclass(frozen=True)
class ExpectedImage:
    """What the signed metadata says the published file is."""

    name: str  # for messages: the target name or file
    length: int | None  # None: unknown (an unverified local file)
    hashes: Mapping[str, str]  # algorithm -> hex digest (sha256, sha512)
    verified_by: str  # "TUF targets", "signed DIGESTS", "nothing (unverified)"


@dataclass
class _SourceState:
    length: int = 0
    exhausted: bool = False  # the source said it had no more
    error: BaseException | None = None
    hashers: dict[str, hashlib._Hash] = field(default_factory=dict)


class ImageStream:
    """Read the disk bytes of a published image with :meth:`read`; then :meth:`finish`
    says whether the source was the signed file (raises otherwise)."""

    def __init__(self, chunks: Iterator[bytes], expected: ExpectedImage) -> None:
        self.expected = expected
        self._chunks = chunks
        self._state = _SourceState(hashers={a: hashlib.new(a) for a in expected.hashes})
        first = self._next_chunk()
        self.compression = detect_compression(first)
        self._pending = first
        self._process: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None
        self._output: IO[bytes] | None = None
        if self.compression is not Compression.NONE:
            self._start_tool()

    # ------------------------------------------------------------------ source side

    def _next_chunk(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._state.exhausted = True
            return b""
        state = self._state
        state.length += len(chunk)
        if self.expected.length is not None and state.length > self.expected.length:
            raise VerificationError(
                f"{self.expected.name} is longer than the signed {self.expected.length} bytes "
                f"({self.expected.verified_by}); it is not the released image"
            )
        for hasher in state.hashers.values():
            hasher.update(chunk)
        return chunk

    def _start_tool(self) -> None:
        argv = _TOOLS[self.compression]
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise ImageFormatError(
                f"{self.expected.name} is {self.compression}-compressed and the {argv[0]} tool "
                f"is missing (apt-get install {argv[0]})"
            ) from None
        self._output = self._process.stdout
        assert self._output is not None
        with contextlib.suppress(OSError):  # fewer, larger reads of the decoded image
            fcntl.fcntl(self._output.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        self._feeder = threading.Thread(target=self._feed, name="image-feeder", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        sink = self._process.stdin
        try:
            chunk = self._pending
            self._pending = b""
            while chunk:
                sink.write(chunk)
                chunk = self._next_chunk()
        except BrokenPipeError:
            pass  # the tool stopped (bad data, or the reader gave up): reported there
        except BaseException as exc:  # network errors, length: re-raised by the reader
            self._state.error = exc
        finally:
            with contextlib.suppress(BrokenPipeError):
                sink.close()

    # -------------------------------------------------------------------- disk side

    def read(self, size: int) -> bytes:
        """Up to ``size`` disk bytes; b"" at the end of the image."""
        if self._output is None:  # raw: the source's chunks, cut to size
            while len(self._pending) < size:
                chunk = self._next_chunk()
                if not chunk:
                    break
                self._pending += chunk
            piece, self._pending = self._pending[:size], self._pending[size:]
            return piece
        piece = self._output.read(size)
        if not piece:
            self._raise_source_error()
        return piece

    def _raise_source_error(self) -> None:
        if self._feeder is not None:
            self._feeder.join()
        if self._state.error is not None:
            error = self._state.error
            if isinstance(error, SourceError | VerificationError):
                raise error
            raise SourceError(f"reading {self.expected.name} failed: {error}") from error

    def finish(self) -> int:
        """After the last :meth:`read`: the whole source arrived, had the signed length and
        hashes, and the tool decoded it cleanly. Returns the source's length."""
        if self._output is not None:
            rest = self._output.read(1)
            if rest:
                raise ImageFormatError(
                    f"{self.expected.name} holds more than the disk its partition table "
                    "describes; it is not a released image"
                )
        else:
            while self._next_chunk():
                raise ImageFormatError(
                    f"{self.expected.name} holds more than the disk its partition table "
                    "describes; it is not a released image"
                )
        self._raise_source_error()
        self._check_source()
        if self._process is not None:
            code = self._process.wait()
            if code != 0:
                assert self._process.stderr is not None
                said = self._process.stderr.read().decode(errors="replace").strip()
                raise ImageFormatError(
                    f"{self.expected.name} is not a valid {self.compression} stream "
                    f"({said[-200:] or f'exit status {code}'})"
                )
        return self._state.length

    def _check_source(self) -> None:
        state, expected = self._state, self.expected
        if expected.length is not None and state.length != expected.length:
            raise SourceError(
                f"{expected.name} ended after {state.length} of {expected.length} bytes "
                "(truncated download or file): nothing usable was installed; try again"
            )
        for algorithm, hasher in state.hashers.items():
            if hasher.hexdigest() != expected.hashes[algorithm].lower():
                raise VerificationError(
                    f"{expected.name} does not match its {algorithm} in the {expected.verified_by}"
                    ": it is corrupt or tampered with; the target was left without a "
                    "partition table"
                )

    def verdict(self) -> None:
        """After a failure on the disk side: the source's own problem, if it has one, is
        the better explanation (a truncated or tampered file breaks the decoder too)."""
        self._stop_tool()
        self._raise_source_error()
        if self.expected.hashes and not self._state.exhausted:
            # Read the rest (capped at the signed length): then the hashes can tell a
            # tampered or corrupt file from a decoder problem.
            while self._next_chunk():
                pass
        if self._state.exhausted:  # every byte came: its length and hashes can speak
            self._check_source()

    def _stop_tool(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        if self._process is not None:
            self._process.wait()
            for pipe in (self._process.stdout, self._process.stderr):
                if pipe is not None:
                    pipe.close()
        if self._feeder is not None:
            self._feeder.join(timeout=30)

    def close(self) -> None:
        self._stop_tool()
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> ImageStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
