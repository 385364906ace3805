"""The demo's OS builds and releases: versions N and N+1, reused while their inputs stay.

Each build is `wellcar build` with its defaults (the development key set, no key named)
plus one extra tree that puts ``/usr/share/wellcar-demo/hello`` in ``/usr``: N and N+1
differ in that file (and their version), which is what the update changes on the node.

A build is reused when a fingerprint of its inputs matches the one stored next to it
(``demo-inputs.json``): the settings the demo passes, the extra tree, the development
keys it trusts and the Wellcar code the image carries. Debian's mirror is not part of it
(a security update published since does not rebuild; delete ``var/demo/builds`` to).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import wellcar
from wellcar.image import BuildSettings, OsVersion, build, parse_os_version, resolve_settings
from wellcar.image.dev_keys import DevKeys, with_dev_keys
from wellcar.image.preflight import preflight
from wellcar.release.build_dir import REQUIRED, SUMS, parse_version_txt, sha256_file
from wellcar.release.create import ReleaseInputs, create_release

FINGERPRINT_FILE = "demo-inputs.json"
HELLO_PATH = "usr/share/wellcar-demo/hello"  # the file in /usr that N+1 changes

StepCallback = Callable[[str, int, int], None]


class DemoBuildError(Exception):
    """A build the demo needs cannot be made or used."""


@dataclass(frozen=True)
class DemoBuild:
    version: str
    output: Path
    how: str  # "built", "reused" (inputs unchanged) or "given" (--build-n/--build-n1)


def hello_text(role: str, version: OsVersion) -> str:
    return f"Hello from Wellcar {version} ({role} of the demo), served from a read-only /usr.\n"


def _code_digest() -> str:
    """The Wellcar package the image carries (wellcar.image.rootfs copies it), but for
    the demo's own modules: the node never runs them, so editing them rebuilds nothing."""
    digest = hashlib.sha256()
    root = Path(wellcar.__file__).parent
    for path in sorted(root.rglob("*")):
        own = path.parent.name == "cli" and path.name.startswith("demo")
        if path.is_file() and "__pycache__" not in path.parts and not own:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _fingerprint(role: str, version: OsVersion | None, keys: DevKeys) -> dict[str, str]:
    # N's version is not an input (a later day reuses it); N+1's is (it follows N's).
    return {
        "role": role,
        "version": "" if version is None else str(version),
        "hello": "" if version is None else hello_text(role, version),
        "payload_key": sha256_file(keys.public_key) if keys.public_key.is_file() else "",
        "trust_root": sha256_file(keys.trust_root) if keys.trust_root.is_file() else "",
        "code": _code_digest(),
    }


def _stored(output: Path) -> dict[str, str] | None:
    try:
        loaded = json.loads((output / FINGERPRINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(loaded, dict) or not (output / SUMS).is_file():
        return None  # no SHA256SUMS: that build never finished
    return {str(k): str(v) for k, v in loaded.items()}


def build_version(output: Path) -> OsVersion:
    try:
        return parse_version_txt((output / "version.txt").read_text())
    except (OSError, ValueError) as exc:
        raise DemoBuildError(f"{output} has no readable version.txt: {exc}") from None


def _output(work: Path, role: str) -> Path:
    return work / role.lower().replace("+", "")


def reusable(work: Path, role: str, version: OsVersion | None, keys: DevKeys) -> bool:
    """Whether the earlier build for ``role`` was made from the same inputs."""
    stored = _stored(_output(work, role))
    wanted = _fingerprint(role, version, keys)
    return stored is not None and all(stored.get(k) == v for k, v in wanted.items() if v)


def check_can_build(role: str) -> None:
    if os.geteuid() != 0:
        raise DemoBuildError(
            f"building {role} needs root (mmdebstrap); run as root, or give existing builds "
            "with --build-n/--build-n1"
        )


def ensure_build(
    work: Path, role: str, version: OsVersion | None, keys: DevKeys, on_step: StepCallback
) -> DemoBuild:
    """The build for ``role`` ("N" or "N+1") in ``work/<role>``: the existing one when its
    inputs match, else a new one (``version`` None: today's, as `wellcar build` picks)."""
    output = _output(work, role)
    if reusable(work, role, version, keys):
        return DemoBuild(str(build_version(output)), output, "reused")
    check_can_build(role)
    settings = resolve_settings(None, {} if version is None else {"version": str(version)})
    version = settings.version
    tree = work / f"tree-{output.name}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / HELLO_PATH).parent.mkdir(parents=True)
    (tree / HELLO_PATH).write_text(hello_text(role, version))
    settings = replace(settings, output=output, extra_trees=(tree,), dev_keys_dir=keys.directory)
    settings, _ = with_dev_keys(settings)
    _build(settings, on_step)
    fingerprint = {**_fingerprint(role, version, keys), "version": str(version)}
    (output / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=1) + "\n")
    return DemoBuild(str(version), output, "built")


def _build(settings: BuildSettings, on_step: StepCallback) -> None:
    # A stale fingerprint must not survive a failed rebuild into the same folder.
    (settings.output / FINGERPRINT_FILE).unlink(missing_ok=True)
    preflight(settings)
    build(settings, on_step=on_step, checked=True)


def next_patch(version: str) -> OsVersion:
    parsed = parse_os_version(version)
    return OsVersion(parsed.major, parsed.minor, parsed.patch + 1)


def release_build(tree: Path, staging: Path, build_dir: Path, inputs: ReleaseInputs) -> str:
    """Release a build into the tree, in the build version's channel; its version. Only
    the files a node needs are released (payload, version.txt, packages.txt): the demo's
    tree is served to one VM, not to people downloading multi-GB disk images."""
    version = build_version(build_dir)
    slim = staging / str(version)
    shutil.rmtree(slim, ignore_errors=True)
    slim.mkdir(parents=True)
    for name in REQUIRED:
        try:
            (slim / name).hardlink_to(build_dir / name)
        except OSError:
            shutil.copyfile(build_dir / name, slim / name)  # another file system
    (slim / SUMS).write_text("".join(f"{sha256_file(slim / n)}  {n}\n" for n in REQUIRED))
    create_release(tree, slim, version.channel, inputs)
    shutil.rmtree(slim, ignore_errors=True)
    return str(version)
