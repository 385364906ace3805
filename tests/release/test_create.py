"""`release create` and `promote`: the tree, its signatures, notes, feeds, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.release.builds import BASE_PACKAGES, make_build
from tests.release.conftest import Workspace
from wellcar.image.version import OsVersion, parse_os_version
from wellcar.payload.signing import load_trusted_keys
from wellcar.release.channels import next_version, version_for_channel
from wellcar.release.create import create_release, promote_release
from wellcar.release.digests import verify_digests
from wellcar.release.errors import (
    BuildDirError,
    ChannelError,
    PromotionError,
    ReleaseError,
    VersionExistsError,
)
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TrustRepository, verify_published


def _snapshot(tree: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tree)): p.read_bytes()
        for p in sorted(tree.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_versions_follow_flatcars_scheme() -> None:
    when = datetime(2026, 8, 21, 12, tzinfo=UTC)
    assert str(version_for_channel(when, "alpha", [])) == "4799.0.0"
    assert str(version_for_channel(when, "lts", [])) == "4799.3.0"
    used = [
        parse_os_version("4799.2.0"),
        parse_os_version("4799.2.1"),
        parse_os_version("4799.4.7"),
    ]
    assert str(version_for_channel(when, "stable", used)) == "4799.2.2"
    assert str(version_for_channel(when, "edge", used, minor=4)) == "4799.4.8"
    with pytest.raises(ChannelError, match="cannot use MINOR 2, which is stable's"):
        version_for_channel(when, "edge", used, minor=2)
    with pytest.raises(ChannelError, match="custom channel"):
        version_for_channel(when, "edge", [])
    with pytest.raises(ChannelError, match="always has MINOR 2"):
        version_for_channel(when, "stable", [], minor=0)
    assert next_version(1, 1, []) == OsVersion(1, 1, 0)


def test_create_writes_the_tree_and_signs_it(ws: Workspace) -> None:
    build = make_build(ws.base / "build", "4799.2.0")
    outcome = create_release(ws.tree, build, "stable", ws.inputs())
    version_dir = ws.tree / "stable/amd64-usr/4799.2.0"
    assert outcome.directory == version_dir
    assert sorted(os.listdir(version_dir)) == [
        "DIGESTS", "DIGESTS.sig", "disk.img.zst", "packages.txt", "release-notes.md",
        "release.json", "update.payload", "version.txt", "vmlinuz",
    ]  # fmt: skip
    assert os.readlink(ws.tree / "stable/amd64-usr/current") == "4799.2.0"
    assert (ws.tree / "stable/amd64-usr/current/version.txt").read_text().count("4799.2.0") == 2
    checked = verify_digests(version_dir, load_trusted_keys([ws.payload_public]))
    assert "update.payload" in checked
    targets = verify_published(ws.tree).signed.targets
    payload = targets["stable/amd64-usr/4799.2.0/update.payload"]
    assert payload.custom == {"version": "4799.2.0", "channel": "stable", "board": "amd64-usr"}
    assert payload.length == (build / "update.payload").stat().st_size
    feed = json.loads((ws.tree / "releases.json").read_text())
    assert feed["4799.2.0"]["channel"] == "stable"
    assert feed["4799.2.0"]["architectures"] == ["amd64-usr"]
    assert feed["4799.2.0"]["major_software"]["kernel"] == ["6.1.0-18-amd64"]
    assert "First release" in feed["4799.2.0"]["release_notes"]
    assert json.loads((ws.tree / "stable/releases.json").read_text()).keys() == {"4799.2.0"}


def test_the_disk_image_is_published_compressed(ws: Workspace) -> None:
    """disk.img goes into the tree as zstd (release.image_artifacts), signed under its
    tree name in TUF, DIGESTS and the record; it decompresses to the build's bytes."""
    build = make_build(ws.base / "build", "4799.2.0")
    create_release(ws.tree, build, "stable", ws.inputs())
    version_dir = ws.tree / "stable/amd64-usr/4799.2.0"
    packed = version_dir / "disk.img.zst"
    assert packed.read_bytes()[:4] == bytes.fromhex("28b52ffd")  # zstd frame magic
    unpacked = subprocess.run(["zstd", "-dc", str(packed)], capture_output=True, check=True)
    assert unpacked.stdout == (build / "disk.img").read_bytes()
    target = verify_published(ws.tree).signed.targets["stable/amd64-usr/4799.2.0/disk.img.zst"]
    assert target.length == packed.stat().st_size
    assert target.hashes["sha256"] == hashlib.sha256(packed.read_bytes()).hexdigest()
    assert "disk.img.zst" in verify_digests(version_dir, load_trusted_keys([ws.payload_public]))
    record = json.loads((version_dir / "release.json").read_text())
    assert record["artifacts"]["disk.img.zst"]["sha256"] == target.hashes["sha256"]
    assert "disk.img" not in record["artifacts"]


