"""Build directories shaped like `wellcar build` output, small enough for fast tests.

The payload is a real (full, signed) payload of a small /usr image made by the payload
code, so `release create` reads it as `wellcar build`'s; the images are stand-ins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from wellcar.keyfiles import key_pair_paths
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import KeyAlgorithm, generate_key, load_signing_key, write_key_pair

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
    delta: bool = False,
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
    if payload is not None:
        (directory / "update.payload").write_bytes(payload)
    else:
        write_payload(directory, version, delta=delta)
    for name in extra:
        (directory / name).write_bytes(f"{name} of {version}".encode() * 32)
    names = ["update.payload", "packages.txt", "version.txt", *extra]
    write_sums(directory, names)
    (directory / "build.log").write_text("# wellcar build\n")
    return directory


def write_sums(directory: Path, names: list[str], *, binary: bool = False) -> None:
    """SHA256SUMS as `sha256sum` (``-b`` with binary) writes it."""
    mark = "*" if binary else " "
    (directory / "SHA256SUMS").write_text(
        "".join(
            f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()} {mark}{n}\n" for n in names
        )
    )


def _usr_image(version: str, blocks: int = 8) -> bytes:
    return b"".join(hashlib.sha256(f"{version} {i}".encode()).digest() * 128 for i in range(blocks))


def write_payload(directory: Path, version: str, *, delta: bool = False) -> None:
    """A full payload of a small /usr for ``version`` (delta: on top of 4799.0.0's)."""
    work = directory / ".payload-work"
    work.mkdir(exist_ok=True)
    new, old = work / "usr.img", work / "old-usr.img"
    new.write_bytes(_usr_image(version))
    old.write_bytes(_usr_image("4799.0.0"))
    key_dir = directory.parent / ".build-payload-key"
    private, _ = payload_key(key_dir)
    generate_payload(
        PayloadInputs(new, old if delta else None),
        directory / "update.payload",
        [load_signing_key(private)],
        GenerateOptions(zstd_level=1, try_bsdiff=False),
    )
    for path in (new, old):
        path.unlink()
    work.rmdir()


def payload_key(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = key_pair_paths(directory / "payload")
    if not private.exists():
        write_key_pair(generate_key(KeyAlgorithm.ED25519), private, public)
    return private, public
