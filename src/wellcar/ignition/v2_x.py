"""Ignition config spec 2.0.0-2.4.0 (Container Linux, `ct`), and its translation to 3.1.0.

One permissive schema covers 2.0-2.4 (each minor only added keys), as Flatcar parses every
2.x config as 2.4. The translation follows ign-converter's v24tov31: filesystems lose their
names and are referred to by mount path, partition sizes go from sectors to MiB,
`ignition.config.append` becomes `merge`, networkd units become files, and files
overwrite by default (v2 always replaced files).
"""

from __future__ import annotations

from typing import Any

from wellcar.ignition import v3_0
from wellcar.ignition.report import Report
from wellcar.ignition.schema import BOOL, INT, STRING, STRINGS, ListOf, Ref, Spec, obj

VERSIONS = ("2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0")
SECTOR = 512
SECTORS_PER_MIB = (1 << 20) // SECTOR
# Where v2's named filesystems live on a Wellcar node ("root" is the only one Ignition
# defines; "oem" is Flatcar's convention, mounted at /oem on Wellcar).
FILESYSTEM_PATHS = {"root": "/", "oem": "/oem"}
# Any other named filesystem with a `mount` is mounted here while Ignition writes the
# nodes that name it, then unmounted, as 2.x did (no mount persists after provisioning).
NAMED_FILESYSTEMS_DIR = "/run/ignition/filesystems"

_owner = Ref("owner")
_RESOURCE = obj(
    source=STRING,
    compression=STRING,
    verification=Ref("verification"),
    httpHeaders=ListOf(Ref("httpHeader")),
)

