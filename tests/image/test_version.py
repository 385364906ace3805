from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wellcar.image.version import EPOCH, OsVersion, parse_os_version, version_for


def test_major_is_days_since_2013_07_01() -> None:
    assert version_for(datetime(2026, 8, 21, 21, 0, tzinfo=UTC)).major == 4799
    assert version_for(datetime(2013, 7, 1, tzinfo=UTC)) == OsVersion(0, 0, 0)


@pytest.mark.parametrize(
    ("channel", "minor"), [("alpha", 0), ("beta", 1), ("stable", 2), ("lts", 3)]
)
def test_minor_is_the_channel(channel: str, minor: int) -> None:
    version = version_for(datetime(2026, 8, 21, tzinfo=UTC), channel, 5)
    assert (version.minor, version.patch, version.channel) == (minor, 5, channel)
    assert str(version) == f"4799.{minor}.5"


def test_parse_and_order() -> None:
    assert parse_os_version("4593.2.5") == OsVersion(4593, 2, 5)
    assert parse_os_version("4593.2.10") > parse_os_version("4593.2.9")
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        parse_os_version("4593.2")
    with pytest.raises(ValueError, match="unknown channel"):
        version_for(datetime(2026, 8, 21, tzinfo=UTC), "edge")


def test_default_epoch_is_the_majors_day() -> None:
    assert OsVersion(4799, 0, 0).day_epoch == EPOCH + 4799 * 86400
    assert datetime.fromtimestamp(OsVersion(4799, 0, 0).day_epoch, UTC).date().isoformat() == (
        "2026-08-21"
    )