def test_notes_compare_with_the_previous_release(ws: Workspace) -> None:
    changelog = ws.base / "changelog"
    (changelog / "security").mkdir(parents=True)
    (changelog / "security/2026-08-01-curl.md").write_text("- curl ([CVE-2026-1](nvd))")
    create_release(ws.tree, make_build(ws.base / "b1", "4799.2.0"), "stable", ws.inputs(changelog))
    first = (ws.tree / "stable/amd64-usr/4799.2.0/release-notes.md").read_text()
    assert "CVE-2026-1" in first
    packages = dict(BASE_PACKAGES)
    packages["systemd"] = "252.26-1~deb12u2"  # upgraded
    packages["vim-tiny"] = "2:9.0.1000-1"  # downgraded
    del packages["curl"]
    del packages["linux-image-6.1.0-18-amd64"]
    packages["linux-image-6.1.0-21-amd64"] = "6.1.90-1"
    packages["jq"] = "1.6-2.1"
    (changelog / "bugfixes").mkdir()
    (changelog / "bugfixes/2026-08-20-boot.md").write_text("- fixed boot counting")
    build = make_build(ws.base / "b2", "4800.2.0", packages)
    create_release(ws.tree, build, "stable", ws.inputs(changelog))
    notes = (ws.tree / "stable/amd64-usr/4800.2.0/release-notes.md").read_text()
    assert "_Changes since **Stable 4799.2.0**_" in notes
    assert "- systemd 252.22-1~deb12u1 → 252.26-1~deb12u2" in notes.split("## Upgraded")[1]
    assert "- vim-tiny 2:9.0.1378-2 → 2:9.0.1000-1" in notes.split("## Downgraded")[1]
    assert "- jq 1.6-2.1" in notes.split("## Added")[1]
    assert "- curl 7.88.1-10+deb12u5" in notes.split("## Removed")[1]
    assert "- Linux 6.1.0-21-amd64 (was 6.1.0-18-amd64)" in notes
    assert "fixed boot counting" in notes and "CVE-2026-1" not in notes  # fragments once


def test_bad_input_publishes_nothing(ws: Workspace) -> None:
    create_release(ws.tree, make_build(ws.base / "b1", "4799.2.0"), "stable", ws.inputs())
    before = _snapshot(ws.tree)

    missing = make_build(ws.base / "missing", "4800.2.0")
    (missing / "disk.img").unlink()
    with pytest.raises(BuildDirError, match=r"SHA256SUMS lists disk\.img but it is not there"):
        create_release(ws.tree, missing, "stable", ws.inputs())

    with pytest.raises(VersionExistsError, match="already exists"):
        create_release(ws.tree, make_build(ws.base / "again", "4799.2.0"), "stable", ws.inputs())

    with pytest.raises(PromotionError, match="would go backwards"):
        create_release(ws.tree, make_build(ws.base / "old", "4700.2.0"), "stable", ws.inputs())

    with pytest.raises(ChannelError, match="needs MINOR 2"):
        create_release(ws.tree, make_build(ws.base / "alpha", "4801.0.0"), "stable", ws.inputs())

    stranger_tree = ws.base / "other-tree"
    TrustRepository.initialize(stranger_tree, ws.base / "other-keys")
    wrong = ws.inputs()
    wrong = type(wrong)(wrong.payload_keys, Keyring.load([ws.base / "other-keys"]))
    with pytest.raises(ReleaseError, match=r"cannot sign targets \(1 of 1 keys\), snapshot"):
        create_release(ws.tree, make_build(ws.base / "b3", "4802.2.0"), "stable", wrong)

    assert _snapshot(ws.tree) == before


def test_expired_root_refuses_a_release(tmp_path: Path, ws: Workspace) -> None:
    tree = tmp_path / "expired"
    TrustRepository.initialize(tree, tmp_path / "k", now=datetime.now(UTC) - timedelta(days=400))
    inputs = type(ws.inputs())(ws.inputs().payload_keys, Keyring.load([tmp_path / "k"]))
    with pytest.raises(ReleaseError, match="root v1 expired"):
        create_release(tree, make_build(tmp_path / "b", "4799.2.0"), "stable", inputs)
    assert not (tree / "stable").exists()


def test_promotion_rebuilds_and_re_signs(ws: Workspace) -> None:
    create_release(ws.tree, make_build(ws.base / "a", "4799.0.0"), "alpha", ws.inputs())
    with pytest.raises(PromotionError, match=r"rebuild with `wellcar build --version 4799\.1\.0`"):
        promote_release(ws.tree, "4799.0.0", "beta", ws.base / "a", ws.inputs())
    changed = dict(BASE_PACKAGES, curl="8.0-1")
    with pytest.raises(PromotionError, match=r"not built from the same inputs.*curl"):
        promote_release(
            ws.tree, "4799.0.0", "beta", make_build(ws.base / "x", "4799.1.0", changed), ws.inputs()
        )
    rebuilt = make_build(ws.base / "b", "4799.1.0")
    outcome = promote_release(ws.tree, "4799.0.0", "beta", rebuilt, ws.inputs())
    assert outcome.record.version == "4799.1.0"
    assert outcome.record.promoted_from == "alpha 4799.0.0"
    targets = verify_published(ws.tree).signed.targets
    assert "beta/amd64-usr/4799.1.0/update.payload" in targets
    assert "alpha/amd64-usr/4799.0.0/update.payload" in targets  # the source stays
    with pytest.raises(PromotionError, match="goes backwards"):
        promote_release(ws.tree, "4799.1.0", "alpha", rebuilt, ws.inputs())


def test_promotion_behind_the_target_channel_is_refused(ws: Workspace) -> None:
    create_release(ws.tree, make_build(ws.base / "a", "4790.0.0"), "alpha", ws.inputs())
    create_release(ws.tree, make_build(ws.base / "b", "4795.1.0"), "beta", ws.inputs())
    before = _snapshot(ws.tree)
    with pytest.raises(PromotionError, match=r"already has 4795\.1\.0"):
        promote_release(
            ws.tree, "4790.0.0", "beta", make_build(ws.base / "r", "4790.1.0"), ws.inputs()
        )
    assert _snapshot(ws.tree) == before


def test_signing_failure_leaves_no_release(ws: Workspace) -> None:
    shutil.rmtree(ws.tree / "metadata")
    with pytest.raises(ReleaseError, match="no TUF repository"):
        create_release(ws.tree, make_build(ws.base / "a", "4799.2.0"), "stable", ws.inputs())
    assert not (ws.tree / "stable").exists()
