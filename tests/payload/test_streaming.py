"""Payloads arrive as streams: short reads, HTTP (with range requests), bounded memory."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import httpx
import pytest

from wellcar.payload.apply import ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import PayloadError, PayloadTruncatedError, PayloadUnavailableError
from wellcar.payload.generate import PayloadInputs, generate_payload
from wellcar.payload.http_source import HttpPayloadStream, http_opener
from wellcar.payload.reader import file_opener
from wellcar.payload.resume import CheckpointFile
from wellcar.payload.targets import TargetRegion

from .conftest import Images, Keys, Payloads
from .helpers import BS, FAST, RecordingOpener, loopback_http, make_old_image, sha256

MIB = 1 << 20


@pytest.mark.parametrize("kind", ["full", "delta", "flatcar", "with_boot"])
def test_apply_from_a_stream_of_short_reads(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads, kind: str
) -> None:
    payload: Path = getattr(payloads, kind)
    trusted = keys.trust(keys.rsa, keys.ed25519)
    opener = RecordingOpener(payload.read_bytes(), max_read=1000)
    target = tmp_path / "usr"
    progress: list[tuple[int, int]] = []
    result = apply_payload(
        opener,
        ApplyTargets(TargetRegion(target), tmp_path / "kernel", tmp_path / "initrd"),
        trusted,
        ApplySources(TargetRegion(images.old)),
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert target.read_bytes() == images.new_bytes
    assert opener.offsets == [0]
    assert opener.streams[0].largest_read <= 1000
    assert opener.streams[0].closed
    assert result.payload_bytes == payload.stat().st_size
    # Progress only moves forward and never claims more than the payload.
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert all(total == result.payload_bytes and d <= total for d, total in progress)


# --- HTTP -----------------------------------------------------------------------------


def test_apply_over_http(tmp_path: Path, images: Images, keys: Keys, payloads: Payloads) -> None:
    with (
        loopback_http({"full.crau": payloads.full.read_bytes()}) as server,
        httpx.Client() as client,
    ):
        target = tmp_path / "usr"
        result = apply_payload(
            http_opener(client, server.url_of("full.crau")),
            ApplyTargets(TargetRegion(target)),
            keys.trust(keys.rsa),
        )
    assert target.read_bytes() == images.new_bytes
    assert result.signed_by == keys.rsa.key_id.hex()
    assert server.requests == [("/full.crau", None)]


def test_http_delta_with_short_chunks_and_range_reads(
    tmp_path: Path, images: Images, keys: Keys, payloads: Payloads
) -> None:
    data = payloads.delta.read_bytes()
    with loopback_http({"d": data}) as server, httpx.Client() as client:
        stream = HttpPayloadStream(client, server.url_of("d"), 0)
        got = bytearray()
        while chunk := stream.read(777):
            assert len(chunk) <= 777
            got += chunk
        stream.close()
        assert got == data
        ranged = HttpPayloadStream(client, server.url_of("d"), 1234)
        assert ranged.read(10) == data[1234:1244]
        ranged.close()
        assert server.requests[-1] == ("/d", "bytes=1234-")
        target = tmp_path / "usr"
        apply_payload(
            http_opener(client, server.url_of("d")),
            ApplyTargets(TargetRegion(target)),
            keys.trust(keys.rsa),
            ApplySources(TargetRegion(images.old)),
        )
    assert target.read_bytes() == images.new_bytes


@pytest.fixture(scope="module")
def http_payload(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> tuple[Path, bytes]:
    """A payload of several MiB (the HTTP stream buffers up to 1 MiB per chunk)."""
    rng = random.Random(31)
    image = b"".join(
        make_old_image(64, seed=i) + rng.randbytes(192 * BS) for i in range(8)
    )  # 8 MiB, three quarters incompressible
    root = tmp_path_factory.mktemp("http")
    (root / "usr.img").write_bytes(image)
    generate_payload(PayloadInputs(root / "usr.img"), root / "p.crau", [keys.rsa], FAST)
    assert (root / "p.crau").stat().st_size > 6 * MIB
    return root / "p.crau", image


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "server-ignores-range"])
def test_http_download_broken_off_then_resumed(
    tmp_path: Path,
    keys: Keys,
    http_payload: tuple[Path, bytes],
    small_checkpoints: int,
    ignore_range: bool,
) -> None:
    payload, image = http_payload
    data = payload.read_bytes()
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = tmp_path / "usr"
    with loopback_http({"p": data}) as server, httpx.Client() as client:
        server.behaviour.ignore_range = ignore_range
        server.behaviour.cut_bodies = [len(data) * 2 // 3]
        opener = http_opener(client, server.url_of("p"))
        with pytest.raises(PayloadTruncatedError):
            apply_payload(
                opener, ApplyTargets(TargetRegion(target)), keys.trust(keys.rsa), None, checkpoint
            )
        saved = checkpoint.load()
        assert saved is not None and saved.next_operation > 0
        result = apply_payload(
            opener, ApplyTargets(TargetRegion(target)), keys.trust(keys.rsa), None, checkpoint
        )
    assert target.read_bytes() == image
    assert result.resumed_from_operation == saved.next_operation
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and ranges[1] is None  # the first try, and the metadata again
    assert ranges[2] is not None and int(ranges[2][len("bytes=") : -1]) > 0
    assert checkpoint.load() is None


def test_http_error_status_is_reported(tmp_path: Path, keys: Keys) -> None:
    with loopback_http({}) as server, httpx.Client() as client:
        target = tmp_path / "usr"
        with pytest.raises(PayloadError, match="HTTP 404"):
            apply_payload(
                http_opener(client, server.url_of("missing.crau")),
                ApplyTargets(TargetRegion(target)),
                keys.trust(keys.rsa),
            )
    assert not target.exists()


def test_http_unreachable_is_worth_retrying(tmp_path: Path, keys: Keys) -> None:
    with loopback_http({}) as server:
        url = server.url_of("p")
    # The server is gone: connecting fails, which is worth retrying later.
    with httpx.Client() as client, pytest.raises(PayloadUnavailableError, match="cannot fetch"):
        apply_payload(http_opener(client, url), ApplyTargets(TargetRegion(tmp_path / "u")), None)


def test_transient_http_status_on_resume_keeps_the_checkpoint(
    tmp_path: Path, keys: Keys, http_payload: tuple[Path, bytes], small_checkpoints: int
) -> None:
    data = http_payload[0].read_bytes()
    checkpoint = CheckpointFile(tmp_path / "progress.json")
    target = ApplyTargets(TargetRegion(tmp_path / "usr"))
    with loopback_http({"p": data}) as server, httpx.Client() as client:
        opener = http_opener(client, server.url_of("p"))
        server.behaviour.cut_bodies = [len(data) * 2 // 3]
        with pytest.raises(PayloadTruncatedError):
            apply_payload(opener, target, keys.trust(keys.rsa), None, checkpoint)
        saved = checkpoint.load()
        assert saved is not None
        # The metadata request succeeds, the range request for the rest gets a 503.

        def flaky(offset: int) -> HttpPayloadStream:
            if offset > 0:
                server.behaviour.statuses = [503]
            return HttpPayloadStream(client, server.url_of("p"), offset)

        with pytest.raises(PayloadError, match="503"):
            apply_payload(flaky, target, keys.trust(keys.rsa), None, checkpoint)
        assert checkpoint.load() == saved


# --- memory ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 MiB of mixed, compressible content built quickly from a 1 MiB pool of blocks."""
    pool = make_old_image(256, seed=21)
    rng = random.Random(22)
    path = tmp_path_factory.mktemp("big") / "usr.img"
    with open(path, "wb") as out:
        for i in range(64):
            rotate = (i * 37 % 256) * BS
            out.write((pool[rotate:] + pool[:rotate])[:-BS] + rng.randbytes(BS))
    assert path.stat().st_size == 64 * MIB
    return path


