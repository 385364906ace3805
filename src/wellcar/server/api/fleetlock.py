"""FleetLock over HTTP: the protocol endpoints for nodes and the admin REST API.

`protocol_router` serves `POST /v1/pre-reboot` and `POST /v1/steady-state` at the root, where
Zincati's `base_url` points. Like airlock's, they need no token (nodes have none): success
is a bare 200, every failure a `{"kind": ..., "value": ...}` body that Zincati logs.

`router` serves `/api/fleetlock/...` for people and scripts, with the bearer tokens and the
`{"error": ...}` bodies of the rest of the REST API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from wellcar.logline import log_fields
from wellcar.server.errors import DatabaseError, InvalidInput
from wellcar.server.fleetlock import (
    DEFAULT_GROUP,
    GROUP_PATTERN,
    MAX_FLEETLOCK_SLOTS,
    MAX_GROUP_LENGTH,
    MAX_NODE_ID_LENGTH,
    FleetLock,
    GroupState,
    LockDecision,
    NodeIdentity,
    UnlockDecision,
    check_group_name,
    check_node_id,
)
from wellcar.server.metrics import ServerMetrics
from wellcar.server.settings import ServerSettings

from .common import make_router
from .deps import Admin, Reader
from .errors import ERROR_RESPONSES, WRITE_ERROR_RESPONSES, describe_validation
from .models import ApiModel, InputModel, UtcDatetime

log = logging.getLogger("wellcar.server.fleetlock")

PROTOCOL_HEADER: Final = "fleet-lock-protocol"
PRE_REBOOT: Final = "pre-reboot"
STEADY_STATE: Final = "steady-state"

# Error kinds (machine-friendly, bounded, as the protocol asks).
KIND_BAD_REQUEST: Final = "bad_request"
KIND_FAILED_LOCK: Final = "failed_lock"
KIND_FAILED_UNLOCK: Final = "failed_unlock"
# Metric results besides the decisions' own (locked, already_held, group_full, ...).
RESULT_BAD_REQUEST: Final = "bad_request"
RESULT_DATABASE_ERROR: Final = "database_error"

Decision = TypeVar("Decision", LockDecision, UnlockDecision)


# ------------------------------------------------------------------------------- models


class FleetLockErrorBody(BaseModel):
    kind: str = Field(description="machine-friendly: bad_request, failed_lock, failed_unlock")
    value: str = Field(description="human-friendly explanation")


class ClientParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, description="the lock owner: node name or UUID")
    node_uuid: str | None = Field(
        default=None, description="what early FleetLock clients sent instead of `id`"
    )
    group: str | None = Field(default=None, description=f"reboot group, {GROUP_PATTERN}")


class FleetLockRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    client_params: ClientParams


FLEETLOCK_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["client_params"],
    "properties": {
        "client_params": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": MAX_NODE_ID_LENGTH},
                "group": {
                    "type": "string",
                    "pattern": GROUP_PATTERN,
                    "maxLength": MAX_GROUP_LENGTH,
                    "default": DEFAULT_GROUP,
                },
            },
        }
    },
}


class FleetLockHolder(ApiModel):
    id: str = Field(description="the node id the holder sent")
    acquired_at: UtcDatetime


class FleetLockGroup(ApiModel):
    name: str
    slots: int = Field(description="reboot slots in effect (configured, else the default)")
    configured_slots: int | None = Field(
        description="slots set through the API; null: the group follows the server's default"
    )
    free_slots: int
    holders: list[FleetLockHolder] = Field(description="oldest first")
    updated_at: UtcDatetime | None = Field(
        description="last time the group was created or configured; null: never"
    )


class FleetLockGroups(ApiModel):
    default_slots: int = Field(description="slots of a group without configured slots")
    groups: list[FleetLockGroup]


SlotsValue = Annotated[int, Field(ge=0, le=MAX_FLEETLOCK_SLOTS, strict=True)]


class FleetLockSlotsUpdate(InputModel):
    slots: SlotsValue | None = Field(
        description="reboot slots of the group (0 holds every reboot); null: the server default"
    )


def _group_model(state: GroupState) -> FleetLockGroup:
    return FleetLockGroup(
        name=state.name,
        slots=state.slots,
        configured_slots=state.configured_slots,
        free_slots=state.free_slots,
        holders=[FleetLockHolder(id=h.node_id, acquired_at=h.acquired_at) for h in state.holders],
        updated_at=state.updated_at,
    )


# ----------------------------------------------------------------------------- protocol


class Rejection(Exception):
    """A FleetLock request answered with an error body."""

    def __init__(self, status: int, kind: str, value: str) -> None:
        super().__init__(value)
        self.status = status
        self.kind = kind
        self.value = value

    def response(self) -> Response:
        return JSONResponse({"kind": self.kind, "value": self.value}, status_code=self.status)


def _bad_request(message: str, status: int = 400) -> Rejection:
    return Rejection(status, KIND_BAD_REQUEST, message)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _bad_request(f"request body is over {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _bad_request(f"request body is over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _identity_of(request: Request) -> NodeIdentity:
    """The validated client identity of a FleetLock request, or a 4xx Rejection."""
    if request.headers.get(PROTOCOL_HEADER) != "true":
        raise _bad_request(f"the request needs the header '{PROTOCOL_HEADER}: true'")
    settings: ServerSettings = request.app.state.settings
    body = await _read_body(request, settings.max_body_bytes)
    try:
        parsed = FleetLockRequest.model_validate_json(body)
    except ValidationError as exc:
        message = f"invalid FleetLock request: {describe_validation(exc.errors())}"
        raise _bad_request(message) from exc
    params = parsed.client_params
    node_id = params.id if params.id is not None else params.node_uuid
    try:
        return NodeIdentity(
            node_id=check_node_id(node_id or ""),
            group=check_group_name(params.group or DEFAULT_GROUP),
        )
    except InvalidInput as exc:
        raise _bad_request(f"invalid FleetLock request: client_params.{exc}") from exc


def _lock_rejection(identity: NodeIdentity, decision: LockDecision) -> Rejection:
    if decision.slots == 0:
        why = f"group {identity.group!r} has no reboot slots (0 configured)"
    else:
        why = (
            f"all {decision.slots} reboot slot(s) of group {identity.group!r} are held by "
            "other nodes; try again later"
        )
    return Rejection(409, KIND_FAILED_LOCK, why)


def _unavailable(kind: str) -> Rejection:
    return Rejection(503, kind, "the lock database is unavailable; try again later")


PROTOCOL_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "done (empty body)"},
    400: {"model": FleetLockErrorBody, "description": "no protocol header or a bad body"},
    413: {"model": FleetLockErrorBody, "description": "body too large"},
    503: {"model": FleetLockErrorBody, "description": "database unavailable; retry"},
}
_PROTOCOL_OPENAPI: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": PROTOCOL_HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string", "enum": ["true"]},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FLEETLOCK_REQUEST_SCHEMA}},
    },
}

protocol_router = APIRouter(tags=["fleetlock"])


async def _in_database(
    operation: str, failure_kind: str, call: Callable[[NodeIdentity], Decision], who: NodeIdentity
) -> Decision:
    try:
        return await run_in_threadpool(call, who)
    except (DBAPIError, DatabaseError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        log.error(
            "fleetlock failed: database error", extra=log_fields(operation=operation, error=reason)
        )
        raise _unavailable(failure_kind) from exc


def _refused(metrics: ServerMetrics, operation: str, rejection: Rejection) -> Response:
    if rejection.kind == KIND_BAD_REQUEST:
        log.info("fleetlock refused", extra=log_fields(operation=operation, reason=rejection.value))
        metrics.fleetlock_request(operation, RESULT_BAD_REQUEST)
    else:
        metrics.fleetlock_request(operation, RESULT_DATABASE_ERROR)
    return rejection.response()


@protocol_router.post(
    "/v1/pre-reboot",
    response_class=Response,
    responses={
        **PROTOCOL_RESPONSES,
        409: {"model": FleetLockErrorBody, "description": "every slot of the group is held"},
    },
    openapi_extra=_PROTOCOL_OPENAPI,
)
async def pre_reboot(request: Request) -> Response:
    """RecursiveLock: take a reboot slot of the node's group (200 again if it holds one)."""
    metrics: ServerMetrics = request.app.state.metrics
    fleetlock: FleetLock = request.app.state.fleetlock
    try:
        identity = await _identity_of(request)
        decision = await _in_database(PRE_REBOOT, KIND_FAILED_LOCK, fleetlock.pre_reboot, identity)
    except Rejection as rejection:
        return _refused(metrics, PRE_REBOOT, rejection)
    metrics.fleetlock_request(PRE_REBOOT, decision.result)
    if not decision.granted:
        return _lock_rejection(identity, decision).response()
    return Response(status_code=200)


