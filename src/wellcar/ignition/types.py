"""The typed config: spec 3.5.0, the newest spec; every older config is translated to it.

Field names are the JSON keys in snake_case; `json_key` gives the JSON spelling. Nested
objects are never None (an absent object is its empty default), so the merge and the apply
code need no None checks below the top.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field
from typing import Any


def _json(name: str) -> Any:
    """A field whose JSON key is not the plain camelCase of its name (e.g. sizeMiB)."""
    return field(default=None, metadata={"json": name})


def json_key(f: Field[Any]) -> str:
    explicit = f.metadata.get("json")
    if isinstance(explicit, str):
        return explicit
    head, *rest = f.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Verification:
    hash: str | None = None


@dataclass(frozen=True)
class HttpHeader:
    name: str = ""
    value: str | None = None


@dataclass(frozen=True)
class Resource:
    source: str | None = None
    compression: str | None = None
    http_headers: tuple[HttpHeader, ...] = ()
    verification: Verification = Verification()


@dataclass(frozen=True)
class ConfigReferences:
    merge: tuple[Resource, ...] = ()
    replace: Resource = Resource()


@dataclass(frozen=True)
class Timeouts:
    http_response_headers: int | None = None
    http_total: int | None = None


@dataclass(frozen=True)
class Tls:
    certificate_authorities: tuple[Resource, ...] = ()


@dataclass(frozen=True)
class Security:
    tls: Tls = Tls()


@dataclass(frozen=True)
class Proxy:
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: tuple[str, ...] = ()


@dataclass(frozen=True)
class IgnitionSection:
    version: str = ""
    config: ConfigReferences = ConfigReferences()
    timeouts: Timeouts = Timeouts()
    security: Security = Security()
    proxy: Proxy = Proxy()


@dataclass(frozen=True)
class Partition:
    label: str | None = None
    number: int | None = None  # 0 or None: the next free number
    size_mib: int | None = _json("sizeMiB")
    start_mib: int | None = _json("startMiB")
    type_guid: str | None = None
    guid: str | None = None
    wipe_partition_entry: bool | None = None
    should_exist: bool | None = None
    resize: bool | None = None


@dataclass(frozen=True)
class Disk:
    device: str = ""
    wipe_table: bool | None = None
    partitions: tuple[Partition, ...] = ()


@dataclass(frozen=True)
class Raid:
    name: str = ""
    level: str | None = None
    devices: tuple[str, ...] = ()
    spares: int | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tang:
    url: str = ""
    thumbprint: str | None = None
    advertisement: str | None = None


@dataclass(frozen=True)
class ClevisCustom:
    pin: str | None = None
    config: str | None = None
    needs_network: bool | None = None


@dataclass(frozen=True)
class Clevis:
    custom: ClevisCustom = ClevisCustom()
    tpm2: bool | None = None
    tang: tuple[Tang, ...] = ()
    threshold: int | None = None


@dataclass(frozen=True)
class Cex:
    enabled: bool | None = None


@dataclass(frozen=True)
class Luks:
    name: str = ""
    device: str | None = None
    label: str | None = None
    uuid: str | None = None
    key_file: Resource = Resource()
    wipe_volume: bool | None = None
    clevis: Clevis = Clevis()
    options: tuple[str, ...] = ()
    discard: bool | None = None
    open_options: tuple[str, ...] = ()
    cex: Cex = Cex()


@dataclass(frozen=True)
class Filesystem:
    device: str = ""
    format: str | None = None
    path: str | None = None
    wipe_filesystem: bool | None = None
    label: str | None = None
    uuid: str | None = None
    options: tuple[str, ...] = ()
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Owner:
    id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class File:
    path: str = ""
    overwrite: bool | None = None
    user: Owner = Owner()
    group: Owner = Owner()
    mode: int | None = None
    contents: Resource = Resource()
    append: tuple[Resource, ...] = ()


@dataclass(frozen=True)
class Directory:
    path: str = ""
    overwrite: bool | None = None
    user: Owner = Owner()
    group: Owner = Owner()
    mode: int | None = None


@dataclass(frozen=True)
class Link:
    path: str = ""
    overwrite: bool | None = None
    user: Owner = Owner()
    group: Owner = Owner()
    target: str | None = None
    hard: bool | None = None


@dataclass(frozen=True)
class Storage:
    disks: tuple[Disk, ...] = ()
    raid: tuple[Raid, ...] = ()
    luks: tuple[Luks, ...] = ()
    filesystems: tuple[Filesystem, ...] = ()
    files: tuple[File, ...] = ()
    directories: tuple[Directory, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Dropin:
    name: str = ""
    contents: str | None = None


@dataclass(frozen=True)
class Unit:
    name: str = ""
    enabled: bool | None = None  # None: leave the unit's enablement alone
    mask: bool | None = None
    contents: str | None = None
    dropins: tuple[Dropin, ...] = ()


@dataclass(frozen=True)
class Systemd:
    units: tuple[Unit, ...] = ()


@dataclass(frozen=True)
class User:
    name: str = ""
    password_hash: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()
    uid: int | None = None
    gecos: str | None = None
    home_dir: str | None = None
    no_create_home: bool | None = None
    primary_group: str | None = None
    groups: tuple[str, ...] = ()
    no_user_group: bool | None = None
    system: bool | None = None
    no_log_init: bool | None = None
    shell: str | None = None
    should_exist: bool | None = None


@dataclass(frozen=True)
class Group:
    name: str = ""
    gid: int | None = None
    password_hash: str | None = None
    system: bool | None = None
    should_exist: bool | None = None


@dataclass(frozen=True)
class Passwd:
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True)
class KernelArguments:
    should_exist: tuple[str, ...] = ()
    should_not_exist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    ignition: IgnitionSection = IgnitionSection()
    storage: Storage = Storage()
    systemd: Systemd = Systemd()
    passwd: Passwd = Passwd()
    kernel_arguments: KernelArguments = KernelArguments()