@pytest.fixture(scope="module")
def big_payload(big_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    payload = tmp_path_factory.mktemp("bigp") / "big.crau"
    generate_payload(PayloadInputs(big_image), payload, [], FAST)
    return payload


@pytest.mark.parametrize("via", ["file", "http"])
def test_apply_memory_is_bounded(
    tmp_path: Path, big_image: Path, big_payload: Path, via: str
) -> None:
    assert big_payload.stat().st_size < 48 * MIB  # a real, compressed payload
    target = tmp_path / "usr"
    with loopback_http({"big": big_payload.read_bytes()}) as server, httpx.Client() as client:
        opener = (
            file_opener(big_payload) if via == "file" else http_opener(client, server.url_of("big"))
        )
        tracemalloc.start()
        try:
            result = apply_payload(opener, ApplyTargets(TargetRegion(target)), None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.new_size == 64 * MIB
    assert peak < 24 * MIB, f"apply held {peak / MIB:.1f} MiB for a 64 MiB /usr"
    assert sha256(target.read_bytes()) == sha256(big_image.read_bytes())


def test_generate_memory_is_bounded(tmp_path: Path, big_image: Path) -> None:
    tracemalloc.start()
    try:
        generate_payload(PayloadInputs(big_image), tmp_path / "p.crau", [], FAST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * MIB, f"generate held {peak / MIB:.1f} MiB for a 64 MiB /usr"
