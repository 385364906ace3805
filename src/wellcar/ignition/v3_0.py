"""Ignition config spec 3.0.0: the first v3 spec, the base every later 3.x derives from."""

from __future__ import annotations

from typing import Any

from wellcar.ignition.schema import BOOL, INT, STRING, STRINGS, ListOf, Ref, Spec, obj

VERSION = "3.0.0"

_owner = Ref("owner")

SPEC = Spec(
    VERSION,
    {
        "config": obj(
            ("ignition",),
            ignition=Ref("ignition"),
            storage=Ref("storage"),
            systemd=Ref("systemd"),
            passwd=Ref("passwd"),
        ),
        "verification": obj(hash=STRING),
        "ignition": obj(
            ("version",),
            version=STRING,
            config=Ref("ignitionConfig"),
            timeouts=Ref("timeouts"),
            security=Ref("security"),
        ),
        "ignitionConfig": obj(merge=ListOf(Ref("configReference")), replace=Ref("configReference")),
        "configReference": obj(("source",), source=STRING, verification=Ref("verification")),
        "security": obj(tls=Ref("tls")),
        "tls": obj(certificateAuthorities=ListOf(Ref("configReference"))),
        "timeouts": obj(httpResponseHeaders=INT, httpTotal=INT),
        "storage": obj(
            disks=ListOf(Ref("disk")),
            raid=ListOf(Ref("raid")),
            filesystems=ListOf(Ref("filesystem")),
            files=ListOf(Ref("file")),
            directories=ListOf(Ref("directory")),
            links=ListOf(Ref("link")),
        ),
        "disk": obj(
            ("device",), device=STRING, wipeTable=BOOL, partitions=ListOf(Ref("partition"))
        ),
        "partition": obj(
            label=STRING,
            number=INT,
            sizeMiB=INT,
            startMiB=INT,
            typeGuid=STRING,
            guid=STRING,
            wipePartitionEntry=BOOL,
            shouldExist=BOOL,
        ),
        "raid": obj(
            ("name", "level", "devices"),
            name=STRING,
            level=STRING,
            spares=INT,
            devices=STRINGS,
            options=STRINGS,
        ),
        "filesystem": obj(
            ("device",),
            path=STRING,
            device=STRING,
            format=STRING,
            options=STRINGS,
            wipeFilesystem=BOOL,
            label=STRING,
            uuid=STRING,
        ),
        "owner": obj(id=INT, name=STRING),
        "fileContents": obj(compression=STRING, source=STRING, verification=Ref("verification")),
        "file": obj(
            ("path",),
            path=STRING,
            overwrite=BOOL,
            user=_owner,
            group=_owner,
            mode=INT,
            contents=Ref("fileContents"),
            append=ListOf(Ref("fileContents")),
        ),
        "directory": obj(
            ("path",), path=STRING, overwrite=BOOL, user=_owner, group=_owner, mode=INT
        ),
        "link": obj(
            ("path", "target"),
            path=STRING,
            overwrite=BOOL,
            user=_owner,
            group=_owner,
            target=STRING,
            hard=BOOL,
        ),
        "systemd": obj(units=ListOf(Ref("unit"))),
        "unit": obj(
            ("name",),
            name=STRING,
            enabled=BOOL,
            mask=BOOL,
            contents=STRING,
            dropins=ListOf(Ref("dropin")),
        ),
        "dropin": obj(("name",), name=STRING, contents=STRING),
        "passwd": obj(users=ListOf(Ref("user")), groups=ListOf(Ref("group"))),
        "user": obj(
            ("name",),
            name=STRING,
            passwordHash=STRING,
            sshAuthorizedKeys=STRINGS,
            uid=INT,
            gecos=STRING,
            homeDir=STRING,
            noCreateHome=BOOL,
            primaryGroup=STRING,
            groups=STRINGS,
            noUserGroup=BOOL,
            system=BOOL,
            noLogInit=BOOL,
            shell=STRING,
        ),
        "group": obj(("name",), name=STRING, gid=INT, passwordHash=STRING, system=BOOL),
    },
)


def with_version(document: dict[str, Any], version: str) -> dict[str, Any]:
    """A copy of document that claims version; the other keys are shared, not copied."""
    ignition = dict(document.get("ignition") or {})
    ignition["version"] = version
    return {**document, "ignition": ignition}


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """3.0.0 -> 3.1.0: 3.1 only adds keys, so a 3.0 config is a 3.1 config."""
    return with_version(document, "3.1.0")
