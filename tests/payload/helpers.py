"""Test helpers for update payloads: synthetic images, hand-made payloads, odd streams, HTTP.

Shared by ``tests/payload`` and ``tests/cli/test_payload_commands.py``. Images are
deterministic (seeded) and built from 4 KiB blocks the way a filesystem image is: text-like
blocks (config files, scripts), tables of slowly growing integers (binaries, indexes) and
runs of zeros.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from wellcar.payload.generate import GenerateOptions
from wellcar.payload.layout import encode_header
from wellcar.payload.manifest import Manifest, encode_manifest
from wellcar.payload.reader import PayloadMetadata, PayloadReader, file_opener, read_metadata

BS = 4096

# Small windows keep bsdiff (suffix sorting) and zstd quick; size is not what these test.
FAST = GenerateOptions(
    zstd_level=3, dictionary_bytes=1 << 20, bsdiff_source_bytes=256 << 10, workers=2
)

_LETTERS = "etaoinshrdlucmfwypvbgkjqxz"


def vocabulary(seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_LETTERS, k=rng.randint(2, 10))) for _ in range(3000)]


def text_block(rng: random.Random, words: list[str]) -> bytes:
    out = bytearray()
    while len(out) < BS:
        out += " ".join(rng.choices(words, k=rng.randint(4, 14))).encode() + b"\n"
    return bytes(out[:BS])


def table_block(rng: random.Random) -> bytes:
    """Little-endian u32s growing by small steps: what symbol tables and indexes look like."""
    value = rng.getrandbits(32)
    out = bytearray()
    for _ in range(BS // 4):
        value = (value + rng.randint(1, 64)) & 0xFFFFFFFF
        out += value.to_bytes(4, "little")
    return bytes(out)


def make_old_image(blocks: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = vocabulary(seed)
    parts: list[bytes] = []
    count = 0
    while count < blocks:
        r = rng.random()
        if r < 0.1:
            n = min(rng.randint(4, 32), blocks - count)
            parts.append(bytes(BS * n))
            count += n
        elif r < 0.35:
            parts.append(table_block(rng))
            count += 1
        else:
            parts.append(text_block(rng, words))
            count += 1
    return b"".join(parts)


def make_new_image(old: bytes, seed: int = 2) -> bytes:
    """``old`` after a small upgrade; needs at least 940 blocks.

    * blocks 200..215: every 64th byte starts a u32 moved by 0x1000 (a relocated binary,
      what bsdiff is good at);
    * blocks 700..731: 37 bytes inserted at the start, the rest shifted (an edited file,
      not block aligned, what zstd with the old image as dictionary is good at);
    * blocks 900..915 become zeros;
    * 8 new blocks inserted at block 500, moving everything behind them (block aligned).
    """
    assert len(old) >= 940 * BS
    rng = random.Random(seed)
    words = vocabulary(seed)
    blocks = [old[i : i + BS] for i in range(0, len(old), BS)]
    for b in range(200, 216):
        blk = bytearray(blocks[b])
        for off in range(0, BS, 64):
            value = int.from_bytes(blk[off : off + 4], "little")
            blk[off : off + 4] = ((value + 0x1000) & 0xFFFFFFFF).to_bytes(4, "little")
        blocks[b] = bytes(blk)
    region = b"".join(blocks[700:732])
    region = (b"# patched: " + bytes(rng.choices(b"abcdef", k=26)) + region)[: len(region)]
    for k in range(32):
        blocks[700 + k] = region[k * BS : (k + 1) * BS]
    for b in range(900, 916):
        blocks[b] = bytes(BS)
    blocks[500:500] = [text_block(rng, words) for _ in range(8)]
    return b"".join(blocks)


def make_blob(size: int, seed: int) -> bytes:
    """A kernel- or initrd-like file: mixed content, a size that is not block aligned."""
    rng = random.Random(seed)
    words = vocabulary(seed)
    parts: list[bytes] = []
    total = 0
    while total < size:
        block = rng.randbytes(BS) if rng.random() < 0.3 else text_block(rng, words)
        parts.append(block)
        total += BS
    return b"".join(parts)[:size]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def raw_payload(manifest: Manifest, blobs: bytes = b"", signatures: bytes = b"") -> bytes:
    """Header, manifest, (leading) signature blob and data blobs, exactly as given."""
    encoded = encode_manifest(manifest)
    return encode_header(len(encoded)) + encoded + signatures + blobs


def read_meta(path: Path) -> PayloadMetadata:
    reader = PayloadReader(file_opener(path)(0))
    try:
        return read_metadata(reader)
    finally:
        reader.stream.close()


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


# --- streams ------------------------------------------------------------------------------


class ChunkedStream:
    """Serves ``data[offset:]`` at most ``max_read`` bytes per read.

    After ``stop_after`` bytes it either ends (reads return b"") or, with ``error``, raises.
    """

    def __init__(
        self,
        data: bytes,
        offset: int = 0,
        max_read: int = 1 << 30,
        stop_after: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.data = data
        self.pos = offset
        self.max_read = max_read
        self.limit = len(data) if stop_after is None else min(len(data), offset + stop_after)
        self.error = error
        self.closed = False
        self.largest_read = 0

    def read(self, size: int, /) -> bytes:
        assert not self.closed, "read after close"
        if self.pos >= self.limit and self.error is not None and self.limit < len(self.data):
            raise self.error
        n = min(size, self.max_read, self.limit - self.pos)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk

    def close(self) -> None:
        self.closed = True


@dataclass
class RecordingOpener:
    """An opener over ``data`` that records every offset it is asked for.

    ``cuts`` lists, per call, after how many bytes that stream stops (None: never).
    """

    data: bytes
    max_read: int = 1 << 30
    cuts: list[int | None] = field(default_factory=list)
    error: BaseException | None = None
    offsets: list[int] = field(default_factory=list)
    streams: list[ChunkedStream] = field(default_factory=list)

    def __call__(self, offset: int) -> ChunkedStream:
        cut = self.cuts[len(self.offsets)] if len(self.offsets) < len(self.cuts) else None
        self.offsets.append(offset)
        stream = ChunkedStream(self.data, offset, self.max_read, cut, self.error)
        self.streams.append(stream)
        return stream


# --- a loopback HTTP server with range requests -------------------------------------------


@dataclass
class HttpBehaviour:
    ignore_range: bool = False
    # Per request, in order: cut the body after this many bytes (None: send it whole).
    cut_bodies: list[int | None] = field(default_factory=list)
    # Per request, in order: answer with this status and no body instead.
    statuses: list[int] = field(default_factory=list)


@dataclass
class LoopbackServer:
    url: str
    files: dict[str, bytes]
    behaviour: HttpBehaviour
    requests: list[tuple[str, str | None]]  # (path, Range header)

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            server.requests.append((self.path, range_header))
            behaviour = server.behaviour
            if behaviour.statuses:
                status = behaviour.statuses.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = server.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if range_header and not behaviour.ignore_range:
                assert range_header.startswith("bytes=") and range_header.endswith("-")
                start = int(range_header[len("bytes=") : -1])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = behaviour.cut_bodies.pop(0) if behaviour.cut_bodies else None
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def loopback_http(files: dict[str, bytes]) -> Iterator[LoopbackServer]:
    """Serve ``files`` (name -> bytes) on 127.0.0.1 with Range support, in a thread."""
    served = LoopbackServer("", files, HttpBehaviour(), [])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    httpd.daemon_threads = True
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
