"""Arbitrary JSON and query strings never make the REST API answer 500."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .api_support import Fleet, error_of, ok

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    "id", "name", "description", "product_id", "channel_id", "track", "policy_updates_enabled",
    "policy_safe_mode", "policy_office_hours", "policy_timezone", "policy_period_interval",
    "policy_max_updates_per_period", "policy_update_timeout", "policy_office_hours_spec", "color",
    "arch", "package_id", "type", "version", "url", "filename", "size", "hash",
    "channels_blacklist", "flatcar_action", "floor_reason", "alias",
]  # fmt: skip
bodies = st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6))
ALLOWED = {200, 204, 400, 404, 409}


def _targets(f: Fleet) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/apps"),
        ("PUT", f"/api/apps/{f.app}"),
        ("POST", f"/api/apps/{f.app}/groups"),
        ("PUT", f"/api/apps/{f.app}/groups/{f.group}"),
        ("POST", f"/api/apps/{f.app}/channels"),
        ("PUT", f"/api/apps/{f.app}/channels/{f.channel}"),
        ("POST", f"/api/apps/{f.app}/packages"),
        ("PUT", f"/api/apps/{f.app}/packages/{f.old_pkg}"),
        ("POST", f"/api/channels/{f.channel}/floors/{f.old_pkg}"),
        ("PUT", "/api/instances/nope"),
    ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(target=st.integers(0, 9), body=bodies)
def test_arbitrary_bodies(client: TestClient, target: int, body: Any) -> None:
    if not hasattr(client, "fleet"):
        client.fleet = Fleet.build(client)  # type: ignore[attr-defined]
    method, path = _targets(client.fleet)[target]  # type: ignore[attr-defined]
    content = json.dumps(body)  # NaN and Infinity included, as some clients send them
    resp = client.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code in ALLOWED, (method, path, body, resp.text)
    if resp.status_code >= 400:
        assert set(resp.json()) == {"error"}
    ok(client.get("/api/apps"))


QUERY_KEYS = ["page", "perpage", "status", "sortFilter", "sortOrder", "searchFilter",
              "searchValue", "search", "version", "duration", "severity", "start", "end",
              "limit", "app", "groupID", "searchVersion"]  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.integers(0, 6),
    params=st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=12), max_size=4),
)
def test_arbitrary_query_strings(client: TestClient, target: int, params: dict[str, str]) -> None:
    if not hasattr(client, "fleet"):
        client.fleet = Fleet.build(client)  # type: ignore[attr-defined]
    f: Fleet = client.fleet  # type: ignore[attr-defined]
    group = f"/api/apps/{f.app}/groups/{f.group}"
    paths = [
        f"{group}/instances", f"{group}/version_timeline", f"{group}/status_timeline",
        f"{group}/instances_stats", "/api/activity", f"/api/apps/{f.app}/packages",
        f"{group}/instances/x/status_history",
    ]  # fmt: skip
    resp = client.get(paths[target], params=params)
    assert resp.status_code in {200, 400, 404}, (paths[target], params, resp.text)


EDGE_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("packages", "POST", {"version": "1.0.0", "url": "u", "size": 2**70}, "size"),
    ("packages", "POST", {"version": "1.0.0", "url": "u", "size": "9" * 30}, "size"),
    ("packages", "POST", {"version": "1.0.0", "url": "u", "description": "a\x00b"}, "NUL"),
    ("packages", "POST", {"version": "1.0.0", "url": "u", "hash": "x" * 201}, "hash"),
    ("packages", "POST", {"version": "1." + "9" * 200 + ".0", "url": "u"}, "version"),
    ("groups", "POST", {"name": "g", "policy_max_updates_per_period": 2**40}, "policy_max"),
    ("groups", "POST", {"name": "g", "policy_timezone": "x" * 300}, "policy_timezone"),
    ("groups", "POST", {"name": "g", "policy_timezone": "x" * 99}, "policy_timezone"),
    ("groups", "POST", {"name": "g", "policy_period_interval": "9999999999999 minutes"}, "period"),
    ("groups", "POST", {"name": "g", "track": "t" * 101}, "track"),
    ("channels", "POST", {"name": "c" * 101}, "name"),
    ("apps", "POST", {"name": "a", "product_id": "p" * 201}, "product_id"),
]


def test_values_the_database_cannot_store_are_400(client: TestClient) -> None:
    fleet = Fleet.build(client)
    for kind, method, body, field in EDGE_CASES:
        path = "/api/apps" if kind == "apps" else f"/api/apps/{fleet.app}/{kind}"
        message = error_of(client.request(method, path, json=body), 400)
        assert field in message, (body, message)
    # path and query values too
    base = f"/api/apps/{fleet.app}/groups/{fleet.group}"
    assert client.get(f"{base}/instances", params={"search": "a\x00b"}).status_code in (200, 400)
    error_of(client.get(f"{base}/instances/{'x' * 300}"), 404)
    error_of(client.get("/api/apps", params={"page": 2**70}), 400)
