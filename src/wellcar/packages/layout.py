"""Where the package builds keep their state: one cache directory outside the repository
(``$WELLCAR_PACKAGE_BUILD_CACHE``, else ``~/.cache/wellcar/package-builds``).

- ``apt/``: the private apt state that fetches sources (its lists are the signed indexes);
- ``sources/``: downloaded source packages, verified against those indexes;
- ``debs/``: the .debs the build chroots are made of, kept between chroot builds;
- ``chroots/<key>.tar`` and ``<key>.manifest``: clean build chroots with a source's
  build-dependencies, and the packages each holds (the build environment);
- ``builds/<key>/``: one build's outputs, complete only once ``result.json`` exists;
- ``verify/<source>_<version>.json``: what ``verify`` found for a Debian source;
- ``debian-debs/``: Debian's binary .debs that ``verify`` compared against;
- ``work/``: scratch space of running builds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RESULT_FILE = "result.json"


def default_cache_dir() -> Path:
    env = os.environ.get("WELLCAR_PACKAGE_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wellcar" / "package-builds"


@dataclass(frozen=True)
class BuildCache:
    root: Path

    @property
    def apt(self) -> Path:
        return self.root / "apt"

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def chroots(self) -> Path:
        return self.root / "chroots"

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def verify(self) -> Path:
        return self.root / "verify"

    @property
    def debian_debs(self) -> Path:
        return self.root / "debian-debs"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def build_dir(self, key: str) -> Path:
        return self.builds / key

    def chroot_tar(self, key: str) -> Path:
        return self.chroots / f"{key}.tar"

    def chroot_manifest(self, key: str) -> Path:
        return self.chroots / f"{key}.manifest"

    def make(self) -> None:
        for path in (
            self.apt,
            self.sources,
            self.debs,
            self.chroots,
            self.builds,
            self.work,
            self.verify,
            self.debian_debs,
        ):
            path.mkdir(parents=True, exist_ok=True)
