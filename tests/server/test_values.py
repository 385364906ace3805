"""Parsing of the values groups and packages carry: intervals, office hours, versions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from wellcar.server.errors import InvalidInput
from wellcar.server.intervals import parse_interval
from wellcar.server.office_hours import load_timezone, parse_office_hours
from wellcar.server.semver import is_valid, less_than, parse_semver


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15 minutes", timedelta(minutes=15)),
        ("1 minutes", timedelta(minutes=1)),
        ("1 hours", timedelta(hours=1)),
        ("60 minutes", timedelta(hours=1)),
        ("1 hour 30 minutes", timedelta(minutes=90)),
        ("01:30:00", timedelta(minutes=90)),
        ("2 days", timedelta(days=2)),
        ("  45 Minutes ", timedelta(minutes=45)),
    ],
)
def test_intervals(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fifteen minutes",
        "15 fortnights",
        "0 minutes",
        "15",
        "minutes",
        "5 minutes later",
        "9999 weeks",
    ],
)
def test_bad_intervals(text: str) -> None:
    with pytest.raises(InvalidInput, match="interval"):
        parse_interval(text)


def test_office_hours_spec() -> None:
    hours = parse_office_hours("mon,wed,fri 08:30-12:00")
    assert hours.days == frozenset({0, 2, 4})
    assert (hours.start_minute, hours.end_minute) == (510, 720)
    assert parse_office_hours("fri-mon 00:00-24:00").days == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize(
    "spec",
    [
        "weekdays 9-5",
        "mon-fri 09:00",
        "mon-xyz 09:00-17:00",
        "mon 25:00-26:00",
        "mon 09:00-09:00",
        "mon 09:61-10:00",
    ],
)
def test_bad_office_hours(spec: str) -> None:
    with pytest.raises(InvalidInput):
        parse_office_hours(spec)


def test_semver_order() -> None:
    assert less_than("4459.2.1", "4459.2.2")
    assert less_than("4459.2.9", "4459.10.0")
    assert less_than("1.0.0-alpha", "1.0.0")
    assert less_than("1.0.0-alpha.1", "1.0.0-alpha.beta")
    assert less_than("1.0.0-2", "1.0.0-10")
    assert not less_than("1.0.0+build5", "1.0.0")
    # An unparsable version counts as 0.0.0 (Nebraska ignores the parse error).
    assert less_than("garbage", "0.0.1")
    assert parse_semver("4459.2.1") is not None


@pytest.mark.parametrize("text", ["1.0", "01.2.3", "1.2.3.4", "", "v1.2.3", "1.2.3-", "9" * 200])
def test_semver_invalid(text: str) -> None:
    assert not is_valid(text)


def test_absurd_values_are_input_errors() -> None:
    with pytest.raises(InvalidInput, match="longer than a year"):
        parse_interval("9999999999999 minutes")
    with pytest.raises(InvalidInput, match="unknown time zone"):
        load_timezone("Europe/" + "x" * 5000)
