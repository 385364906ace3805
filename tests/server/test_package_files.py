"""A package's extra files (Nebraska's `extra_files`): kept and replaced through REST, and
offered in the Omaha manifest after the package's own payload, as Nebraska offers them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from wellcar.server.db import schema as t

from .api_support import Fleet, create_package, error_of, ok
from .omaha_client import Node, post

FILES: list[dict[str, Any]] = [
    {"name": "oem-azure.gz", "size": "12345", "hash": "c2hhMQ==", "hash256": "abcd"},
    {"name": "docker.raw", "size": 99, "hash": None, "hash256": None},
]


@pytest.fixture
def fleet(client: TestClient) -> Fleet:
    return Fleet.build(client)


def url(fleet: Fleet, package: str = "") -> str:
    return f"/api/apps/{fleet.app}/packages" + (f"/{package}" if package else "")


def test_extra_files_round_trip_and_are_replaced_as_a_whole(
    client: TestClient, fleet: Fleet
) -> None:
    assert ok(client.get(url(fleet, fleet.pkg)))["extra_files"] is None  # none: null
    package = create_package(client, fleet.app, "3.0.0", extra_files=FILES)
    got = ok(client.get(url(fleet, package)))["extra_files"]
    assert [(f["name"], f["size"], f["hash"], f["hash256"]) for f in got] == [
        ("oem-azure.gz", "12345", "c2hhMQ==", "abcd"),
        ("docker.raw", "99", None, None),
    ]
    assert all(f["package_id"] == package and f["id"] for f in got)

    # A change that leaves extra_files out keeps them.
    ok(client.put(url(fleet, package), json={"description": "with OEM payloads"}))
    assert [f["id"] for f in ok(client.get(url(fleet, package)))["extra_files"]] == [
        f["id"] for f in got
    ]
    # Sent, the list replaces the old one (new rows, as Nebraska).
    replaced = ok(client.put(url(fleet, package), json={"extra_files": [{"name": "sysext.raw"}]}))
    assert [f["name"] for f in replaced["extra_files"]] == ["sysext.raw"]
    assert replaced["extra_files"][0]["id"] not in {f["id"] for f in got}
    assert ok(client.put(url(fleet, package), json={"extra_files": []}))["extra_files"] is None


def test_a_bad_file_size_is_refused_and_nothing_is_kept(client: TestClient, fleet: Fleet) -> None:
    body = {"version": "3.0.0", "url": "https://example.test/3.0.0/",
            "extra_files": [{"name": "x", "size": "lots"}]}  # fmt: skip
    assert "whole number of bytes" in error_of(client.post(url(fleet), json=body), 400)
    with fleet.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.package_file)).scalar_one() == 0


def test_the_manifest_offers_the_extra_files_after_the_payload(
    client: TestClient, fleet: Fleet
) -> None:
    package = create_package(client, fleet.app, "3.0.0", extra_files=FILES)
    ok(client.put(f"/api/apps/{fleet.app}/channels/{fleet.channel}", json={"package_id": package}))
    answer = post(client, Node("node-1", "2.0.0").check_request())
    assert answer.updatecheck is not None and answer.updatecheck.status == "ok"
    (manifest,) = answer.updatecheck.manifests
    main, oem, docker = manifest.packages
    assert (main.name, main.required) == ("wellcar_update.gz", True)
    assert (oem.name, oem.size, oem.hash, oem.hash_sha256, oem.required) == (
        "oem-azure.gz", 12345, "c2hhMQ==", "abcd", False
    )  # fmt: skip
    assert (docker.name, docker.size, docker.hash_sha256) == ("docker.raw", 99, None)
    # Deleting the package deletes its files.
    ok(
        client.put(
            f"/api/apps/{fleet.app}/channels/{fleet.channel}", json={"package_id": fleet.pkg}
        )
    )
    assert client.delete(url(fleet, package)).status_code == 204
    with fleet.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.package_file)).scalar_one() == 0
