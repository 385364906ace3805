"""The build setting that turns the live artifacts on: on, off, or auto (release builds)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from wellcar.image import SettingsError, resolve_settings
from wellcar.image.preflight import output_names
from wellcar.live.artifacts import LIVE_FILES


def test_auto_is_on_for_release_keys_and_off_for_development_builds(tmp_path: Path) -> None:
    dev = tmp_path / "dev-keys"
    base = replace(resolve_settings(None, {}), dev_keys_dir=dev)
    assert base.live_artifacts == "auto"
    assert not base.wants_live_artifacts  # unsigned
    assert not replace(base, signing_key=dev / "payload/release.key").wants_live_artifacts
    assert replace(base, signing_key=tmp_path / "release.key").wants_live_artifacts
    on = resolve_settings(None, {"live_artifacts": "on"})
    assert on.wants_live_artifacts
    assert not replace(on, live_artifacts="off").wants_live_artifacts


def test_profile_and_command_line_values(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("[build]\nlive-artifacts = true\n")
    assert resolve_settings(profile).live_artifacts == "on"
    assert resolve_settings(profile, {"live_artifacts": "OFF"}).live_artifacts == "off"
    with pytest.raises(SettingsError, match=r"live-artifacts.*on, off or auto"):
        resolve_settings(None, {"live_artifacts": "yes"})


def test_a_failed_build_removes_the_live_files_too() -> None:
    assert set(LIVE_FILES) <= set(output_names())
    assert output_names()[-1] == "SHA256SUMS"


def test_every_live_file_is_a_published_image_artifact() -> None:
    from wellcar.release.image_artifacts import Compression, artifact_for_build_name

    for name in LIVE_FILES:
        artifact = artifact_for_build_name(name)  # a TUF target and DIGESTS line
        assert artifact.tree_name == name and artifact.compression is Compression.NONE
