"""status and SBOM of an image: origins, the independence figure, CycloneDX output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellcar.packages.errors import PackageError
from wellcar.packages.image_report import (
    Origin,
    image_status,
    read_manifest,
    source_of,
)
from wellcar.packages.licences import LicenceCache, licences_from_copyright
from wellcar.packages.repo_key import ensure_dev_key
from wellcar.packages.repository import publish_repository
from wellcar.packages.sbom import make_sbom
from wellcar.packages.sources import AptState
from wellcar.packages.verify import DebComparison, VerifyResult

from .test_repository import make_build

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dash

Files: *
Copyright: 1989 The Regents of the University of California
License: BSD-3-Clause

Files: debian/*
Copyright: 2023 Someone
License: GPL-2+
 This program is free software.
"""


def test_licences_from_copyright() -> None:
    assert licences_from_copyright(DEP5) == ["BSD-3-Clause", "GPL-2+"]
    assert licences_from_copyright("This is the Debian prepackaged version of X.\n") == []


def test_source_of() -> None:
    assert source_of({"Package": "libssl3", "Version": "3.0.22-1", "Source": "openssl"}) == (
        "openssl",
        "3.0.22-1",
    )
    assert source_of({"Package": "x", "Version": "1+b1", "Source": "y (1)"}) == ("y", "1")
    assert source_of({"Package": "dash", "Version": "0.5"}) == ("dash", "0.5")


def test_status_and_sbom(tmp_path: Path) -> None:
    key = ensure_dev_key(tmp_path / "keys")
    repo = publish_repository(tmp_path / "repo", [make_build(tmp_path, "dash", "1-1+w1")], key)
    image = tmp_path / "image"
    image.mkdir()
    (image / "packages.txt").write_text("dash=1-1+w1\nbash=5.2-1\nhostname=3.23\nzlib1g=1.2\n")
    # An apt state with no lists: Debian's sources fall back to the package's own name.
    apt = AptState(tmp_path / "apt")
    verified = {
        ("bash", "5.2-1"): VerifyResult("bash", "5.2-1", True, 1.0, [DebComparison("bash", True)]),
        ("hostname", "3.23"): VerifyResult(
            "hostname", "3.23", False, 1.0, [DebComparison("hostname", False)]
        ),
    }
    status = image_status(read_manifest(image), repo, apt, verified)
    origins = {p.name: p.origin for p in status.packages}
    assert origins == {
        "dash": Origin.OURS,
        "bash": Origin.VERIFIED,
        "hostname": Origin.DIFFERS,
        "zlib1g": Origin.UNCHECKED,
    }
    assert status.independence == 0.5
    text = make_sbom(
        status, "wellcar", "4893.0.0", repo, LicenceCache(tmp_path / "l.json"), [repo.root / "pool"]
    )
    sbom = json.loads(text)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    components = {c["name"]: c for c in sbom["components"]}
    assert components["dash"]["purl"].startswith("pkg:deb/wellcar/dash@1-1%2Bw1")
    assert components["zlib1g"]["purl"].startswith("pkg:deb/debian/zlib1g@1.2")
    props = {p["name"]: p["value"] for p in components["dash"]["properties"]}
    assert props["wellcar:origin"] == str(Origin.OURS)
    assert props["wellcar:source"] == "dash"


def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not an image build"):
        read_manifest(tmp_path)
