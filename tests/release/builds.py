"""Build directories shaped like `wellcar build` output, small enough for fast tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from wellcar.payload.signing import KeyAlgorithm, generate_key, write_key_pair

BASE_PACKAGES = {
    "systemd": "252.22-1~deb12u1",
    "linux-image-6.1.0-18-amd64": "6.1.76-1",
    "containerd": "1.6.20~ds1-1+b1",
    "curl": "7.88.1-10+deb12u5",
    "vim-tiny": "2:9.0.1378-2",
}


def make_build(
    directory: Path,
    version: str,
    packages: dict[str, str] | None = None,
    *,
    payload: bytes | None = None,
    extra: tuple[str, ...] = ("disk.img", "vmlinuz"),
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    packages = BASE_PACKAGES if packages is None else packages
    major, minor, patch = version.split(".")
    (directory / "version.txt").write_text(
        f"WELLCAR_BUILD={major}\nWELLCAR_BRANCH={minor}\nWELLCAR_PATCH={patch}\n"
        f"WELLCAR_VERSION={version}\nWELLCAR_VERSION_ID={version}\n"
    )
    (directory / "packages.txt").write_text(
        "".join(f"{name}={ver}\n" for name, ver in sorted(packages.items()))
    )
    (directory / "update.payload").write_bytes(payload or f"CrAU {version}".encode() * 64)
    for name in extra:
        (directory / name).write_bytes(f"{name} of {version}".encode() * 32)
    names = ["update.payload", "packages.txt", "version.txt", *extra]
    (directory / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )
    (directory / "build.log").write_text("# wellcar build\n")
    return directory


def payload_key(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "payload.pem", directory / "payload.pub.pem"
    if not private.exists():
        write_key_pair(generate_key(KeyAlgorithm.ED25519), private, public)
    return private, public
