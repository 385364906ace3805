"""The package set's files: package.toml, patches/series and DEP-3 headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.packages.errors import PackageSetError
from wellcar.packages.package_set import (
    load_package,
    load_package_set,
    parse_dep3,
    parse_series,
)

REPO_SET = Path(__file__).resolve().parents[2] / "packages"
PATCH = """Description: Change the default
 A longer explanation.
Author: Someone <someone@example.org>
Forwarded: not-needed
---
--- a/file.txt
+++ b/file.txt
@@ -1 +1 @@
-old
+new
"""


def write_package(root: Path, toml: str, patches: dict[str, str] | None = None,
                  series: str | None = None) -> Path:  # fmt: skip
    directory = root / "demo"
    (directory / "patches").mkdir(parents=True)
    (directory / "package.toml").write_text(toml)
    for name, text in (patches or {}).items():
        (directory / "patches" / name).write_text(text)
    if series is not None:
        (directory / "patches" / "series").write_text(series)
    return directory


GOOD = 'source = "demo"\nsuite = "bookworm"\nsuffix = "+wellcar1"\nwhy = "because"\n'


def test_the_repository_set_loads() -> None:
    specs = {spec.name: spec for spec in load_package_set(REPO_SET)}
    assert {"base-files", "dash"} <= set(specs)
    assert specs["base-files"].patches[0].name == "wellcar-branding.patch"
    assert specs["dash"].version == "0.5.12-2"
    assert all(spec.suffix == "+wellcar1" for spec in specs.values())


def test_package_with_series(tmp_path: Path) -> None:
    directory = write_package(tmp_path, GOOD, {"a.patch": PATCH, "b.patch": PATCH},
                              "# ours\nb.patch\n\na.patch  # then this\n")  # fmt: skip
    spec = load_package(directory)
    assert [p.name for p in spec.patches] == ["b.patch", "a.patch"]
    assert spec.patches[0].description == "Change the default"
    assert spec.version is None


def test_series_options_refused() -> None:
    with pytest.raises(PackageSetError, match="options"):
        parse_series("a.patch -p0\n")
    assert parse_series("x.patch\n#y.patch\n") == ["x.patch"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (GOOD.replace("+wellcar1", "wellcar1"), "suffix"),
        (GOOD.replace('"demo"', '"Demo_Pkg"'), "not a Debian source name"),
        (GOOD + 'colour = "red"\n', "unknown keys colour"),
        (GOOD.replace('why = "because"\n', ""), "why must be"),
        (GOOD + 'version = "not a version"\n', "not a Debian version"),
        ("source = [", "not valid TOML"),
    ],
)
def test_bad_package_toml(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(PackageSetError, match=message):
        load_package(write_package(tmp_path, toml))


def test_series_names_a_missing_patch(tmp_path: Path) -> None:
    with pytest.raises(PackageSetError, match=r"gone\.patch is not a file"):
        load_package(write_package(tmp_path, GOOD, {}, "gone.patch\n"))


def test_dep3_headers_required(tmp_path: Path) -> None:
    no_author = PATCH.replace("Author: Someone <someone@example.org>\n", "")
    with pytest.raises(PackageSetError, match="Author"):
        load_package(write_package(tmp_path, GOOD, {"a.patch": no_author}, "a.patch\n"))
    with pytest.raises(PackageSetError, match="Description"):
        parse_dep3("--- a/x\n+++ b/x\n", "x.patch")
    backport = "Subject: Fix a crash\nOrigin: upstream, https://example.org/commit/1\n\n"
    assert parse_dep3(backport, "b.patch")["origin"].startswith("upstream")


def test_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(PackageSetError, match="nosuch: not in the package set"):
        load_package_set(REPO_SET, ["nosuch"])
