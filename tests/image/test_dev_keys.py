"""The development key set: made once when a build names no key, shipped by every image
built with it; a build whose image would trust no payload key is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wellcar.cli.main import build_app
from wellcar.image import build
from wellcar.image.dev_keys import DevKeys, ensure_dev_keys, with_dev_keys
from wellcar.image.errors import ImageContentError
from wellcar.image.settings import BrandProfile, BuildSettings, default_dev_keys_dir
from wellcar.payload.signing import load_signing_key, load_trusted_keys
from wellcar.trust.repository import TrustRepository

from .conftest import make_payload_keys


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_dev_keys_dir() == tmp_path / "wellcar/dev-keys"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")  # as the XDG spec says
    assert default_dev_keys_dir() == Path.home() / ".local/share/wellcar/dev-keys"


def test_the_set_is_made_once_and_its_keys_match(tmp_path: Path) -> None:
    first = ensure_dev_keys(tmp_path / "dev")
    assert first.created
    keys = first.keys
    signer = load_signing_key(keys.signing_key)
    shipped = load_trusted_keys([keys.payload_key_dir])
    assert [k.key_id for k in shipped.keys] == [signer.key_id]
    assert keys.signing_key.stat().st_mode & 0o077 == 0
    repo = TrustRepository(keys.release_tree)  # a release tree `wellcar release` can use
    assert repo.root().signed.version == 1
    assert keys.trust_root.read_bytes() == (keys.release_tree / "metadata/1.root.json").read_bytes()
    before = keys.signing_key.read_bytes()
    again = ensure_dev_keys(tmp_path / "dev")
    assert not again.created and again.keys.signing_key.read_bytes() == before
    assert not list(tmp_path.glob(".*partial*"))


def test_an_incomplete_set_is_not_used(tmp_path: Path) -> None:
    broken = tmp_path / "dev"
    (broken / "payload").mkdir(parents=True)
    (broken / "payload/release.key").write_text("half\n")
    with pytest.raises(ImageContentError, match="not a complete development key set"):
        ensure_dev_keys(broken)


def test_settings_without_keys_get_the_set(tmp_path: Path) -> None:
    settings, use = with_dev_keys(BuildSettings(dev_keys_dir=tmp_path / "dev"))
    assert use is not None and use.created
    keys = DevKeys(tmp_path / "dev")
    assert settings.signing_key == keys.signing_key
    assert settings.brand.payload_key_dir == keys.payload_key_dir
    assert settings.brand.trust_root == keys.trust_root
    # Any key named: the build uses what it was given, nothing is made.
    named = BuildSettings(brand=BrandProfile(payload_key_dir=tmp_path), dev_keys_dir=tmp_path / "x")
    assert with_dev_keys(named) == (named, None)
    assert not (tmp_path / "x").exists()


def test_an_image_with_the_dev_set_ships_its_keys_and_root(
    small_settings: BuildSettings, fake_rootfs: Path, tmp_path: Path
) -> None:
    bare = replace(small_settings, brand=BrandProfile(), signing_key=None)
    settings, _ = with_dev_keys(bare)
    build(settings, rootfs=fake_rootfs)
    keys = DevKeys(small_settings.dev_keys_dir)
    share = fake_rootfs / "usr/share/wellcar"
    assert (share / "update-payload-keys/release.pem").read_bytes() == keys.public_key.read_bytes()
    assert (share / "trust/root.json").read_bytes() == keys.trust_root.read_bytes()


def test_a_build_without_a_trusted_payload_key_is_refused(
    small_settings: BuildSettings, fake_rootfs: Path
) -> None:
    unsigned_trust = replace(small_settings, brand=BrandProfile())
    with pytest.raises(ImageContentError, match="would carry no trusted payload key"):
        build(unsigned_trust, rootfs=fake_rootfs)
    assert not (small_settings.output / "SHA256SUMS").exists()


def test_a_signing_key_the_image_does_not_trust_is_refused(
    small_settings: BuildSettings, fake_rootfs: Path, tmp_path: Path
) -> None:
    other_key, _ = make_payload_keys(tmp_path / "other")
    with pytest.raises(ImageContentError, match="nodes would refuse this image's own update"):
        build(replace(small_settings, signing_key=other_key), rootfs=fake_rootfs)


def test_the_cli_refuses_with_one_line(tmp_path: Path) -> None:
    signing_key, _ = make_payload_keys(tmp_path / "keys")
    result = CliRunner().invoke(
        build_app(),
        ["build", "--output", str(tmp_path / "out"), "--signing-key", str(signing_key)],
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: preflight: the image would carry no trusted payload key")
    assert "Traceback" not in result.output
