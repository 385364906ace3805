"""Package-build benchmark: clean build time per package against a cache-warm build.

For each package of the set (default: all), in one run on this machine:

1. clean: a build with an empty build-output cache (the Debian sources, the .deb cache
   and the build chroots are the shared ones, so this is fetch-check + patch + chroot
   unpack + dpkg-buildpackage without network); with ``--cold-chroot`` the chroot is made
   from scratch too (mmdebstrap buildd + build-dependencies, from the shared .deb cache);
2. warm: the same build again, which the cache answers (source check, patch check, key);

and prints both times and the ratio warm/clean. The scratch cache lives under
/var/tmp/wc-bench-packages and is removed at the end.

    .venv/bin/python bench/packages.py [NAME...] [--cold-chroot] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from wellcar.image.settings import DEFAULT_MIRRORS
from wellcar.packages.builder import build_set
from wellcar.packages.layout import BuildCache, default_cache_dir
from wellcar.packages.package_set import load_package_set

SET = Path(__file__).resolve().parents[1] / "packages"
SCRATCH = Path("/var/tmp/wc-bench-packages")


def scratch_cache(shared: BuildCache, cold_chroot: bool) -> BuildCache:
    """A cache whose outputs are empty; the slow-moving inputs link to the shared one."""
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    cache = BuildCache(SCRATCH)
    shared.make()
    SCRATCH.mkdir(parents=True)
    linked = [shared.apt, shared.sources, shared.debs, shared.debian_debs]
    if not cold_chroot:
        linked.append(shared.chroots)
    for path in linked:
        (SCRATCH / path.name).symlink_to(path.resolve())
    cache.make()
    return cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--cold-chroot", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    specs = load_package_set(SET, args.names or None)
    rows = []
    try:
        for spec in specs:
            cache = scratch_cache(BuildCache(default_cache_dir()), args.cold_chroot)
            timings = []
            for _ in ("clean", "warm"):
                started = time.monotonic()
                (result,) = build_set([spec], cache, DEFAULT_MIRRORS, lambda _: None)
                timings.append((time.monotonic() - started, result.cached))
            (clean, clean_hit), (warm, warm_hit) = timings
            assert not clean_hit and warm_hit, "the clean build hit the cache, or warm did not"
            rows.append(
                {
                    "package": spec.name,
                    "version": result.version,
                    "clean_s": round(clean, 1),
                    "warm_s": round(warm, 1),
                    "ratio": round(warm / clean, 3),
                }
            )
            print(
                f"{spec.name:12} {result.version:26} clean {clean:7.1f} s   warm "
                f"{warm:6.1f} s   warm/clean {warm / clean:.3f}",
                flush=True,
            )
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"cold_chroot": args.cold_chroot, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
