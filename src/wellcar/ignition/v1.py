"""Ignition config spec 1 (`"ignitionVersion": 1`), and its translation to 2.0.0.

CoreOS's first spec; Flatcar's Ignition still reads it (its kola tests use it), by the
step Ignition itself used: each spec 1 filesystem becomes a named 2.0 filesystem whose
files name it, file contents become `data:` URLs, a user's `create` block and everything
else keep their 2.0 names. From 2.0 on the config takes the usual chain (v2_x, then 3.x).

One Wellcar decision (docs/ignition.md): a spec 1 filesystem on the ROOT partition
(`/dev/disk/by-label/ROOT` or `by-partlabel/ROOT`) that is not re-created is 2.0's
`root` filesystem, so its files land in the root the node boots, as on Flatcar.
"""

from __future__ import annotations

from typing import Any

from wellcar.disk.layout import ROOT_LABEL
from wellcar.ignition.dataurl import encode_data_url
from wellcar.ignition.schema import BOOL, INT, STRING, STRINGS, ListOf, Ref, Spec, obj

VERSION = 1
TRANSLATED_VERSION = "2.0.0"
ROOT_DEVICES = (f"/dev/disk/by-label/{ROOT_LABEL}", f"/dev/disk/by-partlabel/{ROOT_LABEL}")

SPEC = Spec(
    "1",
    {
        "config": obj(
            ("ignitionVersion",),
            ignitionVersion=INT,
            storage=Ref("storage"),
            systemd=Ref("systemd"),
            networkd=Ref("networkd"),
            passwd=Ref("passwd"),
        ),
        "storage": obj(
            disks=ListOf(Ref("disk")),
            raid=ListOf(Ref("raid")),
            filesystems=ListOf(Ref("filesystem")),
        ),
        "disk": obj(
            ("device",), device=STRING, wipeTable=BOOL, partitions=ListOf(Ref("partition"))
        ),
        "partition": obj(label=STRING, number=INT, size=INT, start=INT, typeGuid=STRING),
        "raid": obj(("name", "level"), name=STRING, level=STRING, devices=STRINGS, spares=INT),
        "filesystem": obj(
            ("device", "format"),
            device=STRING,
            format=STRING,
            create=Ref("create"),
            files=ListOf(Ref("file")),
        ),
        "create": obj(force=BOOL, options=STRINGS),
        "file": obj(("path",), path=STRING, contents=STRING, mode=INT, uid=INT, gid=INT),
        "systemd": obj(units=ListOf(Ref("unit"))),
        "unit": obj(
            ("name",),
            name=STRING,
            enable=BOOL,
            mask=BOOL,
            contents=STRING,
            dropins=ListOf(Ref("dropin")),
        ),
        "dropin": obj(("name",), name=STRING, contents=STRING),
        "networkd": obj(units=ListOf(Ref("networkdUnit"))),
        "networkdUnit": obj(("name",), name=STRING, contents=STRING),
        "passwd": obj(users=ListOf(Ref("user")), groups=ListOf(Ref("group"))),
        "user": obj(
            ("name",),
            name=STRING,
            passwordHash=STRING,
            sshAuthorizedKeys=STRINGS,
            create=Ref("userCreate"),
        ),
        "userCreate": obj(
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


def is_spec_1(document: dict[str, Any]) -> bool:
    return "ignitionVersion" in document and "ignition" not in document


def _filesystem_name(index: int, fs: dict[str, Any]) -> str:
    if fs.get("device") in ROOT_DEVICES and not fs.get("create"):
        return "root"
    return f"_translate-filesystem-{index}"


def translate(document: dict[str, Any]) -> dict[str, Any]:
    """A spec 1 document (already checked) as a 2.0.0 document."""
    storage = document.get("storage") or {}
    filesystems: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for index, fs in enumerate(storage.get("filesystems") or []):
        name = _filesystem_name(index, fs)
        if name != "root":
            mount: dict[str, Any] = {"device": fs["device"], "format": fs["format"]}
            if fs.get("create") is not None:
                mount["create"] = fs["create"]
            filesystems.append({"name": name, "mount": mount})
        for file in fs.get("files") or []:
            contents = str(file.get("contents") or "").encode()
            files.append(
                {
                    "filesystem": name,
                    "path": file["path"],
                    "contents": {"source": encode_data_url(contents, base64_encoded=False)},
                    "mode": file.get("mode", 0),
                    "user": {"id": file.get("uid", 0)},
                    "group": {"id": file.get("gid", 0)},
                }
            )
    out: dict[str, Any] = {
        "ignition": {"version": TRANSLATED_VERSION},
        "storage": {
            "disks": storage.get("disks") or [],
            "raid": storage.get("raid") or [],
            "filesystems": filesystems,
            "files": files,
        },
        "systemd": document.get("systemd") or {},
        "networkd": document.get("networkd") or {},
        "passwd": document.get("passwd") or {},
    }
    return out
