"""Measure the tools an update payload competes with, on the /usr image pair.

Peers: `zstd --patch-from` (a delta), `bsdiff` (the classic delta, what update_engine's
BSDIFF operations use), plain `zstd` of the new image (what a full payload is compared with)
and a plain copy (the floor for writing an image to a slot). Each peer reports its output
size, wall time and peak RSS of the child process (from os.wait4, so only that child counts),
and applies its output again (`zstd -d`, `bspatch`) to check that the new image comes back
byte for byte.

    .venv/bin/python bench/payload_peers.py                  # all peers, ~7 min
    .venv/bin/python bench/payload_peers.py --no-bsdiff      # skip the slow one
    .venv/bin/python bench/payload_peers.py --json var/bench/payload_peers.json

The image pair comes from payload_images.build_usr_image_pair (built on first use).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from payload_images import UsrImagePair, build_usr_image_pair, pad_to_slot

_CHUNK = 1 << 20
SLOT_SIZE = 1 << 30  # a Flatcar USR-A/USR-B partition is 1 GiB


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """One child process: wall time, CPU time and peak resident set size (from wait4)."""

    argv: tuple[str, ...]
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True, slots=True)
class PeerResult:
    """A peer's output for `new` and what making and applying it cost.

    `create` made the output; `apply` turned it back into the new image (zstd -d, bspatch;
    None if that failed), and `verified` says whether it reproduced `new` exactly.
    """

    peer: str
    output: Path
    output_size: int
    new_size: int
    create: ProcessStats
    apply: ProcessStats | None
    verified: bool

    @property
    def seconds(self) -> float:
        return self.create.seconds

    @property
    def peak_rss_bytes(self) -> int:
        return self.create.peak_rss_bytes

    @property
    def ratio(self) -> float:
        """Output size as a fraction of the new image."""
        return self.output_size / self.new_size


@dataclass(frozen=True, slots=True)
class CopyResult:
    """Throughput of a read/write copy in 1 MiB chunks, fsync included."""

    src: Path
    dst: Path
    size: int
    seconds: float
    bytes_per_second: float


class PeerFailed(RuntimeError):
    pass


def _log(message: str) -> None:
    print(f"[payload_peers] {message}", file=sys.stderr, flush=True)


def run_measured(argv: Sequence[str]) -> ProcessStats:
    """Run argv (stdin/stdout /dev/null), raise PeerFailed on a non-zero exit.

    posix_spawn + wait4 rather than subprocess: wait4 hands back the rusage of exactly this
    child, whereas RUSAGE_CHILDREN's ru_maxrss is the maximum over every child ever reaped,
    which cannot be turned into a per-run figure by taking differences.
    """
    with tempfile.TemporaryFile() as err:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ]
        started = time.perf_counter()
        pid = os.posix_spawnp(argv[0], list(argv), os.environ, file_actions=actions)
        try:
            _, status, usage = os.wait4(pid, 0)
        except BaseException:
            # Ctrl-C during a multi-minute bsdiff: do not leave a multi-GB orphan behind.
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()[-2000:]
            raise PeerFailed(f"{' '.join(argv)} exited with {code}: {message}")
    return ProcessStats(
        argv=tuple(argv),
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
    )


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            chunk = fa.read(_CHUNK)
            if chunk != fb.read(_CHUNK):
                return False
            if not chunk:
                return True


def warm(*paths: Path) -> None:
    """Read files once so that every peer starts with its inputs in the page cache; the
    first peer would otherwise also pay for the disk reads."""
    for path in paths:
        with path.open("rb") as f:
            while f.read(_CHUNK):
                pass


def _window_log(*paths: Path) -> int:
    # zstd only finds matches within its window, so --patch-from needs a window that covers
    # the whole reference (zstd's default for --long, 27 = 128 MiB, is too small for a
    # ~300 MB image). The decoder must be given the same --long, or it refuses windows over
    # 128 MiB to bound its memory.
    largest = max(p.stat().st_size for p in paths)
    return max(27, math.ceil(math.log2(max(largest, 2))))


def _zstd_level_flags(level: int) -> list[str]:
    return [*(["--ultra"] if level > 19 else []), f"-{level}"]


def _default_out(new: Path, suffix: str) -> Path:
    out_dir = new.parent / "peers"
    out_dir.mkdir(exist_ok=True)
    return out_dir / f"{new.stem}.{suffix}"


def _apply_and_verify(
    argv: Sequence[str], decoded: Path, new: Path
) -> tuple[ProcessStats | None, bool]:
    """Run the apply command (which writes `decoded`) and compare the result with `new`."""
    try:
        stats = run_measured(argv)
        return stats, _same_content(decoded, new)
    except PeerFailed as exc:
        _log(f"round trip failed: {exc}")
        return None, False
    finally:
        decoded.unlink(missing_ok=True)


def zstd_patch_from(old: Path, new: Path, level: int = 19, out: Path | None = None) -> PeerResult:
    """`zstd --patch-from=old new` at `level`, with a long-distance window covering `old`.

    -T0 uses every core; --long enables long-distance matching with a window as large as the
    reference, which is what lets zstd match the whole old image.
    """
    out = out or _default_out(new, f"patch-from-{level}.zst")
    wlog = _window_log(old, new)
    create = run_measured(
        [
            "zstd",
            "-q",
            "-f",
            *_zstd_level_flags(level),
            f"--long={wlog}",
            "-T0",
            f"--patch-from={old}",
            str(new),
            "-o",
            str(out),
        ]
    )
    decoded = out.with_name(out.name + ".decoded")
    apply, verified = _apply_and_verify(
        [
            "zstd",
            "-q",
            "-f",
            "-d",
            f"--long={wlog}",
            f"--patch-from={old}",
            str(out),
            "-o",
            str(decoded),
        ],
        decoded,
        new,
    )
    return PeerResult(
        peer=f"zstd --patch-from -{level}",
        output=out,
        output_size=out.stat().st_size,
        new_size=new.stat().st_size,
        create=create,
        apply=apply,
        verified=verified,
    )


def bsdiff_peer(old: Path, new: Path, out: Path | None = None) -> PeerResult:
    """`bsdiff old new patch` and `bspatch old decoded patch` (Debian's bsdiff 4.3, bzip2)."""
    out = out or _default_out(new, "bsdiff")
    create = run_measured(["bsdiff", str(old), str(new), str(out)])
    decoded = out.with_name(out.name + ".decoded")
    apply, verified = _apply_and_verify(["bspatch", str(old), str(decoded), str(out)], decoded, new)
    return PeerResult(
        peer="bsdiff",
        output=out,
        output_size=out.stat().st_size,
        new_size=new.stat().st_size,
        create=create,
        apply=apply,
        verified=verified,
    )


def zstd_full(new: Path, level: int = 19, out: Path | None = None) -> PeerResult:
    """Plain `zstd` of the new image: the full-payload baseline (same --long window)."""
    out = out or _default_out(new, f"full-{level}.zst")
    wlog = _window_log(new)
    create = run_measured(
        [
            "zstd",
            "-q",
            "-f",
            *_zstd_level_flags(level),
            f"--long={wlog}",
            "-T0",
            str(new),
            "-o",
            str(out),
        ]
    )
    decoded = out.with_name(out.name + ".decoded")
    apply, verified = _apply_and_verify(
        ["zstd", "-q", "-f", "-d", f"--long={wlog}", str(out), "-o", str(decoded)], decoded, new
    )
    return PeerResult(
        peer=f"zstd -{level} (full)",
        output=out,
        output_size=out.stat().st_size,
        new_size=new.stat().st_size,
        create=create,
        apply=apply,
        verified=verified,
    )


def plain_copy(src: Path, dst: Path) -> CopyResult:
    """Copy src to dst with read/write in 1 MiB chunks, then fsync; the time includes fsync
    (the write is only done when it is on disk). src is read as it is: call warm() first to
    measure the write side alone."""
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    size = 0
    started = time.perf_counter()
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while n := os.readv(src_fd, [buffer]):
                written = 0
                while written < n:
                    written += os.write(dst_fd, view[written:n])
                size += n
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    seconds = time.perf_counter() - started
    return CopyResult(src=src, dst=dst, size=size, seconds=seconds, bytes_per_second=size / seconds)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def print_table(
    pair: UsrImagePair, results: Sequence[PeerResult], copies: Sequence[CopyResult]
) -> None:
    u = pair.upgrade
    print(
        f"{u.name} {u.old_version} -> {u.new_version}; old {_mib(pair.old_size)}, "
        f"new {_mib(pair.new_size)}; {len(pair.changed_files)} files changed, "
        f"{_mib(pair.changed_bytes)} of them in new"
    )
    header = ("peer", "output", "% new", "create s", "create RSS", "apply s", "apply RSS", "ok")
    rows = [
        (
            r.peer,
            _mib(r.output_size),
            f"{100 * r.ratio:.3f}",
            f"{r.create.seconds:.1f}",
            _mib(r.create.peak_rss_bytes),
            f"{r.apply.seconds:.1f}" if r.apply else "-",
            _mib(r.apply.peak_rss_bytes) if r.apply else "-",
            "yes" if r.verified else "NO",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        print("  ".join(cells))
    for c in copies:
        print(
            f"plain copy {c.src.name} ({_mib(c.size)}): {c.seconds:.2f} s, "
            f"{c.bytes_per_second / 2**20:,.0f} MiB/s (1 MiB read/write + fsync)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--patch-level", type=int, default=19, help="zstd --patch-from level")
    parser.add_argument("--full-levels", default="3,19", help="zstd levels for the full image")
    parser.add_argument("--no-bsdiff", action="store_true", help="skip bsdiff (minutes, GBs)")
    parser.add_argument("--slot-size", type=int, default=SLOT_SIZE, help="bytes; 0 skips it")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    pair = build_usr_image_pair(args.cache_dir)
    warm(pair.old, pair.new)
    results: list[PeerResult] = []
    steps: list[tuple[str, Callable[[], PeerResult]]] = [
        (
            f"zstd --patch-from -{args.patch_level}",
            partial(zstd_patch_from, pair.old, pair.new, args.patch_level),
        ),
    ]
    if not args.no_bsdiff:
        steps.append(("bsdiff (minutes, GBs of RSS)", partial(bsdiff_peer, pair.old, pair.new)))
    for level in (int(x) for x in args.full_levels.split(",") if x):
        steps.append((f"zstd -{level} of the new image", partial(zstd_full, pair.new, level)))
    for label, step in steps:
        _log(f"{label} ...")
        result = step()
        _log(f"{label}: {_mib(result.output_size)} in {result.seconds:.1f} s, ok={result.verified}")
        results.append(result)

    copies: list[CopyResult] = []
    out_dir = pair.new.parent / "peers"
    out_dir.mkdir(exist_ok=True)
    sources = [pair.new]
    slot: Path | None = None
    if args.slot_size:
        _log(f"padding the new image to a {args.slot_size}-byte slot ...")
        slot = pad_to_slot(pair.new, args.slot_size, out_dir / "new.slot")
        warm(slot)
        sources.append(slot)
    for src in sources:
        dst = out_dir / f"{src.name}.copy"
        _log(f"plain copy of {src.name} ...")
        try:
            copies.append(plain_copy(src, dst))
        finally:
            dst.unlink(missing_ok=True)
    if slot is not None:
        slot.unlink()

    print_table(pair, results, copies)
    if args.json:
        data = {
            "pair": {"old": str(pair.old), "new": str(pair.new), "upgrade": asdict(pair.upgrade)},
            "peers": [asdict(r) | {"ratio": r.ratio} for r in results],
            "copies": [asdict(c) for c in copies],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0 if all(r.verified for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