@protocol_router.post(
    "/v1/steady-state",
    response_class=Response,
    responses=PROTOCOL_RESPONSES,
    openapi_extra=_PROTOCOL_OPENAPI,
)
async def steady_state(request: Request) -> Response:
    """UnlockIfHeld: give back the node's reboot slot (200 also if it holds none)."""
    metrics: ServerMetrics = request.app.state.metrics
    fleetlock: FleetLock = request.app.state.fleetlock
    try:
        identity = await _identity_of(request)
        decision = await _in_database(
            STEADY_STATE, KIND_FAILED_UNLOCK, fleetlock.steady_state, identity
        )
    except Rejection as rejection:
        return _refused(metrics, STEADY_STATE, rejection)
    metrics.fleetlock_request(STEADY_STATE, decision.result)
    return Response(status_code=200)


# -------------------------------------------------------------------------------- admin

router = make_router("fleetlock")


def _fleetlock(request: Request) -> FleetLock:
    fleetlock: FleetLock = request.app.state.fleetlock
    return fleetlock


@router.get("/fleetlock/groups", response_model=FleetLockGroups, responses=ERROR_RESPONSES)
def list_fleetlock_groups(_: Reader, request: Request) -> FleetLockGroups:
    """Every FleetLock group used or configured, by name, with its slots and holders."""
    fleetlock = _fleetlock(request)
    return FleetLockGroups(
        default_slots=fleetlock.default_slots,
        groups=[_group_model(state) for state in fleetlock.groups()],
    )


@router.get("/fleetlock/groups/{group}", response_model=FleetLockGroup, responses=ERROR_RESPONSES)
def get_fleetlock_group(_: Reader, request: Request, group: str) -> FleetLockGroup:
    """One group; a group never used nor configured is shown with the default slots."""
    return _group_model(_fleetlock(request).group(group))


@router.put(
    "/fleetlock/groups/{group}", response_model=FleetLockGroup, responses=WRITE_ERROR_RESPONSES
)
def set_fleetlock_slots(
    _: Admin, request: Request, group: str, body: FleetLockSlotsUpdate
) -> FleetLockGroup:
    """Set the group's reboot slots; holders over a lowered limit keep their slot."""
    return _group_model(_fleetlock(request).set_slots(group, body.slots))


@router.delete(
    "/fleetlock/groups/{group}/holders/{node_id:path}",
    status_code=204,
    responses=WRITE_ERROR_RESPONSES,
)
def release_fleetlock_holder(_: Admin, request: Request, group: str, node_id: str) -> Response:
    """Free the slot of a node that will not come back to release it (404 if it holds none)."""
    _fleetlock(request).force_release(group, node_id)
    return Response(status_code=204)
