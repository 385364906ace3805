"""A typed client for the update server's REST API (Nebraska-compatible paths).

    with ApiClient("http://127.0.0.1:8000", token) as api:
        channel = api.find_channel(app, "stable")
        package = api.find_package(app, "3815.2.0", arch=channel.arch)
        api.update_channel(app, channel.id, ChannelUpdate(package_id=package.id))

Every failure (unreachable server, HTTP error, unexpected answer) raises ApiClientError
with a one-line message; the server's own `{"error": ...}` text is passed through.

Methods, paths and response types come from the server's own table
(`wellcar.server.api.endpoints`), so the client cannot drift from the routes; what is
written here is paging, lookups by name and the query parameters each call sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from wellcar.server.api import endpoints as ep
from wellcar.server.api.endpoints import Endpoint
from wellcar.server.api.models import (
    ActivityPage,
    AppCreate,
    Application,
    AppUpdate,
    Channel,
    ChannelCreate,
    ChannelFloor,
    ChannelUpdate,
    FloorPackage,
    Group,
    GroupCreate,
    GroupUpdate,
    Instance,
    InstancesPage,
    InstancesStats,
    Package,
    PackageCreate,
    PackageUpdate,
    StatusHistoryEntry,
    VersionBreakdownEntry,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Body = TypeVar("Body")
PAGE_SIZE = 1000  # the server's maximum perpage


class ApiClientError(Exception):
    """A request failed; `str()` is a one-line explanation, `status` the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else resp.reason_phrase
    return text or f"HTTP {resp.status_code}"


def _looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip("{}"))
    except ValueError:
        return False
    return True


def _body(model: BaseModel) -> Any:
    # Only what the caller set: unset fields keep their server-side value or default.
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


