"""`shouldExist: false` on users and groups: removed with Debian's userdel/groupdel against
the target root, nothing done when absent, a primary group refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.ignition.errors import ConflictError

from .test_apply import apply, v34


def names(path: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in path.read_text().splitlines()]


def test_users_and_groups_that_should_not_exist_are_removed(root: Path) -> None:
    apply(root, v34(passwd={"users": [{"name": "olduser"}], "groups": [{"name": "oldgroup"}]}))
    assert "olduser" in names(root / "etc/passwd") and "oldgroup" in names(root / "etc/group")
    gone = {"shouldExist": False}
    apply(root, v34(passwd={
        "users": [{"name": "olduser", **gone}, {"name": "ghost", **gone}],
        # olduser's own group went with the user (userdel): asking again is no error.
        "groups": [{"name": "oldgroup", **gone}, {"name": "olduser", **gone}],
    }))  # fmt: skip
    for table in ("passwd", "shadow"):
        assert "olduser" not in names(root / "etc" / table)
    for table in ("group", "gshadow"):
        assert not {"oldgroup", "olduser"} & set(names(root / "etc" / table))
    assert (root / "etc/shadow").stat().st_gid == 42  # still root:shadow after the tools
    assert (root / "home/olduser").is_dir()  # Ignition's userdel keeps the home


def test_a_users_primary_group_is_not_removed(root: Path) -> None:
    before = (root / "etc/group").read_text()
    with pytest.raises(ConflictError, match="primary group of core"):
        apply(root, v34(passwd={"groups": [{"name": "core", "shouldExist": False}]}))
    assert (root / "etc/group").read_text() == before
