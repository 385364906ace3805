"""The REST routes and the client's table are one declaration (server.api.endpoints)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from wellcar.server.api import REST_MODULES
from wellcar.server.api import endpoints as ep


def _table() -> dict[tuple[str, str], ep.Endpoint[object]]:
    return {(e.method, e.path): e for e in vars(ep).values() if isinstance(e, ep.Endpoint)}


def test_every_rest_route_is_declared_in_the_table_and_every_entry_is_served() -> None:
    served = {
        (method, route.path): route
        for module in REST_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    table = _table()
    assert set(served) == set(table)
    for key, endpoint in table.items():
        assert served[key].response_model == endpoint.response, key
        assert served[key].status_code == (204 if endpoint.response is None else None), key


def test_url_fills_placeholders_percent_encoded() -> None:
    url = ep.GET_GROUP.url(app_id=" io.flatcar ", group_id="a/b c")
    assert url == "/apps/io.flatcar/groups/a%2Fb%20c"