class ApiClient:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = server.strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ApiClientError(f"server URL {server!r} must start with http:// or https://")
        if not token.strip():
            raise ApiClientError("no API token: pass --token or set WELLCAR_TOKEN")
        self.server = base
        self._http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token.strip()}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.request(method, f"/api{path}", params=clean, json=json)
        except httpx.TimeoutException as exc:
            raise ApiClientError(f"{self.server} did not answer in time ({exc})") from exc
        except httpx.HTTPError as exc:
            raise ApiClientError(f"cannot reach {self.server}: {exc}") from exc
        if resp.status_code >= 400:
            raise ApiClientError(
                f"{_error_message(resp)} (HTTP {resp.status_code})", resp.status_code
            )
        return resp

    def _parse(self, resp: httpx.Response, adapter: Callable[[Any], T]) -> T:
        try:
            return adapter(resp.json())
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ApiClientError(f"unexpected answer from {self.server}: {first}") from exc

    def _call(
        self,
        endpoint: Endpoint[Body],
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        **segments: str,
    ) -> Body:
        """Call an endpoint that answers with a body, parsed as the server declares it."""
        if endpoint.response is None:
            raise TypeError(f"{endpoint.method} {endpoint.path} answers without a body: use _send")
        resp = self._request(endpoint.method, endpoint.url(**segments), params=params, json=json)
        return self._parse(resp, TypeAdapter(endpoint.response).validate_python)

    def _send(self, endpoint: Endpoint[None], **segments: str) -> None:
        """Call an endpoint that answers 204 No Content."""
        self._request(endpoint.method, endpoint.url(**segments))

    def _all_pages(self, fetch: Callable[[int], tuple[int, list[M]]]) -> list[M]:
        out: list[M] = []
        page = 1
        while True:
            total, items = fetch(page)
            out.extend(items)
            if not items or len(out) >= total:
                return out
            page += 1

    # -------------------------------------------------------------- applications

    def list_apps(self) -> list[Application]:
        def fetch(page: int) -> tuple[int, list[Application]]:
            p = self._call(ep.LIST_APPS, params={"page": page, "perpage": PAGE_SIZE})
            return p.totalCount, p.applications

        return self._all_pages(fetch)

    def get_app(self, app: str) -> Application:
        return self._call(ep.GET_APP, app_id=app)

    def create_app(self, body: AppCreate) -> Application:
        return self._call(ep.CREATE_APP, json=_body(body))

    def update_app(self, app: str, body: AppUpdate) -> Application:
        return self._call(ep.UPDATE_APP, json=_body(body), app_id=app)

    def delete_app(self, app: str) -> None:
        self._send(ep.DELETE_APP, app_id=app)

    # -------------------------------------------------------------------- groups

    def list_groups(self, app: str) -> list[Group]:
        def fetch(page: int) -> tuple[int, list[Group]]:
            params = {"page": page, "perpage": PAGE_SIZE}
            p = self._call(ep.LIST_GROUPS, params=params, app_id=app)
            return p.totalCount, p.groups

        return self._all_pages(fetch)

    def get_group(self, app: str, group_id: str) -> Group:
        return self._call(ep.GET_GROUP, app_id=app, group_id=group_id)

    def create_group(self, app: str, body: GroupCreate) -> Group:
        return self._call(ep.CREATE_GROUP, json=_body(body), app_id=app)

    def update_group(self, app: str, group_id: str, body: GroupUpdate) -> Group:
        return self._call(ep.UPDATE_GROUP, json=_body(body), app_id=app, group_id=group_id)

    def delete_group(self, app: str, group_id: str) -> None:
        self._send(ep.DELETE_GROUP, app_id=app, group_id=group_id)

    def find_group(self, app: str, ref: str) -> Group:
        """A group by id or by name (case-insensitive)."""
        groups = self.list_groups(app)
        for group in groups:
            if group.id == ref.strip().lower():
                return group
        named = [g for g in groups if g.name.lower() == ref.strip().lower()]
        if not named:
            raise ApiClientError(f"no group {ref!r} in application {app}")
        return named[0]

    # ------------------------------------------------------------------ channels

    def list_channels(self, app: str) -> list[Channel]:
        def fetch(page: int) -> tuple[int, list[Channel]]:
            params = {"page": page, "perpage": PAGE_SIZE}
            p = self._call(ep.LIST_CHANNELS, params=params, app_id=app)
            return p.totalCount, p.channels

        return self._all_pages(fetch)

    def get_channel(self, app: str, channel_id: str) -> Channel:
        return self._call(ep.GET_CHANNEL, app_id=app, channel_id=channel_id)

    def create_channel(self, app: str, body: ChannelCreate) -> Channel:
        return self._call(ep.CREATE_CHANNEL, json=_body(body), app_id=app)

    def update_channel(self, app: str, channel_id: str, body: ChannelUpdate) -> Channel:
        return self._call(ep.UPDATE_CHANNEL, json=_body(body), app_id=app, channel_id=channel_id)

    def delete_channel(self, app: str, channel_id: str) -> None:
        self._send(ep.DELETE_CHANNEL, app_id=app, channel_id=channel_id)

    def find_channel(self, app: str, ref: str, arch: int | None = None) -> Channel:
        """A channel by id, or by name (and arch when several arches share the name)."""
        channels = self.list_channels(app)
        for channel in channels:
            if channel.id == ref.strip().lower():
                return channel
        named = [c for c in channels if c.name == ref.strip()]
        if arch is not None:
            named = [c for c in named if c.arch == arch]
        if not named:
            where = f" for arch {arch}" if arch is not None else ""
            raise ApiClientError(f"no channel {ref!r}{where} in application {app}")
        if len(named) > 1:
            arches = ", ".join(str(c.arch) for c in named)
            raise ApiClientError(
                f"several channels are named {ref!r} (arches {arches}): pass --arch or the id"
            )
        return named[0]

    # ------------------------------------------------------------------ packages

    def list_packages(self, app: str, search_version: str | None = None) -> list[Package]:
        def fetch(page: int) -> tuple[int, list[Package]]:
            params = {"page": page, "perpage": PAGE_SIZE, "searchVersion": search_version}
            p = self._call(ep.LIST_PACKAGES, params=params, app_id=app)
            return p.totalCount, p.packages

        return self._all_pages(fetch)

    def get_package(self, app: str, package_id: str) -> Package:
        return self._call(ep.GET_PACKAGE, app_id=app, package_id=package_id)

    def create_package(self, app: str, body: PackageCreate) -> Package:
        return self._call(ep.CREATE_PACKAGE, json=_body(body), app_id=app)

    def update_package(self, app: str, package_id: str, body: PackageUpdate) -> Package:
        return self._call(ep.UPDATE_PACKAGE, json=_body(body), app_id=app, package_id=package_id)

    def delete_package(self, app: str, package_id: str) -> None:
        self._send(ep.DELETE_PACKAGE, app_id=app, package_id=package_id)

    def find_package(self, app: str, ref: str, arch: int | None = None) -> Package:
        """A package by id, or by version for an arch (its own arch preferred over "all")."""
        wanted = ref.strip()
        if _looks_like_uuid(wanted):
            try:
                return self.get_package(app, wanted)
            except ApiClientError as exc:
                if exc.status != 404:
                    raise
        by_version = [p for p in self.list_packages(app, wanted) if p.version == wanted]
        if not by_version:
            raise ApiClientError(f"no package {ref!r} in application {app}")
        if arch is not None:
            exact = [p for p in by_version if p.arch == arch]
            by_version = exact or [p for p in by_version if p.arch == 0]
            if not by_version:
                raise ApiClientError(f"no package {ref!r} for arch {arch} in application {app}")
        if len(by_version) > 1:
            arches = ", ".join(str(p.arch) for p in by_version)
            raise ApiClientError(
                f"several packages have version {ref!r} (arches {arches}): pass --arch or the id"
            )
        return by_version[0]

    # -------------------------------------------------------------------- floors

    def list_floors(self, channel_id: str) -> list[FloorPackage]:
        def fetch(page: int) -> tuple[int, list[FloorPackage]]:
            params = {"page": page, "perpage": PAGE_SIZE}
            p = self._call(ep.LIST_FLOORS, params=params, channel_id=channel_id)
            return p.total_count, p.packages

        return self._all_pages(fetch)

    def add_floor(self, channel_id: str, package_id: str, reason: str | None) -> ChannelFloor:
        return self._call(
            ep.ADD_FLOOR,
            json={"floor_reason": reason},
            channel_id=channel_id,
            package_id=package_id,
        )

    def remove_floor(self, channel_id: str, package_id: str) -> None:
        self._send(ep.REMOVE_FLOOR, channel_id=channel_id, package_id=package_id)

    # ----------------------------------------------------------------- instances

    def list_instances(
        self,
        app: str,
        group_id: str,
        *,
        status: int = 0,
        version: str | None = None,
        search: str | None = None,
        sort: str | None = None,
        descending: bool = True,
        duration: str = "30d",
        page: int = 1,
        perpage: int = 10,
    ) -> InstancesPage:
        params: dict[str, Any] = {
            "status": status or None,
            "version": version,
            "searchFilter": "All" if search else None,
            "searchValue": search,
            "sortFilter": sort,
            "sortOrder": "1" if descending else "0",
            "duration": duration,
            "page": page,
            "perpage": perpage,
        }
        return self._call(ep.LIST_INSTANCES, params=params, app_id=app, group_id=group_id)

    def count_instances(self, app: str, group_id: str, duration: str = "30d") -> int:
        params = {"duration": duration}
        return self._call(ep.COUNT_INSTANCES, params=params, app_id=app, group_id=group_id).count

    def get_instance(self, app: str, instance_id: str) -> Instance:
        return self._call(ep.GET_INSTANCE, app_id=app, instance_id=instance_id)

    def status_history(
        self, app: str, group_id: str, instance_id: str, limit: int = 20
    ) -> list[StatusHistoryEntry]:
        return self._call(
            ep.STATUS_HISTORY,
            params={"limit": limit},
            app_id=app,
            group_id=group_id,
            instance_id=instance_id,
        )

    def set_instance_alias(self, instance_id: str, alias: str) -> Instance:
        return self._call(ep.UPDATE_INSTANCE, json={"alias": alias}, instance_id=instance_id)

    # ------------------------------------------------------------ activity, stats

    def list_activity(
        self,
        *,
        app: str | None = None,
        group_id: str | None = None,
        channel_id: str | None = None,
        instance_id: str | None = None,
        version: str | None = None,
        severity: int | None = None,
        start: str | None = None,
        end: str | None = None,
        page: int = 1,
        perpage: int = 10,
    ) -> ActivityPage:
        params: dict[str, Any] = {
            "appIDorProductID": app,
            "groupID": group_id,
            "channelID": channel_id,
            "instanceID": instance_id,
            "version": version,
            "severity": severity,
            "start": start,
            "end": end,
            "page": page,
            "perpage": perpage,
        }
        return self._call(ep.LIST_ACTIVITY, params=params)

    def version_breakdown(self, app: str, group_id: str) -> list[VersionBreakdownEntry]:
        return self._call(ep.VERSION_BREAKDOWN, app_id=app, group_id=group_id)

    def instances_stats(self, app: str, group_id: str, duration: str = "1d") -> InstancesStats:
        params = {"duration": duration}
        return self._call(ep.INSTANCES_STATS, params=params, app_id=app, group_id=group_id)
