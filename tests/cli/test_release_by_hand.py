"""Releasing by hand from the command line: every silent case is one `error:` line, exit
status 1, nothing written; verify-digests binds the release."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_release_commands import one_error_line, run
from tests.release.builds import make_build, payload_key
from wellcar.payload.signing import load_signing_key
from wellcar.release.create import ReleaseInputs, create_release
from wellcar.trust.keys import Keyring


@dataclass(frozen=True)
class Setup:
    base: Path
    tree: Path
    keys: Path
    signing: Path
    public: Path

    def create(self, build: Path, *extra: str | Path, keys: Path | None = None) -> list[str | Path]:
        return ["release", "create", build, "--tree", self.tree, "--keys", keys or self.keys,
                "--signing-key", self.signing, *extra]  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    tree, keys = tmp_path / "tree", tmp_path / "keys"
    assert run("trust", "init", "--tree", tree, "--keys-dir", keys).exit_code == 0
    signing, public = payload_key(tmp_path / "pk")
    return Setup(tmp_path, tree, keys, signing, public)


def _nothing_released(setup: Setup) -> bool:
    return not any(p.is_dir() and p.name != "metadata" for p in setup.tree.iterdir())


def test_a_board_typo_is_refused_with_a_suggestion(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    line = one_error_line(run(*setup.create(build, "--channel", "stable", "--board", "amd64")))
    assert line == (
        "error: unknown board 'amd64': did you mean amd64-usr? boards are amd64-usr, arm64-usr"
    )
    assert _nothing_released(setup)


def test_a_missing_changelog_directory_is_refused(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    missing = setup.base / "changelog"
    line = one_error_line(run(*setup.create(build, "--channel", "stable", "--changelog", missing)))
    assert f"--changelog {missing}: no such directory" in line
    missing.mkdir()
    (missing / "README").write_text("x")
    line = one_error_line(run(*setup.create(build, "--channel", "stable", "--changelog", missing)))
    assert "has none of security/, bugfixes/, changes/, updates/" in line
    assert _nothing_released(setup)


def test_a_custom_channel_with_stables_minor_is_refused(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    line = one_error_line(run(*setup.create(build, "--channel", "edge")))
    assert "4799.2.0, a stable version (MINOR 2), but edge is a custom channel" in line
    assert "wellcar build --version 4799.4.0" in line
    version = one_error_line(run("release", "version", "--channel", "edge", "--minor", "2"))
    assert "custom channel edge cannot use MINOR 2, which is stable's" in version
    assert run(*setup.create(make_build(setup.base / "e", "4799.4.0"), "--channel", "edge"))
    assert (setup.tree / "edge/amd64-usr/4799.4.0/DIGESTS").is_file()


def test_a_delta_payload_is_refused(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0", delta=True)
    line = one_error_line(run(*setup.create(build, "--channel", "stable")))
    assert "update.payload is a delta payload" in line
    assert "release the full payload (`wellcar payload generate` without --old)" in line
    not_a_payload = make_build(setup.base / "n", "4799.2.0", payload=b"not a payload" * 10)
    line = one_error_line(run(*setup.create(not_a_payload, "--channel", "stable")))
    assert "update.payload is not an update payload" in line
    assert _nothing_released(setup)


def test_the_targets_key_cannot_sign_digests(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    targets_key = setup.keys / "targets-1.key"
    args = ["release", "create", build, "--channel", "stable", "--tree", setup.tree,
            "--keys", setup.keys, "--signing-key", targets_key]  # fmt: skip
    line = one_error_line(run(*args))
    assert line == (
        f"error: --signing-key {targets_key} is the TUF targets key; DIGESTS is signed with "
        "the payload key (`wellcar keys generate`), pass that instead"
    )
    assert _nothing_released(setup)


def test_without_the_targets_key_the_error_says_what_works(setup: Setup) -> None:
    online = setup.base / "online"
    online.mkdir()
    for name in ("snapshot", "timestamp"):
        shutil.copy(setup.keys / f"{name}.key", online)
    build = make_build(setup.base / "b", "4799.2.0")
    line = one_error_line(run(*setup.create(build, "--channel", "stable", keys=online)))
    assert "cannot sign targets (1 of 1 keys)" in line
    assert "pass --keys with those private keys" in line
    assert "run `release create` on that machine" in line
    assert "trust export" not in line  # the offline flow cannot finish a release
    assert _nothing_released(setup)


def test_build_dir_problems_come_at_once(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    (build / "version.txt").write_text("VERSION=4799.2.0\n")
    (build / "disk.img").write_bytes(b"changed")
    (build / "SHA256SUMS").write_text(
        "".join(
            line + "\n"
            for line in (build / "SHA256SUMS").read_text().splitlines()
            if not line.endswith("packages.txt")
        )
    )
    line = one_error_line(run(*setup.create(build, "--channel", "stable")))
    assert f"error: {build} has 4 problems: (1) version.txt does not match SHA256SUMS" in line
    assert "(2) packages.txt is not listed in SHA256SUMS" in line
    assert "add it (`sha256sum packages.txt >> SHA256SUMS`)" in line
    assert "(3) disk.img does not match SHA256SUMS" in line
    assert "(4) version.txt: no <PREFIX>_VERSION= line: PREFIX is the brand's ID" in line
    assert "WELLCAR_VERSION=4799.2.0" in line
    assert "rebuild" not in line


def test_binary_sha256sum_output_is_read(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    names = ["update.payload", "packages.txt", "version.txt", "disk.img", "vmlinuz"]
    sums = subprocess.run(["sha256sum", "-b", *names], cwd=build, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    assert " *update.payload" in sums
    (build / "SHA256SUMS").write_text(sums)
    result = run(*setup.create(build, "--channel", "stable"))
    assert result.exit_code == 0, result.stderr


def test_verify_digests_binds_the_version_and_the_files(setup: Setup) -> None:
    build = make_build(setup.base / "b", "4799.2.0")
    assert run(*setup.create(build, "--channel", "stable")).exit_code == 0
    released = setup.tree / "stable/amd64-usr/4799.2.0"
    verify = ("release", "verify-digests", "--trusted-key", setup.public)
    result = run(*verify, released)
    assert result.exit_code == 0, result.stderr
    assert "ok: 7 files match the signed DIGESTS of 4799.2.0 (stable/amd64-usr)" in result.stdout

    served_as_next = released.parent / "4799.2.1"
    shutil.copytree(released, served_as_next)
    line = one_error_line(run(*verify, served_as_next))
    assert "is signed for another release (version 4799.2.0, not 4799.2.1)" in line

    (released / "extra.bin").write_bytes(b"x")
    line = one_error_line(run(*verify, released))
    assert "extra.bin is not listed in the signed DIGESTS" in line
    only = run(*verify, released, "--file", "update.payload", "--file", "disk.img.zst")
    assert only.exit_code == 0 and "ok: 2 files" in only.stdout

    download = setup.base / "download"
    shutil.copytree(served_as_next, download)
    assert "pass --version" in one_error_line(run(*verify, download))
    ok = run(*verify, download, "--version", "4799.2.0")
    assert ok.exit_code == 0 and "board and channel not checked" in ok.stdout
    assert "did you mean arm64-usr?" in one_error_line(run(*verify, download, "--board", "arm64"))


def test_old_pem_tuf_key_names_are_still_read(setup: Setup) -> None:
    """Keys written before NAME.key: NAME.pem private keys in the --keys directory; a
    public key named *.pem there is passed over, not an error."""
    for key in setup.keys.glob("*.key"):
        key.rename(key.with_suffix(".pem"))
    shutil.copy(setup.public, setup.keys / "payload-public.pem")
    build = make_build(setup.base / "b", "4799.2.0")
    (build / "SHA256SUMS").write_text(
        subprocess.run(
            [
                "sha256sum",
                "--tag",
                "update.payload",
                "packages.txt",
                "version.txt",
                "disk.img",
                "vmlinuz",
            ],
            cwd=build,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    result = run(*setup.create(build, "--channel", "stable"))
    assert result.exit_code == 0, result.stderr


def test_a_delta_is_released_only_when_the_caller_says_every_node_can_apply_it(
    setup: Setup,
) -> None:
    build = make_build(setup.base / "b", "4799.2.0", delta=True)
    inputs = ReleaseInputs(
        [load_signing_key(setup.signing)], Keyring.load([setup.keys]), allow_delta_payload=True
    )
    assert create_release(setup.tree, build, "stable", inputs).record.version == "4799.2.0"
