"""Update payload benchmark: sizes, generate cost and apply throughput, beside the peers.

Inputs are two real /usr erofs images that differ by one upgraded Debian package
(bench/payload_images.py builds and caches them with mmdebstrap). In one run this prints:

- full payload size (Wellcar, zstd chunks) and the delta size with its ratio to full,
  beside ``zstd --patch-from`` and ``bsdiff`` on the same pair and plain ``zstd -19``;
- generate time and peak memory (each generator runs as its own process, measured by
  wait4), for the image pair and for both padded into a 1 GiB slot;
- apply throughput of the full payload and of the delta, against a plain copy of the
  same number of bytes (read, write, fsync) on the same disk, as a ratio.

Goals (issue 3): delta <= 5 % of the full payload, apply >= 0.8 x plain copy, peak
memory < 500 MB for a 1 GiB slot.

    .venv/bin/python bench/payload.py [--no-bsdiff] [--no-peers] [--slot-size 1GiB] [--json]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payload_images import build_usr_image_pair, pad_to_slot
from payload_peers import (
    PeerResult,
    ProcessStats,
    bsdiff_peer,
    plain_copy,
    run_measured,
    warm,
    zstd_full,
    zstd_patch_from,
)
from wellcar.payload.apply import ApplySources, ApplyTargets, apply_payload
from wellcar.payload.reader import file_opener
from wellcar.payload.signing import load_trusted_keys
from wellcar.payload.targets import TargetRegion

WELLCAR = [sys.executable, "-m", "wellcar"]
MIB = 1 << 20


@dataclass(frozen=True)
class Generated:
    name: str
    size: int
    stats: ProcessStats


@dataclass(frozen=True)
class Applied:
    name: str
    bytes_written: int
    seconds: float
    copy_seconds: float
    peak_rss_bytes: int

    @property
    def throughput(self) -> float:
        return self.bytes_written / self.seconds

    @property
    def ratio_to_copy(self) -> float:
        return self.copy_seconds / self.seconds


def generate(name: str, out: Path, new: Path, old: Path | None, key: Path) -> Generated:
    argv = [*WELLCAR, "payload", "generate", "--new", str(new), "-o", str(out), "--key", str(key)]
    if old is not None:
        argv += ["--old", str(old)]
    stats = run_measured(argv)
    return Generated(name, out.stat().st_size, stats)


def apply(
    name: str, payload: Path, target: Path, source: Path | None, pub: Path, reference: Path,
    copy_seconds: float,
) -> Applied:  # fmt: skip
    """Time the apply in this process (best of two, no interpreter start-up in the figure);
    measure its peak memory in a child process running the CLI."""
    trusted = load_trusted_keys([pub])
    sources = ApplySources(TargetRegion(source) if source else None)
    warm(payload, *([source] if source else []))
    best = float("inf")
    for _ in range(2):
        target.unlink(missing_ok=True)
        started = time.perf_counter()
        apply_payload(file_opener(payload), ApplyTargets(TargetRegion(target)), trusted, sources)
        best = min(best, time.perf_counter() - started)
    if not filecmp.cmp(target, reference, shallow=False):
        raise SystemExit(f"{name}: the applied slot differs from the new image")
    target.unlink()
    argv = [*WELLCAR, "payload", "apply", str(payload), "--target", str(target), "--key", str(pub)]
    if source is not None:
        argv += ["--source", str(source)]
    stats = run_measured(argv)
    return Applied(name, reference.stat().st_size, best, copy_seconds, stats.peak_rss_bytes)


def copy_seconds(src: Path, work: Path) -> float:
    """Best of three plain copies of ``src`` (read, write, fsync), source in the page cache."""
    warm(src)
    best = float("inf")
    for _ in range(3):
        result = plain_copy(src, work / "copy.img")
        best = min(best, result.seconds)
        (work / "copy.img").unlink()
    return best


def _mb(n: float) -> str:
    return f"{n / MIB:8.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-bsdiff", action="store_true", help="skip bsdiff (minutes, GBs)")
    parser.add_argument("--no-peers", action="store_true", help="skip every peer")
    parser.add_argument("--slot-size", type=int, default=1 << 30, help="bytes (default 1 GiB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    pair = build_usr_image_pair()
    report: dict[str, object] = {
        "upgrade": asdict(pair.upgrade),
        "old_size": pair.old_size,
        "new_size": pair.new_size,
        "changed_bytes": pair.changed_bytes,
    }
    with tempfile.TemporaryDirectory(prefix="wellcar-bench-", dir=pair.new.parent) as tmp:
        work = Path(tmp)
        key = work / "bench"
        run_measured([*WELLCAR, "keys", "generate", str(key), "--algorithm", "ed25519"])
        private, public = work / "bench.key", work / "bench.pub"

        full = generate("wellcar full", work / "full.payload", pair.new, None, private)
        delta = generate("wellcar delta", work / "delta.payload", pair.new, pair.old, private)

        copy = copy_seconds(pair.new, work)
        applied = [
            apply("full", work / "full.payload", work / "t.img", None, public, pair.new, copy),
            apply("delta", work / "delta.payload", work / "t.img", pair.old, public, pair.new,
                  copy),
        ]  # fmt: skip

        # The same pair in a 1 GiB slot: memory must not grow with the slot.
        slot_old = pad_to_slot(pair.old, args.slot_size, work / "slot-old.img")
        slot_new = pad_to_slot(pair.new, args.slot_size, work / "slot-new.img")
        slot_full = generate("1 GiB slot full", work / "slot-full.payload", slot_new, None, private)
        slot_delta = generate(
            "1 GiB slot delta", work / "slot-delta.payload", slot_new, slot_old, private
        )
        slot_copy = copy_seconds(slot_new, work)
        applied.append(
            apply("1 GiB slot full", work / "slot-full.payload", work / "t.img", None, public,
                  slot_new, slot_copy)
        )  # fmt: skip
        for path in (slot_old, slot_new):
            path.unlink()

        peers: list[PeerResult] = []
        if not args.no_peers:
            peers.append(zstd_full(pair.new, 19, work / "new.zst"))
            peers.append(zstd_patch_from(pair.old, pair.new, 19, work / "patch.zst"))
            if not args.no_bsdiff:
                peers.append(bsdiff_peer(pair.old, pair.new, work / "patch.bsdiff"))

    generated = [full, delta, slot_full, slot_delta]
    report["generated"] = [
        {"name": g.name, "size": g.size, "seconds": g.stats.seconds,
         "peak_rss_bytes": g.stats.peak_rss_bytes} for g in generated
    ]  # fmt: skip
    report["delta_to_full"] = delta.size / full.size
    report["applied"] = [
        {"name": a.name, "bytes": a.bytes_written, "seconds": a.seconds,
         "copy_seconds": a.copy_seconds, "ratio_to_copy": a.ratio_to_copy,
         "peak_rss_bytes": a.peak_rss_bytes} for a in applied
    ]  # fmt: skip
    report["peers"] = [
        {"name": p.peer, "size": p.output_size, "seconds": p.seconds,
         "peak_rss_bytes": p.peak_rss_bytes, "verified": p.verified} for p in peers
    ]  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    up = pair.upgrade
    changed = _mb(pair.changed_bytes)
    print(f"image pair: /usr erofs {_mb(pair.new_size)}, one package upgraded: {up.name} "
          f"{up.old_version} -> {up.new_version} ({changed} of changed files)")  # fmt: skip
    print("\nsize and generate cost (each generator in its own process)")
    print(f"  {'':<22}{'output':>14}{'% of full':>11}{'% of /usr':>11}{'time':>9}{'peak RSS':>13}")
    rows = [(g.name, g.size, g.stats.seconds, g.stats.peak_rss_bytes) for g in generated]
    rows += [(p.peer, p.output_size, p.seconds, p.peak_rss_bytes) for p in peers]
    for name, size, seconds, rss in rows:
        print(f"  {name:<22}{_mb(size):>14}{size / full.size:>10.2%}{size / pair.new_size:>10.2%}"
              f"{seconds:>8.1f}s{_mb(rss):>13}")  # fmt: skip
    print(f"\n  delta / full = {delta.size / full.size:.2%} (goal <= 5 %)")
    for p in peers:
        if "patch" in p.peer or "bsdiff" in p.peer:
            print(f"  wellcar delta / {p.peer} = {delta.size / p.output_size:.2f}x")
    print("\napply throughput against a plain copy of the same bytes (read, write, fsync)")
    for a in applied:
        copy_rate = a.bytes_written / a.copy_seconds / MIB
        print(f"  {a.name:<18}{a.throughput / MIB:8.0f} MiB/s  copy {copy_rate:6.0f} MiB/s"
              f"  ratio {a.ratio_to_copy:.2f} (goal >= 0.8)"
              f"  peak RSS {_mb(a.peak_rss_bytes)}")  # fmt: skip
    print(f"\n  cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
