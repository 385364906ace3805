"""The console's forms: create a group, change its policy, pause and resume its updates.

A form's values go through the REST API's own request models (so a bad value gets the
API's message) and then the same data-layer call as the API, in one transaction: an error
saves nothing and shows the page again with the message next to its field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from wellcar.server.api.common import fields_of, read_tx, write_tx
from wellcar.server.api.console.access import require_writer
from wellcar.server.api.console.page_errors import ConsoleRoute
from wellcar.server.api.console.pages import (
    DEFAULT_PERIOD,
    application_context,
    engine_of,
    group_context,
    now_of,
)
from wellcar.server.api.console.templates import render
from wellcar.server.api.errors import describe_validation
from wellcar.server.api.models import ChannelCreate, GroupCreate, GroupUpdate
from wellcar.server.data import channels, groups
from wellcar.server.data.applications import resolve_app
from wellcar.server.errors import Conflict, InvalidInput

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

GROUP_TEXT_FIELDS = (
    "name",
    "description",
    "channel_id",
    "track",
    "policy_timezone",
    "policy_period_interval",
    "policy_max_updates_per_period",
    "policy_update_timeout",
    "policy_office_hours_spec",
)
GROUP_CHECKBOXES = ("policy_updates_enabled", "policy_safe_mode", "policy_office_hours")
GROUP_FIELDS = GROUP_TEXT_FIELDS + GROUP_CHECKBOXES
M = TypeVar("M", bound=BaseModel)
GENERAL = ""  # the key of an error that names no field of the form


class FormRefused(Exception):
    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status  # the API's status for the same mistake


def group_form_values(form: FormData, with_checkboxes: bool) -> dict[str, Any]:
    """The group fields a form sent; a checkbox left unticked is sent as nothing at all,
    so the policy form (`with_checkboxes`) turns a missing one into False."""
    values: dict[str, Any] = {f: str(form[f]) for f in GROUP_TEXT_FIELDS if f in form}
    if "policy_timezone" in values and not values["policy_timezone"].strip():
        values["policy_timezone"] = None
    if with_checkboxes:
        for field in GROUP_CHECKBOXES:
            values[field] = field in form
    return values


def validated(model: type[M], values: dict[str, Any], fields: tuple[str, ...]) -> M:
    """The API's request model for the values, or FormRefused with the API's messages."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            field = str(loc[0]) if loc and str(loc[0]) in fields else GENERAL
            # The same text the API answers with: "<field>: <what is wrong>".
            errors.setdefault(field, describe_validation([{**err, "loc": ("body", *loc)}]))
        raise FormRefused(errors) from exc


def data_layer_error(exc: InvalidInput | Conflict, fields: tuple[str, ...]) -> FormRefused:
    # The data layer's messages start with the field they are about ("name: ...").
    message = str(exc)
    field = message.split(":", 1)[0]
    status = 409 if isinstance(exc, Conflict) else 400
    return FormRefused({field if field in fields else GENERAL: message}, status)


def _group_url(app_id: str, group_id: str, **query: str) -> str:
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/apps/{app_id}/groups/{group_id}" + (f"?{tail}" if tail else "")


@router.post("/apps/{app_id}/groups")
async def create_group(request: Request, app_id: str) -> Response:
    form = await request.form()
    require_writer(request, form)
    values = group_form_values(form, with_checkboxes=False)
    engine, now = engine_of(request), now_of(request)

    def save() -> tuple[str, str]:
        body = validated(GroupCreate, values, GROUP_FIELDS)
        with write_tx(engine) as conn:
            resolved = resolve_app(conn, app_id)
            try:
                new_id = groups.create_group(conn, resolved, fields_of(body, groups.NewGroup), now)
            except (InvalidInput, Conflict) as exc:
                raise data_layer_error(exc, GROUP_FIELDS) from exc
        return resolved, new_id

    try:
        resolved, group_id = await run_in_threadpool(save)
    except FormRefused as refused:
        with read_tx(engine) as conn:
            context = application_context(conn, app_id, now)
        context["new_group"] = values
        context["errors"] = refused.errors
        return render(request, "application.html", context, refused.status)
    return RedirectResponse(_group_url(resolved, group_id, saved="1"), status_code=303)


CHANNEL_FIELDS = ("name", "color", "arch", "package_id")


@router.post("/apps/{app_id}/channels")
async def create_channel(request: Request, app_id: str) -> Response:
    form = await request.form()
    require_writer(request, form)
    values: dict[str, Any] = {f: str(form[f]) for f in CHANNEL_FIELDS if f in form}
    engine, now = engine_of(request), now_of(request)

    def save() -> str:
        body = validated(ChannelCreate, values, CHANNEL_FIELDS)
        with write_tx(engine) as conn:
            resolved = resolve_app(conn, app_id)
            try:
                channels.create_channel(conn, resolved, fields_of(body, channels.NewChannel), now)
            except (InvalidInput, Conflict) as exc:
                raise data_layer_error(exc, CHANNEL_FIELDS) from exc
        return resolved

    try:
        resolved = await run_in_threadpool(save)
    except FormRefused as refused:
        with read_tx(engine) as conn:
            context = application_context(conn, app_id, now)
        context["new_channel"] = values
        context["channel_errors"] = refused.errors
        return render(request, "application.html", context, refused.status)
    return RedirectResponse(f"/apps/{resolved}", status_code=303)


async def _update_group(
    request: Request, app_id: str, group_id: str, values: dict[str, Any]
) -> Response:
    engine, now = engine_of(request), now_of(request)

    def save() -> str:
        body = validated(GroupUpdate, values, GROUP_FIELDS)
        with write_tx(engine) as conn:
            resolved = resolve_app(conn, app_id)
            try:
                groups.update_group(conn, resolved, group_id, fields_of(body, groups.GroupChanges))
            except (InvalidInput, Conflict) as exc:
                raise data_layer_error(exc, GROUP_FIELDS) from exc
        return resolved

    try:
        resolved = await run_in_threadpool(save)
    except FormRefused as refused:
        with read_tx(engine) as conn:
            context = group_context(conn, app_id, group_id, DEFAULT_PERIOD, now)
        context["policy"] = {**context["policy"], **{k: v or "" for k, v in values.items()}}
        context["policy"].update({f: values[f] for f in GROUP_CHECKBOXES if f in values})
        context["errors"] = refused.errors
        return render(request, "group.html", context, refused.status)
    return RedirectResponse(_group_url(resolved, group_id, saved="1"), status_code=303)


@router.post("/apps/{app_id}/groups/{group_id}")
async def update_group(request: Request, app_id: str, group_id: str) -> Response:
    form = await request.form()
    require_writer(request, form)
    return await _update_group(request, app_id, group_id, group_form_values(form, True))


@router.post("/apps/{app_id}/groups/{group_id}/pause")
async def pause_group(request: Request, app_id: str, group_id: str) -> Response:
    require_writer(request, await request.form())
    return await _update_group(request, app_id, group_id, {"policy_updates_enabled": False})


@router.post("/apps/{app_id}/groups/{group_id}/resume")
async def resume_group(request: Request, app_id: str, group_id: str) -> Response:
    require_writer(request, await request.form())
    return await _update_group(request, app_id, group_id, {"policy_updates_enabled": True})
