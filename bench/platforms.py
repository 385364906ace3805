"""Time and size of every platform image made from one build, against the baseline of
copying the build's disk.img (the raw copy every platform image starts from).

    .venv/bin/python bench/platforms.py BUILD_DIR [--platforms aws,gce,...]

BUILD_DIR is a finished ``wellcar build`` output (the system tests' session build
will do). Outputs (BUILD_DIR/platform-*) are removed at the end unless --keep; the
build's SHA256SUMS is left as it was.
Prints, per platform: format, seconds, ratio to the raw copy, output size, and size as
a share of the raw disk's allocated bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from wellcar.image.platform_image import make_platform_image, read_build_info
from wellcar.image.platforms import PLATFORMS, platform_named


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--platforms", default=",".join(p.name for p in PLATFORMS))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    build: Path = args.build
    info = read_build_info(build)
    disk = build / "disk.img"
    copy = build / "bench-copy.raw"
    baseline = 0.0
    for _ in range(2):  # the second copy, with disk.img in the page cache as it is later
        started = time.perf_counter()
        subprocess.run(["cp", "--sparse=always", "--reflink=never", str(disk), str(copy)],
                       check=True)  # fmt: skip
        baseline = time.perf_counter() - started
        copy.unlink()
    data = allocated(disk)
    print(f"build {info.version}: disk.img {disk.stat().st_size / 2**20:.0f} MiB, "
          f"{data / 2**20:.0f} MiB allocated; raw copy {baseline:.1f} s (baseline)")  # fmt: skip
    print(f"{'platform':<13}{'format':<8}{'seconds':>8}{'x copy':>8}{'MiB':>8}{'/ data':>8}")
    for name in args.platforms.split(","):
        made = make_platform_image(build, platform_named(name), info=info)
        size = sum(p.stat().st_blocks * 512 for p in made.files)
        ratio = made.seconds / baseline
        print(f"{name:<13}{made.image.image_format.value:<8}{made.seconds:>8.1f}"
              f"{ratio:>8.1f}{size / 2**20:>8.0f}{size / data:>8.2f}")  # fmt: skip
        sys.stdout.flush()
        if not args.keep:
            for path in made.files:
                path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
