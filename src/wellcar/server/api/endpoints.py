"""The REST API's endpoints, declared once: method, path and response body of each.

The routers register their handlers from this table (`register`) and `wellcar api`'s
client (`wellcar.cli.api_client`) calls it, so a path or a response type cannot differ
between the two. Request bodies are the models in `models.py`; query parameters are
declared by the handlers and sent by the client's methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from fastapi import APIRouter

from .errors import ERROR_RESPONSES, WRITE_ERROR_RESPONSES
from .models import (
    ActivityPage,
    Application,
    AppsPage,
    Channel,
    ChannelFloor,
    ChannelsPage,
    FloorChannels,
    FloorsPage,
    Group,
    GroupsPage,
    Instance,
    InstanceCount,
    InstancesPage,
    InstancesStats,
    Package,
    PackagesPage,
    StatusHistoryEntry,
    StatusTimeline,
    VersionBreakdownEntry,
    VersionTimeline,
)

Body = TypeVar("Body")
Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[Body]):
    method: str
    path: str  # under /api, with {placeholders} named as the handlers' parameters
    response: type[Body] | None  # None: 204 No Content

    def url(self, **segments: str) -> str:
        """The path with each placeholder filled in (stripped, percent-encoded)."""
        return self.path.format(**{k: quote(v.strip(), safe="") for k, v in segments.items()})


def register(router: APIRouter, endpoint: Endpoint[Any]) -> Callable[[Handler], Handler]:
    """Decorator: serve the handler at the endpoint (reads and writes document their errors)."""
    return router.api_route(
        endpoint.path,
        methods=[endpoint.method],
        response_model=endpoint.response,
        status_code=204 if endpoint.response is None else None,
        responses=ERROR_RESPONSES if endpoint.method == "GET" else WRITE_ERROR_RESPONSES,
    )


APP = "/apps/{app_id}"
GROUP = f"{APP}/groups/{{group_id}}"
CHANNEL = f"{APP}/channels/{{channel_id}}"
PACKAGE = f"{APP}/packages/{{package_id}}"
FLOOR = "/channels/{channel_id}/floors/{package_id}"
GROUP_INSTANCE = f"{GROUP}/instances/{{instance_id}}"

LIST_APPS = Endpoint("GET", "/apps", AppsPage)
CREATE_APP = Endpoint("POST", "/apps", Application)
GET_APP = Endpoint("GET", APP, Application)
UPDATE_APP = Endpoint("PUT", APP, Application)
DELETE_APP: Endpoint[None] = Endpoint("DELETE", APP, None)

LIST_GROUPS = Endpoint("GET", f"{APP}/groups", GroupsPage)
CREATE_GROUP = Endpoint("POST", f"{APP}/groups", Group)
GET_GROUP = Endpoint("GET", GROUP, Group)
UPDATE_GROUP = Endpoint("PUT", GROUP, Group)
DELETE_GROUP: Endpoint[None] = Endpoint("DELETE", GROUP, None)

LIST_CHANNELS = Endpoint("GET", f"{APP}/channels", ChannelsPage)
CREATE_CHANNEL = Endpoint("POST", f"{APP}/channels", Channel)
GET_CHANNEL = Endpoint("GET", CHANNEL, Channel)
UPDATE_CHANNEL = Endpoint("PUT", CHANNEL, Channel)
DELETE_CHANNEL: Endpoint[None] = Endpoint("DELETE", CHANNEL, None)

# Floors: Nebraska's paths, plus the same under the application for scripts that think
# in applications.
LIST_FLOORS = Endpoint("GET", "/channels/{channel_id}/floors", FloorsPage)
ADD_FLOOR = Endpoint("POST", FLOOR, ChannelFloor)
PUT_FLOOR = Endpoint("PUT", FLOOR, ChannelFloor)
REMOVE_FLOOR: Endpoint[None] = Endpoint("DELETE", FLOOR, None)
LIST_APP_FLOORS = Endpoint("GET", f"{CHANNEL}/floors", FloorsPage)
PUT_APP_FLOOR = Endpoint("PUT", f"{CHANNEL}/floors/{{package_id}}", ChannelFloor)
REMOVE_APP_FLOOR: Endpoint[None] = Endpoint("DELETE", f"{CHANNEL}/floors/{{package_id}}", None)

LIST_PACKAGES = Endpoint("GET", f"{APP}/packages", PackagesPage)
CREATE_PACKAGE = Endpoint("POST", f"{APP}/packages", Package)
GET_PACKAGE = Endpoint("GET", PACKAGE, Package)
UPDATE_PACKAGE = Endpoint("PUT", PACKAGE, Package)
DELETE_PACKAGE: Endpoint[None] = Endpoint("DELETE", PACKAGE, None)
PACKAGE_FLOOR_CHANNELS = Endpoint("GET", f"{PACKAGE}/floor-channels", FloorChannels)

LIST_INSTANCES = Endpoint("GET", f"{GROUP}/instances", InstancesPage)
COUNT_INSTANCES = Endpoint("GET", f"{GROUP}/instancescount", InstanceCount)
GET_GROUP_INSTANCE = Endpoint("GET", GROUP_INSTANCE, Instance)
GET_INSTANCE = Endpoint("GET", f"{APP}/instances/{{instance_id}}", Instance)
STATUS_HISTORY = Endpoint("GET", f"{GROUP_INSTANCE}/status_history", list[StatusHistoryEntry])
UPDATE_INSTANCE = Endpoint("PUT", "/instances/{instance_id}", Instance)

VERSION_BREAKDOWN = Endpoint("GET", f"{GROUP}/version_breakdown", list[VersionBreakdownEntry])
VERSION_TIMELINE = Endpoint("GET", f"{GROUP}/version_timeline", VersionTimeline)
STATUS_TIMELINE = Endpoint("GET", f"{GROUP}/status_timeline", StatusTimeline)
INSTANCES_STATS = Endpoint("GET", f"{GROUP}/instances_stats", InstancesStats)

LIST_ACTIVITY = Endpoint("GET", "/activity", ActivityPage)
