"""The REST API's queries on PostgreSQL: the same tests as on SQLite, on a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from . import (
    test_api_apps,
    test_api_channels,
    test_api_hostile,
    test_api_instances,
    test_api_packages,
    test_api_stats,
    test_package_files,
)
from .api_support import Fleet
from .conftest import FakeClock

pytestmark = pytest.mark.postgres


def _with_fleet(test: Callable[..., None]) -> Callable[[TestClient, FakeClock], None]:
    def run(client: TestClient, clock: FakeClock) -> None:
        params = test.__code__.co_varnames[: test.__code__.co_argcount]
        kwargs: dict[str, Any] = {"client": client}
        if "fleet" in params:
            kwargs["fleet"] = Fleet.build(client)
        if "clock" in params:
            kwargs["clock"] = clock
        test(**kwargs)

    return run


def _with_instances(test: Callable[..., None]) -> Callable[[TestClient, FakeClock], None]:
    def run(client: TestClient, clock: FakeClock) -> None:
        fleet = test_api_instances.build_fleet(client, clock)
        params = test.__code__.co_varnames[: test.__code__.co_argcount]
        kwargs: dict[str, Any] = {"client": client, "fleet": fleet}
        if "clock" in params:
            kwargs["clock"] = clock
        test(**kwargs)

    return run


CASES: dict[str, Callable[[TestClient, FakeClock], None]] = {
    "apps-ids": _with_fleet(
        test_api_apps.test_create_with_flatcar_id_is_stored_canonical_and_found_every_way
    ),
    "apps-conflicts": _with_fleet(test_api_apps.test_invalid_and_duplicate_ids),
    "apps-delete": _with_fleet(test_api_apps.test_delete_cascades_and_unknown_is_404),
    "apps-clone": _with_fleet(
        test_api_apps.test_clone_from_copies_channels_without_packages_and_groups
    ),
    "channels-activity": _with_fleet(test_api_channels.test_package_change_is_logged_as_activity),
    "channels-floors": _with_fleet(test_api_channels.test_floors_add_list_update_remove),
    "packages-round-trip": _with_fleet(test_api_packages.test_round_trip_of_every_field),
    "packages-list": _with_fleet(test_api_packages.test_list_is_newest_semver_first_with_search),
    "packages-blacklist": _with_fleet(test_api_packages.test_blacklist_rules),
    "packages-extra-files": _with_fleet(
        test_package_files.test_extra_files_round_trip_and_are_replaced_as_a_whole
    ),
    "packages-extra-files-omaha": _with_fleet(
        test_package_files.test_the_manifest_offers_the_extra_files_after_the_payload
    ),
    "instances-paging": _with_instances(
        test_api_instances.test_paging_reports_the_total_and_walks_every_instance
    ),
    "instances-sorting": _with_instances(test_api_instances.test_sorting),
    "instances-alias": _with_instances(test_api_instances.test_alias_is_shown_and_searched),
    "instances-history": _with_instances(
        test_api_instances.test_status_history_newest_first_with_error_code
    ),
    "stats-breakdown": _with_fleet(
        test_api_stats.test_version_breakdown_counts_instances_seen_in_24h
    ),
    "stats-status": _with_fleet(test_api_stats.test_instances_stats),
    "stats-version-timeline": _with_fleet(test_api_stats.test_version_timeline),
    "stats-status-timeline": _with_fleet(test_api_stats.test_status_timeline),
    "activity": _with_fleet(test_api_stats.test_activity_feed_filters_and_names),
    "unstorable-values": _with_fleet(
        test_api_hostile.test_values_the_database_cannot_store_are_400
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_on_postgres(pg_client: TestClient, clock: FakeClock, case: str) -> None:
    CASES[case](pg_client, clock)


@pytest.mark.parametrize(
    "params",
    [
        {"search": "m00"},
        {"searchFilter": "ip", "searchValue": "10.0.2."},
        {"status": 1},
        {"sortFilter": "1", "sortOrder": "0"},
    ],
)
def test_instance_filters_on_postgres(
    pg_client: TestClient, clock: FakeClock, params: dict[str, object]
) -> None:
    fleet = test_api_instances.build_fleet(pg_client, clock)
    expected = {"search": 10, "searchFilter": 5, "status": 11, "sortFilter": 26}
    total = pg_client.get(
        f"/api/apps/{fleet.app}/groups/{fleet.group}/instances", params={**params, "perpage": 50}
    ).json()["total"]
    assert total == expected[next(iter(params))]
