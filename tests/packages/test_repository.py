"""The signed apt repository: indexes, InRelease checked by gpgv, all-or-nothing publishing.

Real gpg keys (Ed25519, made in tmp_path), real .debs from dpkg-deb, real gpgv.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.packages.builder import BuildResult
from wellcar.packages.errors import RepositoryError
from wellcar.packages.repo_key import SigningKey, ensure_dev_key, find_signing_key
from wellcar.packages.repository import (
    Repository,
    pin_preferences,
    publish_repository,
    verify_repository,
)

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


def make_deb(directory: Path, package: str, version: str) -> str:
    root = directory / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        f"Maintainer: Wellcar <packages@wellcar.dev>\nDescription: test package\n"
    )
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share" / package).write_text(version)
    name = f"{package}_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                    str(directory / name)], check=True, capture_output=True)  # fmt: skip
    shutil.rmtree(root)
    return name


def make_build(tmp_path: Path, source: str, version: str) -> BuildResult:
    directory = tmp_path / "builds" / f"{source}-{version}"
    directory.mkdir(parents=True)
    deb = make_deb(directory, source, version)
    (directory / f"{source}_{version}.dsc").write_text(
        f"Format: 3.0 (native)\nSource: {source}\nBinary: {source}\nArchitecture: any\n"
        f"Version: {version}\nMaintainer: Wellcar <packages@wellcar.dev>\n"
    )
    files = [deb, f"{source}_{version}.dsc"]
    return BuildResult(source, source, version, version, "k", str(directory),
                       {source: version}, files, [])  # fmt: skip


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return ensure_dev_key(tmp_path_factory.mktemp("dev-keys"))


def test_published_repository_verifies(tmp_path: Path, key: SigningKey) -> None:
    builds = [make_build(tmp_path, "dash", "0.5.12-2+wellcar1"),
              make_build(tmp_path, "base-files", "12.4+wellcar1")]  # fmt: skip
    repo = publish_repository(tmp_path / "repo", builds, key)
    assert repo.binaries() == {"dash": "0.5.12-2+wellcar1", "base-files": "12.4+wellcar1"}
    verify_repository(repo)
    subprocess.run(["gpgv", "--keyring", str(repo.keyring), str(repo.dists / "Release.gpg"),
                    str(repo.release)], check=True, capture_output=True)  # fmt: skip
    assert "Pin: release o=Wellcar" in pin_preferences()
    # The same key as a second call finds: the development key is made once.
    assert ensure_dev_key(key.home.parent).fingerprint == key.fingerprint


def test_apt_reads_the_repository(tmp_path: Path, key: SigningKey) -> None:
    repo = publish_repository(tmp_path / "repo", [make_build(tmp_path, "dash", "9-1")], key)
    state = tmp_path / "apt"
    (state / "lists/partial").mkdir(parents=True)
    (state / "sources.list").write_text(repo.apt_line() + "\n")
    options = ["-o", f"Dir::State={state}", "-o", f"Dir::State::Lists={state / 'lists'}",
               "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
               "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::Cache={state}",
               "-o", "APT::Sandbox::User=root"]  # fmt: skip
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
    assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout
    policy = subprocess.run(["apt-cache", *options, "policy", "dash"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert "9-1" in policy


def test_tampered_index_is_refused(tmp_path: Path, key: SigningKey) -> None:
    repo = publish_repository(tmp_path / "repo", [make_build(tmp_path, "dash", "1-1")], key)
    repo.packages_index.write_text(repo.packages_index.read_text().replace("1-1", "6-6"))
    with pytest.raises(RepositoryError, match="does not match the signed Release"):
        verify_repository(repo)


def test_other_key_is_refused(tmp_path: Path, key: SigningKey) -> None:
    repo = publish_repository(tmp_path / "repo", [make_build(tmp_path, "dash", "1-1")], key)
    other = ensure_dev_key(tmp_path / "other-keys")
    other_keyring = tmp_path / "other.gpg"
    other_keyring.write_bytes(other.gpg("--export", other.fingerprint))
    with pytest.raises(RepositoryError, match="bad signature"):
        verify_repository(repo, other_keyring)


def test_missing_key_publishes_nothing(tmp_path: Path, key: SigningKey) -> None:
    target = tmp_path / "repo"
    publish_repository(target, [make_build(tmp_path, "dash", "1-1")], key)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    with pytest.raises(RepositoryError, match="no secret signing key"):
        find_signing_key(empty)
    with pytest.raises(RepositoryError, match="does not exist"):
        find_signing_key(tmp_path / "nowhere")
    # A key whose secret is gone fails while signing: the previous tree stays.
    broken = SigningKey(empty, key.fingerprint)
    with pytest.raises(RepositoryError, match="gpg"):
        publish_repository(target, [make_build(tmp_path, "dash", "2-1")], broken)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert Repository(target).binaries() == {"dash": "1-1"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".repo")] == []


def test_image_origin_check(tmp_path: Path, key: SigningKey) -> None:
    from wellcar.packages.errors import ImageOriginError
    from wellcar.packages.image_origin import check_image_origin, mmdebstrap_arguments

    repo = publish_repository(tmp_path / "repo", [make_build(tmp_path, "dash", "1-1+w1")], key)
    assert check_image_origin({"dash": "1-1+w1", "bash": "5"}, repo.root) == ["dash"]
    assert check_image_origin({"bash": "5"}, repo.root) == []
    with pytest.raises(ImageOriginError, match=r"not from Wellcar's repository: dash 1-2 \("):
        check_image_origin({"dash": "1-2"}, repo.root)
    hooks = mmdebstrap_arguments(repo.root)
    assert any(str(repo.preferences) in hook for hook in hooks)
    repo.release.write_text("tampered")  # InRelease still verifies; an index does not
    repo.packages_index.write_text("")
    with pytest.raises(RepositoryError):
        mmdebstrap_arguments(repo.root)
