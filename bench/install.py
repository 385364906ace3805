"""`wellcar install` throughput against `dd` of the same decompressed bytes, in one run.

The image is released into a fresh TUF-signed tree (disk.img.zst, as `release create`
makes it) served by a loopback HTTP server; each run writes a loop device over a new
sparse file one GiB larger than the image. Measured:

- install: `python -m wellcar.install -d LOOP -b URL --trust-root ...` end to end
  (TUF refresh, download, hashing, zstd -dc, write with zero runs as BLKZEROOUT, fsync,
  read-back of everything written, partition tables, sgdisk -e);
- dd: `dd if=disk.img of=LOOP bs=4M conv=fsync` of the raw image (the decompressed
  bytes, already on disk: no download, no decompression, no check);
- zstd|dd: `zstd -dc disk.img.zst | dd of=LOOP bs=4M conv=fsync`, flatcar-install's way
  (decompress into dd, nothing verified, nothing read back).

Throughput is image bytes per second; ratios are install / baseline time (below 1:
install is faster). Needs root (losetup). Usage:

    sudo .venv/bin/python bench/install.py                       # var/demo/builds/n
    sudo .venv/bin/python bench/install.py --image build/disk.img
    sudo .venv/bin/python bench/install.py --synthetic 1024     # no build: 1 GiB image
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.install.conftest import CHANNEL, release_image  # noqa: E402
from tests.system.mirror import serve_mirror  # noqa: E402

from wellcar.disk import DiskLayout, create_disk_image  # noqa: E402
from wellcar.disk.sizes import MiB  # noqa: E402

DEMO_IMAGE = ROOT / "var/demo/builds/n/disk.img"


def synthetic_image(path: Path, size_mib: int) -> Path:
    """A Flatcar-layout image of about ``size_mib`` MiB: random data filling half of
    USR-A (an erofs /usr is dense), zeros elsewhere (USR-B and free space, as built)."""
    usr = max(8, size_mib * 2 // 5) * MiB
    layout = DiskLayout(esp_size=8 * MiB, usr_size=usr, oem_size=8 * MiB, root_size=16 * MiB)
    disk = create_disk_image(path, layout, seed="bench")
    part = disk.partition(3)
    rng = random.Random("bench")
    with path.open("r+b") as image:
        image.seek(part.byte_offset)
        for _ in range(part.byte_size // 2 // MiB):
            image.write(rng.randbytes(MiB))
    oem = disk.partition_labelled("OEM")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "OEM", "-E", f"offset={oem.byte_offset}",
                    str(path), str(oem.byte_size // 1024)], check=True)  # fmt: skip
    return path


@contextmanager
def fresh_loop(work: Path, size: int) -> Iterator[Path]:
    backing = work / "target-backing.img"
    backing.unlink(missing_ok=True)
    with backing.open("wb") as disk:
        disk.truncate(size)
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    try:
        yield Path(device)
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)
        backing.unlink(missing_ok=True)


def timed(argv: list[str] | str, *, shell: bool = False) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, shell=shell, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, help=f"a raw disk.img [default: {DEMO_IMAGE}]")
    parser.add_argument("--synthetic", type=int, metavar="MIB", help="make an image instead")
    parser.add_argument("--runs", type=int, default=1, help="repeat each measurement")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: needs root (losetup)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="wellcar-bench-install-") as tmp:
        work = Path(tmp)
        if args.synthetic:
            image = synthetic_image(work / "disk.img", args.synthetic)
        else:
            image = args.image or DEMO_IMAGE
            if not image.is_file():
                print(f"error: no {image}: pass --image or --synthetic MIB", file=sys.stderr)
                return 1
        print(f"image: {image} ({image.stat().st_size / MiB:.0f} MiB, "
              f"{os.stat(image).st_blocks * 512 / MiB:.0f} MiB allocated)")  # fmt: skip
        started = time.perf_counter()
        release = release_image(work / "release", image)
        packed = release.version_dir / "disk.img.zst"
        print(f"released as {packed.name}: {packed.stat().st_size / MiB:.0f} MiB "
              f"({time.perf_counter() - started:.1f} s with the TUF tree)")  # fmt: skip
        size = image.stat().st_size
        target_size = size + (1 << 30)
        results: dict[str, list[float]] = {"install": [], "dd": [], "zstd|dd": []}
        with serve_mirror(release.tree) as mirror:
            url = f"http://127.0.0.1:{mirror.port}/"
            for _ in range(args.runs):
                with fresh_loop(work, target_size) as loop:
                    results["install"].append(timed([
                        sys.executable, "-m", "wellcar.install", "-d", str(loop), "-b", url,
                        "-C", CHANNEL, "--trust-root", str(release.trust_root),
                    ]))  # fmt: skip
                with fresh_loop(work, target_size) as loop:
                    results["dd"].append(timed(
                        ["dd", f"if={image}", f"of={loop}", "bs=4M", "conv=fsync"]
                    ))  # fmt: skip
                with fresh_loop(work, target_size) as loop:
                    results["zstd|dd"].append(timed(
                        f"zstd -dc {packed} | dd of={loop} bs=4M conv=fsync", shell=True
                    ))  # fmt: skip
        best = {name: min(times) for name, times in results.items()}
        print(f"\n{'':10} {'seconds':>8} {'MiB/s':>8} {'install / this':>15}")
        for name, seconds in best.items():
            ratio = best["install"] / seconds
            print(f"{name:10} {seconds:8.1f} {size / MiB / seconds:8.0f} {ratio:15.2f}")
        print(f"\n(best of {args.runs}; MiB/s of the {size / MiB:.0f} MiB image; "
              f"{shutil.which('zstd')}, loop devices over sparse files)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
