"""The REST API's request and response bodies, with Nebraska's JSON field names.

Responses mirror Nebraska's Go structs (`backend/pkg/api/internal/types`) so that its UI
and scripts written against it keep working; Wellcar additions are marked. Response
models read the data layer's dataclasses (`from_attributes`); the routers convert where
the JSON shape differs. The same models are used by `wellcar api` (the HTTP client) to
parse what the server sends.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from wellcar.server.office_hours import DEFAULT_SPEC


def utc_iso(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as Go's time.Time marshals (naive values are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _utc_naive(value: Any) -> Any:
    # Parse what we emit (or any RFC 3339 time) back into naive UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_utc_naive),
    PlainSerializer(utc_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _size_from_json(value: Any) -> Any:
    # Nebraska sends the size as a string ("123"); scripts often send a number.
    if isinstance(value, bool):
        raise ValueError('must be a whole number of bytes, like 123 or "123"')
    if value is None:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        if not text.isdigit():
            raise ValueError('must be a whole number of bytes, like 123 or "123"')
        return int(text)
    return value


PackageSize = Annotated[
    Annotated[int, Field(ge=0, le=2**63 - 1)] | None,
    BeforeValidator(_size_from_json),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]*$"}],
            "nullable": True,
            "description": "size in bytes; a number or a numeric string (Nebraska sends a string)",
        }
    ),
]


def _size_to_text(value: Any) -> Any:
    # The data layer holds the size as a number; Nebraska's JSON has it as a string.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class ErrorBody(ApiModel):
    error: str = Field(description="what went wrong, naming the offending field or id")


# ---------------------------------------------------------------------------- responses


class FlatcarAction(ApiModel):
    id: str
    event: str
    chromeos_version: str
    sha256: str
    needs_admin: bool
    is_delta: bool
    disable_payload_backoff: bool
    metadata_signature_rsa: str
    metadata_size: str
    deadline: str
    created_ts: UtcDatetime


class PackageFile(ApiModel):
    """An extra file of a package: another payload in the same Omaha manifest."""

    id: int
    package_id: str
    name: str | None
    size: Annotated[str | None, BeforeValidator(_size_to_text)] = Field(
        description="size in bytes, as a string like Nebraska"
    )
    hash: str | None = Field(description="base64 SHA-1")
    hash256: str | None = Field(description="SHA-256")
    created_ts: UtcDatetime


class Package(ApiModel):
    id: str
    type: int = Field(description="1 flatcar, 2 docker, 3 rocket, 4 other")
    version: str
    url: str
    filename: str | None
    description: str | None
    size: Annotated[str | None, BeforeValidator(_size_to_text)] = Field(
        description="size in bytes, as a string like Nebraska"
    )
    hash: str | None = Field(description="base64 SHA-1 of the payload")
    created_ts: UtcDatetime
    channels_blacklist: list[str]
    application_id: str
    flatcar_action: FlatcarAction | None
    arch: int = Field(description="0 all, 1 amd64, 2 aarch64, 3 x86")
    extra_files: list[PackageFile] | None = Field(
        default=None, description="more payloads in the same manifest (null when none)"
    )


class FloorPackage(Package):
    is_floor: bool = True
    floor_reason: str | None = None


class Channel(ApiModel):
    id: str
    name: str
    color: str
    created_ts: UtcDatetime
    application_id: str
    package_id: str | None
    package: Package | None
    arch: int = Field(description="0 all, 1 amd64, 2 aarch64, 3 x86")


class Group(ApiModel):
    id: str
    name: str
    description: str
    created_ts: UtcDatetime
    rollout_in_progress: bool
    application_id: str
    channel_id: str | None
    policy_updates_enabled: bool
    policy_safe_mode: bool
    policy_office_hours: bool
    policy_timezone: str | None
    policy_period_interval: str
    policy_max_updates_per_period: int
    policy_update_timeout: str
    policy_office_hours_spec: str = Field(
        description="Wellcar: office hours such as 'mon-fri 09:00-17:00' (Nebraska hard-codes it)"
    )
    channel: Channel | None
    track: str


class InstanceCount(ApiModel):
    count: int


class Application(ApiModel):
    id: str
    product_id: str | None
    name: str
    description: str
    created_ts: UtcDatetime
    groups: list[Group]
    channels: list[Channel]
    instances: InstanceCount = Field(description="instances seen in the last 24 hours")


class AppsPage(ApiModel):
    totalCount: int
    count: int
    applications: list[Application]


class GroupsPage(ApiModel):
    totalCount: int
    count: int
    groups: list[Group]


class ChannelsPage(ApiModel):
    totalCount: int
    count: int
    channels: list[Channel]


class PackagesPage(ApiModel):
    totalCount: int
    count: int
    packages: list[Package]


class FloorsPage(ApiModel):
    packages: list[FloorPackage]
    current_page: int
    last_page: int
    total_count: int


class ChannelFloor(ApiModel):
    channel_id: str
    package_id: str
    floor_reason: str | None
    created_ts: UtcDatetime


class FloorChannel(ApiModel):
    channel: Channel
    floor_reason: str | None


class FloorChannels(ApiModel):
    channels: list[FloorChannel]
    count: int


class InstanceApplication(ApiModel):
    instance_id: str
    application_id: str
    group_id: str | None
    version: str
    created_ts: UtcDatetime
    status: int | None = Field(description="1 undefined ... 8 on hold; null before any")
    last_check_for_updates: UtcDatetime
    last_update_granted_ts: UtcDatetime | None
    last_update_version: str | None
    update_in_progress: bool


class Instance(ApiModel):
    id: str
    ip: str
    created_ts: UtcDatetime
    alias: str
    oem: str
    oem_version: str
    aleph_version: str
    application: InstanceApplication | None


class InstancesPage(ApiModel):
    total: int
    instances: list[Instance]


class StatusHistoryEntry(ApiModel):
    status: int
    version: str
    created_ts: UtcDatetime
    error_code: str | None


class Activity(ApiModel):
    id: str
    app_id: str
    group_id: str | None
    channel_id: str | None = Field(description="Wellcar addition")
    created_ts: UtcDatetime
    class_: int = Field(alias="class", description="1 package not found ... 6 channel updated")
    severity: int = Field(description="1 success, 2 info, 3 warning, 4 error")
    version: str
    application_name: str
    group_name: str | None
    channel_name: str | None
    instance_id: str | None


class ActivityPage(ApiModel):
    totalCount: int
    count: int
    activities: list[Activity]


class VersionBreakdownEntry(ApiModel):
    version: str
    instances: int
    percentage: float


class InstancesStats(ApiModel):
    total: int
    undefined: int
    update_granted: int
    error: int
    complete: int
    installed: int
    downloaded: int
    downloading: int
    onhold: int


# time (RFC 3339) -> version -> instances
VersionTimeline = dict[str, dict[str, int]]
# time (RFC 3339) -> status ("1".."8") -> version -> status changes
StatusTimeline = dict[str, dict[str, dict[str, int]]]


# ----------------------------------------------------------------------------- requests
# Bounds follow the columns (PostgreSQL enforces VARCHAR lengths and 32/64-bit integers).

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1


def _no_nul(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    elif isinstance(value, BaseModel):
        for item in value.__dict__.values():
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)


class InputModel(ApiModel):
    """A request body: text without NUL characters (PostgreSQL cannot store them)."""

    @model_validator(mode="after")
    def _reject_nul(self) -> Self:
        _no_nul(self)
        return self


def bounded(max_length: int, min_length: int = 0) -> Any:
    return Field(min_length=min_length, max_length=max_length)


Name = Annotated[str, bounded(100, 1)]
Ref = Annotated[str, bounded(100)]  # an id sent in a body
Description = Annotated[str, bounded(10_000)]
Interval = Annotated[str, bounded(50)]
Timezone = Annotated[str, bounded(100)]
OfficeHoursSpec = Annotated[str, bounded(200)]
Url = Annotated[str, bounded(2_000, 1)]


class AppCreate(InputModel):
    id: Ref | None = Field(
        default=None, description="UUID to create the app with (braces allowed), e.g. Flatcar's"
    )
    name: Annotated[str, bounded(200, 1)]
    description: Description = ""
    product_id: Annotated[str, bounded(200)] | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class AppUpdate(InputModel):
    """Fields left out keep their value; `product_id` "" or null clears it."""

    name: Annotated[str, bounded(200, 1)] | None = None
    description: Description | None = None
    product_id: Annotated[str, bounded(200)] | None = None


MaxUpdates = Annotated[int, Field(gt=0, le=MAX_INT32)]


class GroupCreate(InputModel):
    name: Name
    description: Description = ""
    channel_id: Ref | None = None
    track: Annotated[str, bounded(100)] = Field(
        default="", description="matched against the Omaha track; empty means the group id"
    )
    policy_updates_enabled: bool = True
    policy_safe_mode: bool = True
    policy_office_hours: bool = False
    policy_timezone: Timezone | None = None
    policy_period_interval: Interval = "15 minutes"
    policy_max_updates_per_period: MaxUpdates = 2
    policy_update_timeout: Interval = "60 minutes"
    policy_office_hours_spec: OfficeHoursSpec = DEFAULT_SPEC


class GroupUpdate(InputModel):
    """Fields left out keep their value; `channel_id` "" or null detaches the channel."""

    name: Name | None = None
    description: Description | None = None
    channel_id: Ref | None = None
    track: Annotated[str, bounded(100)] | None = None
    policy_updates_enabled: bool | None = None
    policy_safe_mode: bool | None = None
    policy_office_hours: bool | None = None
    policy_timezone: Timezone | None = None
    policy_period_interval: Interval | None = None
    policy_max_updates_per_period: MaxUpdates | None = None
    policy_update_timeout: Interval | None = None
    policy_office_hours_spec: OfficeHoursSpec | None = None


ArchCode = Annotated[int, Field(ge=0, le=3, description="0 all, 1 amd64, 2 aarch64, 3 x86")]


class ChannelCreate(InputModel):
    name: Name
    color: Annotated[str, bounded(50)] = ""
    arch: ArchCode = 1
    package_id: Ref | None = None
    application_id: str | None = Field(default=None, description="ignored: the path names the app")


class ChannelUpdate(InputModel):
    """Fields left out keep their value; `package_id` "" or null leaves the channel empty."""

    name: Name | None = None
    color: Annotated[str, bounded(50)] | None = None
    package_id: Ref | None = None
    arch: ArchCode | None = Field(default=None, description="cannot change; checked if sent")
    application_id: str | None = Field(default=None, description="ignored: the path names the app")


def _valid_sha256(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be the base64 SHA-256 of the payload (44 characters)")
    return value


class FlatcarActionInput(InputModel):
    id: str | None = Field(default=None, description="ignored: assigned by the server")
    sha256: str = Field(description="base64 SHA-256 of the payload")
    event: Annotated[str, bounded(50)] = "postinstall"
    chromeos_version: Annotated[str, bounded(100)] = ""
    needs_admin: bool = False
    is_delta: bool = False
    disable_payload_backoff: bool = True
    metadata_signature_rsa: Annotated[str, bounded(10_000)] = ""
    metadata_size: Annotated[str, bounded(50)] = ""
    deadline: Annotated[str, bounded(100)] = ""

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str) -> str:
        return _valid_sha256(v.strip())


PackageType = Annotated[
    int, Field(ge=1, le=4, description="1 flatcar, 2 docker, 3 rocket, 4 other")
]
Version = Annotated[str, bounded(100, 1)]
Filename = Annotated[str, bounded(1_000)]
Hash = Annotated[str, bounded(200)]


class PackageFileInput(InputModel):
    id: int | None = Field(default=None, description="ignored: assigned by the server")
    package_id: str | None = Field(default=None, description="ignored: the path names it")
    name: Filename | None = None
    size: PackageSize = None
    hash: Hash | None = None
    hash256: Hash | None = None
    created_ts: str | None = Field(default=None, description="ignored")


class PackageCreate(InputModel):
    type: PackageType = 1
    version: Version
    url: Url
    filename: Filename | None = None
    description: Description | None = None
    size: PackageSize = None
    hash: Hash | None = None
    arch: ArchCode = 1
    channels_blacklist: list[Ref] | None = Field(default=None, max_length=1_000)
    flatcar_action: FlatcarActionInput | None = None
    application_id: str | None = Field(default=None, description="ignored: the path names the app")
    extra_files: list[PackageFileInput] | None = Field(default=None, max_length=100)


class PackageUpdate(InputModel):
    """Fields left out keep their value; `channels_blacklist` replaces the list when sent."""

    type: PackageType | None = None
    version: Version | None = None
    url: Url | None = None
    filename: Filename | None = None
    description: Description | None = None
    size: PackageSize = None
    hash: Hash | None = None
    arch: ArchCode | None = Field(default=None, description="cannot change; checked if sent")
    channels_blacklist: list[Ref] | None = Field(default=None, max_length=1_000)
    flatcar_action: FlatcarActionInput | None = None
    application_id: str | None = Field(default=None, description="ignored: the path names the app")
    extra_files: list[PackageFileInput] | None = Field(
        default=None, max_length=100, description="replaces the list when sent (null: none)"
    )


class FloorInput(InputModel):
    floor_reason: Annotated[str, bounded(500)] | None = None


class InstanceUpdate(InputModel):
    alias: Annotated[str, bounded(200)]
