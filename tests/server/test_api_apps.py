"""/api/apps: ids, product ids, auth, paging, errors and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .api_support import FLATCAR, FLATCAR_ID, Fleet, error_of, ok
from .conftest import READ_TOKEN, FakeClock


def test_create_with_flatcar_id_is_stored_canonical_and_found_every_way(client: TestClient) -> None:
    app = ok(
        client.post(
            "/api/apps",
            json={"id": FLATCAR_ID.upper(), "name": "Flatcar", "product_id": "io.flatcar.os"},
        )
    )
    assert app["id"] == FLATCAR
    assert app["product_id"] == "io.flatcar.os"
    assert app["groups"] == [] and app["channels"] == [] and app["instances"] == {"count": 0}
    assert app["created_ts"] == "2026-11-18T10:00:00Z"
    for ref in (FLATCAR, FLATCAR_ID, FLATCAR_ID.upper(), "io.flatcar.os", "IO.FLATCAR.OS"):
        assert ok(client.get(f"/api/apps/{ref}"))["id"] == FLATCAR, ref


def test_generated_id_and_defaults(client: TestClient) -> None:
    app = ok(client.post("/api/apps", json={"name": "Wellcar"}))
    assert len(app["id"]) == 36 and app["id"] == app["id"].lower()
    assert app["description"] == "" and app["product_id"] is None


def test_invalid_and_duplicate_ids(client: TestClient) -> None:
    assert "id" in error_of(client.post("/api/apps", json={"id": "nope", "name": "x"}), 400)
    ok(client.post("/api/apps", json={"id": FLATCAR, "name": "a", "product_id": "p.one"}))
    assert "already exists" in error_of(
        client.post("/api/apps", json={"id": FLATCAR_ID, "name": "b"}), 409
    )
    assert "product_id" in error_of(
        client.post("/api/apps", json={"name": "c", "product_id": "P.ONE"}), 409
    )
    assert "UUID" in error_of(
        client.post("/api/apps", json={"name": "d", "product_id": FLATCAR}), 400
    )


def test_bad_bodies_are_400_naming_the_field(client: TestClient) -> None:
    assert "name" in error_of(client.post("/api/apps", json={}), 400)
    assert "name" in error_of(client.post("/api/apps", json={"name": "   "}), 400)
    assert "name" in error_of(client.post("/api/apps", json={"name": 5}), 400)
    msg = error_of(
        client.post("/api/apps", content=b"{nope", headers={"Content-Type": "application/json"}),
        400,
    )
    assert "JSON" in msg
    assert "request body" in error_of(client.post("/api/apps", json=[1, 2]), 400)
    # the server keeps serving
    ok(client.post("/api/apps", json={"name": "fine"}))


def test_update_keeps_unsent_fields_and_clears_product_id(client: TestClient) -> None:
    app = ok(client.post("/api/apps", json={"name": "a", "description": "d", "product_id": "p"}))
    upd = ok(client.put(f"/api/apps/{app['id']}", json={"name": "b"}))
    assert (upd["name"], upd["description"], upd["product_id"]) == ("b", "d", "p")
    upd = ok(client.put("/api/apps/p", json={"product_id": ""}))
    assert upd["product_id"] is None and upd["name"] == "b"
    other = ok(client.post("/api/apps", json={"name": "o", "product_id": "taken"}))
    assert other["product_id"] == "taken"
    error_of(client.put(f"/api/apps/{app['id']}", json={"product_id": "taken"}), 409)


def test_delete_cascades_and_unknown_is_404(client: TestClient) -> None:
    fleet = Fleet.build(client)
    assert client.delete(f"/api/apps/{fleet.app}").status_code == 204
    error_of(client.get(f"/api/apps/{fleet.app}"), 404)
    error_of(client.get(f"/api/apps/{fleet.app}/groups/{fleet.group}"), 404)
    error_of(client.delete(f"/api/apps/{fleet.app}"), 404)
    error_of(client.get("/api/apps/no-such-product"), 404)


def test_list_pages_newest_first_with_total(client: TestClient, clock: FakeClock) -> None:
    for i in range(12):
        ok(client.post("/api/apps", json={"name": f"app{i}"}))
        clock.advance(minutes=1)
    page1 = ok(client.get("/api/apps"))
    assert page1["totalCount"] == 12 and page1["count"] == 10
    assert [a["name"] for a in page1["applications"]][:2] == ["app11", "app10"]
    page2 = ok(client.get("/api/apps", params={"page": 2, "perpage": 10}))
    assert page2["count"] == 2 and [a["name"] for a in page2["applications"]] == ["app1", "app0"]
    assert ok(client.get("/api/apps", params={"perpage": 5}))["count"] == 5
    assert "perpage" in error_of(client.get("/api/apps", params={"perpage": "x"}), 400)
    error_of(client.get("/api/apps", params={"page": -1}), 400)


def test_app_embeds_groups_channels_and_active_instance_count(client: TestClient) -> None:
    fleet = Fleet.build(client)
    app = ok(client.get(f"/api/apps/{fleet.app}"))
    assert [g["id"] for g in app["groups"]] == [fleet.group]
    assert app["groups"][0]["channel"]["package"]["version"] == "2.0.0"
    assert [c["name"] for c in app["channels"]] == ["stable"]


def test_clone_from_copies_channels_without_packages_and_groups(client: TestClient) -> None:
    """Nebraska's AddAppCloning: channels (package null) and groups (on the copied
    channels, updates enabled); an empty clone_from clones nothing."""
    fleet = Fleet.build(client)
    group = {"name": "Stable", "channel_id": fleet.channel, "track": "stable",
             "policy_updates_enabled": False, "policy_max_updates_per_period": 7}  # fmt: skip
    ok(client.put(f"/api/apps/{fleet.app}/groups/{fleet.group}", json=group))
    ok(client.post(f"/api/apps/{fleet.app}/groups", json={"name": "Loose", "track": "loose"}))
    clone = ok(client.post(f"/api/apps?clone_from={fleet.app}", json={"name": "Copy"}))
    assert [c["name"] for c in clone["channels"]] == ["stable"]
    channel = clone["channels"][0]
    assert channel["id"] != fleet.channel and channel["package_id"] is None
    groups = {g["name"]: g for g in clone["groups"]}
    assert sorted(groups) == ["Loose", "Stable"]
    stable = groups["Stable"]
    assert stable["id"] != fleet.group and stable["channel_id"] == channel["id"]
    assert stable["policy_updates_enabled"] is True  # as Nebraska: a clone starts enabled
    assert stable["policy_max_updates_per_period"] == 7 and stable["track"] == "stable"
    assert groups["Loose"]["channel_id"] is None
    empty = ok(client.post("/api/apps?clone_from=", json={"name": "Plain"}))
    assert empty["channels"] is None or empty["channels"] == []


def test_clone_from_an_unknown_app_creates_nothing(client: TestClient) -> None:
    before = ok(client.get("/api/apps"))["totalCount"]
    resp = client.post("/api/apps?clone_from=no-such-app", json={"name": "Copy"})
    assert "clone_from" in error_of(resp, 400)
    assert ok(client.get("/api/apps"))["totalCount"] == before


def test_auth_401_without_token_403_with_read_token(client: TestClient) -> None:
    fleet = Fleet.build(client)
    anon = {"Authorization": ""}
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    wrong = {"Authorization": "Bearer wrong"}
    assert "token" in error_of(client.get("/api/apps", headers=anon), 401)
    error_of(client.get("/api/apps", headers=wrong), 401)
    error_of(client.post("/api/apps", json={"name": "x"}, headers=anon), 401)
    assert ok(client.get("/api/apps", headers=reader))["totalCount"] == 1
    ok(client.get(f"/api/apps/{fleet.app}/groups/{fleet.group}/instances", headers=reader))
    writes = [
        ("post", "/api/apps", {"name": "x"}),
        ("put", f"/api/apps/{fleet.app}", {"name": "x"}),
        ("delete", f"/api/apps/{fleet.app}", None),
        ("post", f"/api/apps/{fleet.app}/groups", {"name": "g"}),
        ("put", f"/api/apps/{fleet.app}/channels/{fleet.channel}", {"package_id": fleet.old_pkg}),
        ("delete", f"/api/apps/{fleet.app}/packages/{fleet.old_pkg}", None),
        ("post", f"/api/channels/{fleet.channel}/floors/{fleet.old_pkg}", {}),
        ("put", "/api/instances/m1", {"alias": "a"}),
    ]
    for method, path, body in writes:
        kwargs = {"json": body} if body is not None else {}
        resp = client.request(method, path, headers=reader, **kwargs)
        assert "read-only" in error_of(resp, 403), path
    # nothing changed
    assert ok(client.get(f"/api/apps/{fleet.app}/channels/{fleet.channel}"))["package_id"] == (
        fleet.pkg
    )


def test_openapi_lists_the_api_with_schemas(client: TestClient) -> None:
    spec = ok(client.get("/openapi.json"))
    paths = spec["paths"]
    expected = {
        "/api/apps": {"get", "post"},
        "/api/apps/{app_id}": {"get", "put", "delete"},
        "/api/apps/{app_id}/groups": {"get", "post"},
        "/api/apps/{app_id}/groups/{group_id}": {"get", "put", "delete"},
        "/api/apps/{app_id}/channels": {"get", "post"},
        "/api/apps/{app_id}/channels/{channel_id}": {"get", "put", "delete"},
        "/api/apps/{app_id}/packages": {"get", "post"},
        "/api/apps/{app_id}/packages/{package_id}": {"get", "put", "delete"},
        "/api/channels/{channel_id}/floors": {"get"},
        "/api/channels/{channel_id}/floors/{package_id}": {"post", "put", "delete"},
        "/api/apps/{app_id}/groups/{group_id}/instances": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/instancescount": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/instances/{instance_id}": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/instances/{instance_id}/status_history": {"get"},
        "/api/instances/{instance_id}": {"put"},
        "/api/activity": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/version_breakdown": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/version_timeline": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/status_timeline": {"get"},
        "/api/apps/{app_id}/groups/{group_id}/instances_stats": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path
    schemas = spec["components"]["schemas"]
    for name in ("Application", "Group", "Channel", "Package", "FlatcarAction", "Instance",
                 "InstanceApplication", "Activity", "InstancesStats", "ErrorBody"):  # fmt: skip
        assert name in schemas, name
    assert "class" in schemas["Activity"]["properties"]
    assert "totalCount" in schemas["AppsPage"]["properties"]
    for path_item in paths.values():
        for operation in path_item.values():
            assert "422" not in operation["responses"]  # bad input is a 400
    post_app = paths["/api/apps"]["post"]["responses"]
    assert {"200", "400", "401", "403", "409"} <= set(post_app)
    get_app = paths["/api/apps/{app_id}"]["get"]["responses"]["200"]
    assert get_app["content"]["application/json"]["schema"]["$ref"].endswith("/Application")