SPEC = Spec(
    "2.x",
    {
        "config": obj(
            ("ignition",),
            ignition=Ref("ignition"),
            storage=Ref("storage"),
            systemd=Ref("systemd"),
            networkd=Ref("networkd"),
            passwd=Ref("passwd"),
        ),
        "verification": obj(hash=STRING),
        "httpHeader": obj(("name",), name=STRING, value=STRING),
        "resource": _RESOURCE,
        "ignition": obj(
            ("version",),
            version=STRING,
            config=Ref("ignitionConfig"),
            timeouts=Ref("timeouts"),
            security=Ref("security"),
            proxy=Ref("proxy"),
        ),
        "ignitionConfig": obj(append=ListOf(Ref("resource")), replace=Ref("resource")),
        "timeouts": obj(httpResponseHeaders=INT, httpTotal=INT),
        "security": obj(tls=Ref("tls")),
        "tls": obj(certificateAuthorities=ListOf(Ref("resource"))),
        "proxy": obj(httpProxy=STRING, httpsProxy=STRING, noProxy=STRINGS),
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
            size=INT,
            start=INT,
            typeGuid=STRING,
            guid=STRING,
            wipePartitionEntry=BOOL,
            shouldExist=BOOL,
        ),
        "raid": obj(
            ("name", "level"),
            name=STRING,
            level=STRING,
            devices=STRINGS,
            spares=INT,
            options=STRINGS,
        ),
        # A nameless filesystem is valid in 2.x: it is made, and nothing can refer to it.
        "filesystem": obj(name=STRING, mount=Ref("mount"), path=STRING),
        "mount": obj(
            ("device", "format"),
            device=STRING,
            format=STRING,
            create=Ref("create"),
            wipeFilesystem=BOOL,
            label=STRING,
            uuid=STRING,
            options=STRINGS,
        ),
        "create": obj(force=BOOL, options=STRINGS),
        "owner": obj(id=INT, name=STRING),
        "file": obj(
            ("path",),
            filesystem=STRING,
            path=STRING,
            contents=Ref("resource"),
            mode=INT,
            user=_owner,
            group=_owner,
            overwrite=BOOL,
            append=BOOL,
        ),
        "directory": obj(
            ("path",),
            filesystem=STRING,
            path=STRING,
            mode=INT,
            user=_owner,
            group=_owner,
            overwrite=BOOL,
        ),
        "link": obj(
            ("path", "target"),
            filesystem=STRING,
            path=STRING,
            target=STRING,
            hard=BOOL,
            user=_owner,
            group=_owner,
            overwrite=BOOL,
        ),
        "systemd": obj(units=ListOf(Ref("unit"))),
        "unit": obj(
            ("name",),
            name=STRING,
            enable=BOOL,
            enabled=BOOL,
            mask=BOOL,
            contents=STRING,
            dropins=ListOf(Ref("dropin")),
        ),
        "dropin": obj(("name",), name=STRING, contents=STRING),
        "networkd": obj(units=ListOf(Ref("networkdUnit"))),
        "networkdUnit": obj(("name",), name=STRING, contents=STRING, dropins=ListOf(Ref("dropin"))),
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


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


def _resource(r: dict[str, Any] | None) -> dict[str, Any] | None:
    if not r:
        return None
    return _drop_none(
        {
            "source": r.get("source"),
            "compression": r.get("compression") or None,
            "verification": r.get("verification"),
            "httpHeaders": r.get("httpHeaders"),
        }
    )


def _node_path(
    node: dict[str, Any], path: str, fs_paths: dict[str, str], report: Report
) -> str | None:
    fs_name = node.get("filesystem") or "root"
    mount = fs_paths.get(fs_name)
    if mount is None:
        report.error(
            f"{path}.filesystem",
            f"filesystem {fs_name!r} has no known mount path on Wellcar; put the node on "
            "'root' or write a spec 3 config with filesystems[].path",
        )
        return None
    return (
        (mount.rstrip("/") + "/" + str(node["path"]).lstrip("/")) if mount != "/" else node["path"]
    )


def _mib(sectors: int | None, path: str, report: Report) -> int | None:
    if sectors is None:
        return None
    if sectors % SECTORS_PER_MIB:
        report.error(path, f"{sectors} sectors is not a whole number of MiB; spec 3 needs MiB")
        return None
    return sectors // SECTORS_PER_MIB


def translate(document: dict[str, Any], report: Report) -> dict[str, Any]:
    """A 2.x document (already checked) as a 3.1.0 document; problems go to report."""
    ign = document.get("ignition") or {}
    refs = ign.get("config") or {}
    out: dict[str, Any] = {
        "ignition": _drop_none(
            {
                "version": "3.1.0",
                "config": _drop_none(
                    {
                        "merge": [_resource(r) for r in refs.get("append") or []],
                        "replace": _resource(refs.get("replace")),
                    }
                ),
                "timeouts": ign.get("timeouts"),
                "security": _drop_none(
                    {
                        "tls": _drop_none(
                            {
                                "certificateAuthorities": [
                                    _resource(r)
                                    for r in ((ign.get("security") or {}).get("tls") or {}).get(
                                        "certificateAuthorities"
                                    )
                                    or []
                                ]
                            }
                        )
                    }
                ),
                "proxy": ign.get("proxy"),
            }
        )
    }
    storage = document.get("storage") or {}
    fs_paths = dict(FILESYSTEM_PATHS)
    filesystems = []
    for i, fs in enumerate(storage.get("filesystems") or []):
        path = f"$.storage.filesystems[{i}]"
        name = fs.get("name")
        if name and fs.get("path"):
            fs_paths.setdefault(name, fs["path"])
        mount = fs.get("mount")
        if not mount:
            continue
        if name and name not in fs_paths:
            if "/" in name or name in (".", ".."):
                report.error(f"{path}.name", f"{name!r} cannot name a mount point")
                continue
            fs_paths[name] = f"{NAMED_FILESYSTEMS_DIR}/{name}"
        create = mount.get("create") or {}
        filesystems.append(
            _drop_none(
                {
                    "device": mount.get("device"),
                    "format": mount.get("format"),
                    "wipeFilesystem": mount.get("wipeFilesystem") or create.get("force"),
                    "label": mount.get("label"),
                    "uuid": mount.get("uuid"),
                    "options": mount.get("options") or create.get("options"),
                    "path": fs_paths.get(name) if name and name not in FILESYSTEM_PATHS else None,
                }
            )
        )
    disks = []
    for i, disk in enumerate(storage.get("disks") or []):
        parts = []
        for j, p in enumerate(disk.get("partitions") or []):
            base = f"$.storage.disks[{i}].partitions[{j}]"
            parts.append(
                _drop_none(
                    {
                        "label": p.get("label"),
                        "number": p.get("number"),
                        "sizeMiB": _mib(p.get("size"), f"{base}.size", report),
                        "startMiB": _mib(p.get("start"), f"{base}.start", report),
                        "typeGuid": p.get("typeGuid"),
                        "guid": p.get("guid"),
                        "wipePartitionEntry": p.get("wipePartitionEntry"),
                        "shouldExist": p.get("shouldExist"),
                    }
                )
            )
        disks.append(
            _drop_none(
                {"device": disk["device"], "wipeTable": disk.get("wipeTable"), "partitions": parts}
            )
        )
    files = []
    for i, f in enumerate(storage.get("files") or []):
        node_path = _node_path(f, f"$.storage.files[{i}]", fs_paths, report)
        contents = _resource(f.get("contents"))
        entry = {
            "path": node_path,
            "mode": f.get("mode"),
            "user": f.get("user"),
            "group": f.get("group"),
        }
        if f.get("append"):
            entry["append"] = [contents] if contents else []
            entry["overwrite"] = f.get("overwrite")
        else:
            entry["contents"] = contents
            overwrite = f.get("overwrite")
            # v2 replaced files by default; v3 refuses to without contents.
            entry["overwrite"] = (contents is not None) if overwrite is None else overwrite
        files.append(_drop_none(entry))
    directories = []
    for i, d in enumerate(storage.get("directories") or []):
        node_path = _node_path(d, f"$.storage.directories[{i}]", fs_paths, report)
        directories.append(
            _drop_none(
                {
                    "path": node_path,
                    "mode": d.get("mode"),
                    "user": d.get("user"),
                    "group": d.get("group"),
                    "overwrite": d.get("overwrite"),
                }
            )
        )
    links = []
    for i, link in enumerate(storage.get("links") or []):
        node_path = _node_path(link, f"$.storage.links[{i}]", fs_paths, report)
        links.append(
            _drop_none(
                {
                    "path": node_path,
                    "target": link.get("target"),
                    "hard": link.get("hard"),
                    "user": link.get("user"),
                    "group": link.get("group"),
                    "overwrite": link.get("overwrite"),
                }
            )
        )
    for i, unit in enumerate((document.get("networkd") or {}).get("units") or []):
        files.append(_networkd_file(unit, f"$.networkd.units[{i}]"))
        for dropin in unit.get("dropins") or []:
            files.append(
                _networkd_file(dropin, "", directory=f"/etc/systemd/network/{unit['name']}.d")
            )
    out["storage"] = _drop_none(
        {
            "disks": disks,
            "raid": storage.get("raid"),
            "filesystems": filesystems,
            "files": files,
            "directories": directories,
            "links": links,
        }
    )
    units = []
    for unit in (document.get("systemd") or {}).get("units") or []:
        enabled = unit.get("enabled")
        if enabled is None and unit.get("enable"):
            enabled = True  # 2.0's deprecated "enable"
        units.append(
            _drop_none(
                {
                    "name": unit["name"],
                    "enabled": enabled,
                    "mask": unit.get("mask"),
                    "contents": unit.get("contents"),
                    "dropins": unit.get("dropins"),
                }
            )
        )
    out["systemd"] = _drop_none({"units": units})
    passwd = document.get("passwd") or {}
    users = []
    for user in passwd.get("users") or []:
        flat = {k: v for k, v in user.items() if k != "create"}
        for key, value in (user.get("create") or {}).items():
            flat.setdefault(key, value)  # 2.0's deprecated "create" block
        users.append(_drop_none(flat))
    out["passwd"] = _drop_none({"users": users, "groups": passwd.get("groups")})
    return v3_0.with_version(_drop_none(out), "3.1.0")


def _networkd_file(
    unit: dict[str, Any], _path: str, directory: str = "/etc/systemd/network"
) -> dict[str, Any]:
    from wellcar.ignition.dataurl import encode_data_url

    contents = str(unit.get("contents") or "").encode()
    return {
        "path": f"{directory}/{unit['name']}",
        "mode": 0o644,
        "overwrite": True,
        "contents": {"source": encode_data_url(contents, base64_encoded=False)},
    }
