"""/api/apps/{app}/channels and channel floors (/api/channels/{channel}/floors)."""

from __future__ import annotations

from fastapi import Body, Response

from wellcar.server.data import channels as data
from wellcar.server.data import floors
from wellcar.server.data.applications import resolve_app

from . import endpoints as ep
from .common import (
    EngineDep,
    PageParam,
    PerPageParam,
    fields_of,
    make_router,
    paging,
    read_tx,
    write_tx,
)
from .deps import Admin, Now, Reader
from .endpoints import register
from .models import (
    Channel,
    ChannelCreate,
    ChannelFloor,
    ChannelsPage,
    ChannelUpdate,
    FloorInput,
    FloorsPage,
)

router = make_router("channels")


def channel_body(channel: data.Channel) -> Channel:
    return Channel.model_validate(channel)


@register(router, ep.LIST_CHANNELS)
def list_channels(
    _: Reader, engine: EngineDep, app_id: str, page: PageParam = 1, perpage: PerPageParam = 10
) -> ChannelsPage:
    """The application's channels by name, each with its package."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        found = data.list_channels(conn, resolve_app(conn, app_id), limit, offset)
    channels = [channel_body(c) for c in found.channels]
    return ChannelsPage(totalCount=found.total, count=len(channels), channels=channels)


@register(router, ep.CREATE_CHANNEL)
def create_channel(
    _: Admin, engine: EngineDep, now: Now, app_id: str, body: ChannelCreate
) -> Channel:
    """Create a channel; its package must be of the channel's arch (or all) and allow it."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        channel_id = data.create_channel(conn, resolved, fields_of(body, data.NewChannel), now)
        return channel_body(data.get_channel(conn, resolved, channel_id))


@register(router, ep.GET_CHANNEL)
def get_channel(_: Reader, engine: EngineDep, app_id: str, channel_id: str) -> Channel:
    with read_tx(engine) as conn:
        return channel_body(data.get_channel(conn, resolve_app(conn, app_id), channel_id))


@register(router, ep.UPDATE_CHANNEL)
def update_channel(
    _: Admin, engine: EngineDep, now: Now, app_id: str, channel_id: str, body: ChannelUpdate
) -> Channel:
    """Rename, recolour or point the channel at another package (logged as activity)."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        changes = fields_of(body, data.ChannelChanges)
        data.update_channel(conn, resolved, channel_id, changes, now)
        return channel_body(data.get_channel(conn, resolved, channel_id))


@register(router, ep.DELETE_CHANNEL)
def delete_channel(_: Admin, engine: EngineDep, app_id: str, channel_id: str) -> Response:
    """Delete the channel; groups on it are left without a channel."""
    with write_tx(engine) as conn:
        data.delete_channel(conn, resolve_app(conn, app_id), channel_id)
    return Response(status_code=204)


# Floors: Nebraska's paths, plus the same under /api/apps/{app} for scripts that
# think in applications.


@register(router, ep.LIST_FLOORS)
def list_floors(
    _: Reader, engine: EngineDep, channel_id: str, page: PageParam = 1, perpage: PerPageParam = 10
) -> FloorsPage:
    """Packages every client must pass through on this channel, oldest first."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        channel = data.channel_row(conn, None, channel_id)
        return FloorsPage.model_validate(floors.list_floors(conn, channel.id, limit, offset))


@register(router, ep.ADD_FLOOR)
@register(router, ep.PUT_FLOOR)
def add_floor(
    _: Admin,
    engine: EngineDep,
    now: Now,
    channel_id: str,
    package_id: str,
    body: FloorInput | None = Body(default=None),
) -> ChannelFloor:
    """Mark a package as a floor of the channel (again: update the reason)."""
    reason = body.floor_reason if body is not None else None
    with write_tx(engine) as conn:
        return ChannelFloor.model_validate(
            floors.add_floor(conn, channel_id, package_id, reason, now)
        )


@register(router, ep.REMOVE_FLOOR)
def remove_floor(_: Admin, engine: EngineDep, channel_id: str, package_id: str) -> Response:
    with write_tx(engine) as conn:
        floors.remove_floor(conn, channel_id, package_id)
    return Response(status_code=204)


@register(router, ep.LIST_APP_FLOORS)
def list_app_floors(
    _: Reader,
    engine: EngineDep,
    app_id: str,
    channel_id: str,
    page: PageParam = 1,
    perpage: PerPageParam = 10,
) -> FloorsPage:
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        channel = data.channel_row(conn, resolve_app(conn, app_id), channel_id)
        return FloorsPage.model_validate(floors.list_floors(conn, channel.id, limit, offset))


@register(router, ep.PUT_APP_FLOOR)
def add_app_floor(
    _: Admin,
    engine: EngineDep,
    now: Now,
    app_id: str,
    channel_id: str,
    package_id: str,
    body: FloorInput | None = Body(default=None),
) -> ChannelFloor:
    reason = body.floor_reason if body is not None else None
    with write_tx(engine) as conn:
        channel = data.channel_row(conn, resolve_app(conn, app_id), channel_id)
        added = floors.add_floor(conn, channel.id, package_id, reason, now)
        return ChannelFloor.model_validate(added)


@register(router, ep.REMOVE_APP_FLOOR)
def remove_app_floor(
    _: Admin, engine: EngineDep, app_id: str, channel_id: str, package_id: str
) -> Response:
    with write_tx(engine) as conn:
        channel = data.channel_row(conn, resolve_app(conn, app_id), channel_id)
        floors.remove_floor(conn, channel.id, package_id)
    return Response(status_code=204)
