"""Semantic checks of a typed config, the rules Ignition's validators enforce beyond
the JSON types, plus what Wellcar cannot do (so `wellcar config validate` answers
"will this work here?"). Every entry names the JSON path of the offending value.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Iterable

from wellcar.ignition.cloud_sources import parse_s3_url
from wellcar.ignition.dataurl import decode_data_url
from wellcar.ignition.errors import FetchError
from wellcar.ignition.flatcar_units import refused
from wellcar.ignition.kernel_arguments import check_kernel_arguments
from wellcar.ignition.report import Report
from wellcar.ignition.types import Config, Group, Owner, Resource, User

UNIT_SUFFIXES = (
    ".service", ".socket", ".device", ".mount", ".automount", ".swap",
    ".target", ".path", ".timer", ".slice", ".scope",
)  # fmt: skip
FILESYSTEM_FORMATS = ("ext4", "btrfs", "xfs", "vfat", "swap", "none")
FETCHABLE_SCHEMES = ("data", "http", "https", "oem", "tftp", "s3", "arn", "gs")
_HASH = re.compile(r"^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$")
_LABEL_LIMITS = {"ext4": 16, "vfat": 11, "xfs": 12, "btrfs": 256, "swap": 15}


def validate(config: Config, report: Report) -> None:
    _check_ignition(config, report)
    _check_storage(config, report)
    _check_systemd(config, report)
    _check_passwd(config, report)
    _check_unsupported(config, report)
    check_kernel_arguments(config.kernel_arguments, report)


def check_resource(resource: Resource, path: str, report: Report, *, needs_source: bool) -> None:
    source = resource.source
    if not source:  # Ignition treats an empty source as none (util.NilOrEmpty)
        if needs_source:
            report.error(f"{path}.source", "is required")
        if resource.verification.hash is not None:
            report.error(f"{path}.verification.hash", "verification needs a source to verify")
        return
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme not in FETCHABLE_SCHEMES:
        report.error(
            f"{path}.source",
            f"{source[:60]!r} is not a data:, http(s), oem://, tftp://, s3://, arn: or gs:// URL",
        )
    elif scheme in ("s3", "arn"):
        try:
            parse_s3_url(source)
        except FetchError as exc:
            report.error(f"{path}.source", str(exc))
    elif scheme == "data":
        try:
            decode_data_url(source)
        except FetchError as exc:
            report.error(f"{path}.source", str(exc))
    if resource.compression not in (None, "", "gzip"):
        report.error(f"{path}.compression", "must be 'gzip' or unset")
    hash_value = resource.verification.hash
    if hash_value is not None and not _HASH.match(hash_value):
        report.error(
            f"{path}.verification.hash",
            "must be sha256-<64 hex digits> or sha512-<128 hex digits>",
        )
    if resource.http_headers and scheme not in ("http", "https"):
        report.error(f"{path}.httpHeaders", "are only allowed for http(s) sources")
    seen: set[str] = set()
    for i, header in enumerate(resource.http_headers):
        if not header.name or header.name.lower() in seen:
            report.error(f"{path}.httpHeaders[{i}].name", "must be set and unique")
        seen.add(header.name.lower())


def _check_ignition(config: Config, report: Report) -> None:
    refs = config.ignition.config
    for i, ref in enumerate(refs.merge):
        check_resource(ref, f"$.ignition.config.merge[{i}]", report, needs_source=True)
    check_resource(refs.replace, "$.ignition.config.replace", report, needs_source=False)
    cas = config.ignition.security.tls.certificate_authorities
    for i, ca in enumerate(cas):
        path = f"$.ignition.security.tls.certificateAuthorities[{i}]"
        check_resource(ca, path, report, needs_source=True)
    timeouts = config.ignition.timeouts
    for key, value in (
        ("httpResponseHeaders", timeouts.http_response_headers),
        ("httpTotal", timeouts.http_total),
    ):
        if value is not None and value < 0:
            report.error(f"$.ignition.timeouts.{key}", "must not be negative")
    proxy = config.ignition.proxy
    for key, url in (("httpProxy", proxy.http_proxy), ("httpsProxy", proxy.https_proxy)):
        if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            report.error(f"$.ignition.proxy.{key}", "must be an http:// or https:// URL")


def check_node_path(path_value: str, path: str, report: Report) -> None:
    if not path_value.startswith("/"):
        report.error(path, f"{path_value!r} must be an absolute path")
    elif ".." in path_value.split("/"):
        report.error(path, f"{path_value!r} must not contain '..'")
    elif "\0" in path_value:
        report.error(path, "must not contain a NUL byte")
    elif path_value != canonical_path(path_value):
        # Ignition's ErrDirtyPath: a trailing slash, "//" or "/./" is refused, not fixed.
        report.error(path, f"{path_value!r} is not canonical; write {canonical_path(path_value)!r}")


def canonical_path(path_value: str) -> str:
    """What Go's path.Clean makes of an absolute path (Python keeps a leading "//")."""
    return "/" + posixpath.normpath(path_value).lstrip("/")


def _check_owner(owner: Owner, path: str, report: Report) -> None:
    if owner.id is not None and owner.name is not None:
        report.error(path, "give either id or name, not both")
    if owner.id is not None and owner.id < 0:
        report.error(f"{path}.id", "must not be negative")


def _check_mode(mode: int | None, path: str, report: Report) -> None:
    if mode is None:
        return
    if not 0 <= mode <= 0o7777:
        report.error(path, f"{mode} is not a mode (decimal, e.g. 420 for 0644)")
    elif mode & 0o7000:
        report.warn(path, "setuid/setgid/sticky bits need spec 3.6; they are dropped")


def _duplicates(keys: Iterable[tuple[str, str]], what: str, report: Report) -> None:
    first: dict[str, str] = {}
    for key, path in keys:
        if key in first:
            report.error(path, f"duplicate {what} {key!r} (also at {first[key]})")
        else:
            first[key] = path


def _check_storage(config: Config, report: Report) -> None:
    storage = config.storage
    nodes: list[tuple[str, str]] = []
    for i, f in enumerate(storage.files):
        base = f"$.storage.files[{i}]"
        check_node_path(f.path, f"{base}.path", report)
        nodes.append((f.path.rstrip("/") or "/", f"{base}.path"))
        _check_owner(f.user, f"{base}.user", report)
        _check_owner(f.group, f"{base}.group", report)
        _check_mode(f.mode, f"{base}.mode", report)
        check_resource(f.contents, f"{base}.contents", report, needs_source=False)
        if f.overwrite and f.contents.source is None:
            report.error(f"{base}.overwrite", "overwrite needs contents.source to be set")
        for j, fragment in enumerate(f.append):
            check_resource(fragment, f"{base}.append[{j}]", report, needs_source=True)
    for i, d in enumerate(storage.directories):
        base = f"$.storage.directories[{i}]"
        check_node_path(d.path, f"{base}.path", report)
        nodes.append((d.path.rstrip("/") or "/", f"{base}.path"))
        _check_owner(d.user, f"{base}.user", report)
        _check_owner(d.group, f"{base}.group", report)
        _check_mode(d.mode, f"{base}.mode", report)
    for i, link in enumerate(storage.links):
        base = f"$.storage.links[{i}]"
        check_node_path(link.path, f"{base}.path", report)
        nodes.append((link.path.rstrip("/") or "/", f"{base}.path"))
        _check_owner(link.user, f"{base}.user", report)
        _check_owner(link.group, f"{base}.group", report)
        if not link.target:
            report.error(f"{base}.target", "is required")
        elif link.hard and not link.target.startswith("/"):
            report.error(f"{base}.target", "a hard link's target must be an absolute path")
    _duplicates(nodes, "path", report)
    _check_node_relations(config, report)
    _check_disks(config, report)


def _check_node_relations(config: Config, report: Report) -> None:
    """Ignition's storage and config rules that look at two entries at once."""
    storage = config.storage
    link_paths = [link.path for link in storage.links]
    paths: list[tuple[str, str]] = [
        *((f"$.storage.files[{i}].path", f.path) for i, f in enumerate(storage.files)),
        *((f"$.storage.directories[{i}].path", d.path) for i, d in enumerate(storage.directories)),
        *((f"$.storage.links[{i}].path", k.path) for i, k in enumerate(storage.links)),
    ]
    for where, node_path in paths:
        for link_path in link_paths:
            if node_path.startswith(link_path.rstrip("/") + "/"):
                report.error(
                    where, f"{node_path!r} is under {link_path!r}, a link this config creates"
                )
    directories = {d.path for d in storage.directories}
    for i, link in enumerate(storage.links):
        if link.hard and link.target and canonical_path(link.target) in directories:
            report.error(f"$.storage.links[{i}].target", "a hard link cannot point to a directory")
    unit_paths: set[str] = set()
    for unit in config.systemd.units:
        if unit.contents:
            unit_paths.add(f"/etc/systemd/system/{unit.name}")
        for dropin in unit.dropins:
            if dropin.contents:
                unit_paths.add(f"/etc/systemd/system/{unit.name}.d/{dropin.name}")
    for where, node_path in paths:
        if node_path in unit_paths:
            report.error(where, f"{node_path!r} is also written by systemd.units; keep one of them")


def _check_disks(config: Config, report: Report) -> None:
    storage = config.storage
    _duplicates(
        ((d.device, f"$.storage.disks[{i}].device") for i, d in enumerate(storage.disks)),
        "disk",
        report,
    )
    for i, disk in enumerate(storage.disks):
        base = f"$.storage.disks[{i}]"
        if not disk.device.startswith("/"):
            report.error(f"{base}.device", "must be an absolute path such as /dev/vdb")
        numbers: list[tuple[str, str]] = []
        for j, part in enumerate(disk.partitions):
            pbase = f"{base}.partitions[{j}]"
            if part.number is not None and part.number < 0:
                report.error(f"{pbase}.number", "must not be negative")
            if part.number:
                numbers.append((str(part.number), f"{pbase}.number"))
            elif not part.label:
                report.error(pbase, "needs a number or a label to identify it")
            if part.label is not None and (len(part.label) > 36 or ":" in part.label):
                report.error(f"{pbase}.label", "must be at most 36 characters, without ':'")
            for key, value in (("typeGuid", part.type_guid), ("guid", part.guid)):
                if value and not _GUID.match(value):
                    report.error(f"{pbase}.{key}", f"{value!r} is not a GUID")
            for key, size in (("sizeMiB", part.size_mib), ("startMiB", part.start_mib)):
                if size is not None and size < 0:
                    report.error(f"{pbase}.{key}", "must not be negative")
        _duplicates(numbers, "partition number", report)
    for i, fs in enumerate(storage.filesystems):
        base = f"$.storage.filesystems[{i}]"
        if not fs.device.startswith("/"):
            report.error(f"{base}.device", "must be an absolute path such as /dev/disk/by-label/X")
        if fs.format is not None and fs.format not in FILESYSTEM_FORMATS:
            report.error(f"{base}.format", f"must be one of {', '.join(FILESYSTEM_FORMATS)}")
        if fs.path is not None:
            check_node_path(fs.path, f"{base}.path", report)
            if fs.format in (None, "swap", "none"):
                report.error(f"{base}.path", "a mount path needs a mountable format")
        if fs.label is not None and not fs.format:
            report.error(f"{base}.label", "a filesystem label needs a format")
        limit = _LABEL_LIMITS.get(fs.format or "")
        if fs.label is not None and limit is not None and len(fs.label) > limit:
            report.error(f"{base}.label", f"{fs.format} labels have at most {limit} characters")
        if fs.uuid is not None and fs.format != "vfat" and not _GUID.match(fs.uuid):
            report.error(f"{base}.uuid", f"{fs.uuid!r} is not a UUID")
    _duplicates(
        (
            (fs.device, f"$.storage.filesystems[{i}].device")
            for i, fs in enumerate(storage.filesystems)
        ),
        "filesystem device",
        report,
    )


def _check_systemd(config: Config, report: Report) -> None:
    units = config.systemd.units
    _duplicates(
        ((u.name, f"$.systemd.units[{i}].name") for i, u in enumerate(units)), "unit", report
    )
    for i, unit in enumerate(units):
        base = f"$.systemd.units[{i}]"
        if "/" in unit.name or not unit.name.endswith(UNIT_SUFFIXES):
            report.error(f"{base}.name", f"{unit.name!r} is not a unit name (e.g. foo.service)")
        if unit.contents is not None:
            _check_unit_contents(unit.contents, f"{base}.contents", report)
            _check_aliases(unit.name, unit.contents, f"{base}.contents", report)
        if unit.mask and unit.enabled:
            report.error(f"{base}.enabled", "a masked unit cannot be enabled")
        if (
            unit.enabled
            and unit.contents
            and not any(
                install_values(unit.contents, key)
                for key in ("WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also")
            )
        ):
            # Ignition's warning: systemd's preset enables nothing for such a unit.
            report.warn(
                f"{base}.contents",
                f"{unit.name} is enabled but has no [Install] section, so enabling does nothing",
            )
        flatcar = refused(unit.name)
        if flatcar is not None and unit.contents is None:
            report.error(
                f"{base}.name", f"{unit.name} is Flatcar's and not on Wellcar: {flatcar.note}"
            )
        for j, dropin in enumerate(unit.dropins):
            if "/" in dropin.name or not dropin.name.endswith(".conf"):
                report.error(f"{base}.dropins[{j}].name", "must be a file name ending in .conf")
            if dropin.contents is not None:
                _check_unit_contents(dropin.contents, f"{base}.dropins[{j}].contents", report)
        _duplicates(
            ((d.name, f"{base}.dropins[{j}].name") for j, d in enumerate(unit.dropins)),
            "drop-in",
            report,
        )


def _check_unit_contents(contents: str, path: str, report: Report) -> None:
    continued = False
    for number, line in enumerate(contents.splitlines(), 1):
        stripped = line.strip()
        ok = (
            continued
            or not stripped
            or stripped[0] in "#;"
            or (stripped.startswith("[") and stripped.endswith("]"))
            or "=" in stripped
        )
        if not ok:
            report.error(path, f"line {number} is not 'Key=value', a [Section] or a comment")
            return
        continued = stripped.endswith("\\")


def install_values(contents: str, key: str) -> list[str]:
    """The words of every `key=` line in the [Install] section, continued lines joined."""
    logical: list[str] = []
    pending = ""
    for line in contents.splitlines():
        stripped = line.strip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    section = ""
    values: list[str] = []
    for line in logical:
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Install" and "=" in line and line[0] not in "#;":
            name, _, value = line.partition("=")
            if name.strip() == key:
                values += value.split()
    return values


def _check_aliases(name: str, contents: str, path: str, report: Report) -> None:
    # systemd's rules for Alias= (systemctl refuses the enable otherwise): the same unit
    # type, and a template's aliases are templates, a plain unit's are plain.
    suffix = name[name.rfind(".") :]
    template = "@." in name
    for alias in install_values(contents, "Alias"):
        if not alias.endswith(suffix):
            report.error(path, f"Alias={alias}: an alias of {name} must end in {suffix}")
        elif ("@." in alias) != template or ("@" in alias and not template):
            kind = "a template like" if template else "a plain name like"
            report.error(path, f"Alias={alias}: an alias of {name} must be {kind} {name}")


def _check_passwd(config: Config, report: Report) -> None:
    passwd = config.passwd
    named: tuple[tuple[str, tuple[User | Group, ...]], ...] = (
        ("users", passwd.users),
        ("groups", passwd.groups),
    )
    for kind, entries in named:
        _duplicates(
            ((e.name, f"$.passwd.{kind}[{i}].name") for i, e in enumerate(entries)),
            kind[:-1],
            report,
        )
        for i, entry in enumerate(entries):
            if not _NAME.match(entry.name) or len(entry.name) > 32:
                report.error(f"$.passwd.{kind}[{i}].name", f"{entry.name!r} is not a valid name")
            if entry.password_hash is not None and any(c in entry.password_hash for c in ":\n"):
                report.error(
                    f"$.passwd.{kind}[{i}].passwordHash", "must not contain ':' or newlines"
                )
    for i, user in enumerate(passwd.users):
        base = f"$.passwd.users[{i}]"
        for j, key in enumerate(user.ssh_authorized_keys):
            if "\n" in key.strip():
                report.error(f"{base}.sshAuthorizedKeys[{j}]", "one key per entry, no newlines")
        for key, value in (("homeDir", user.home_dir), ("shell", user.shell)):
            if value is not None:
                check_node_path(value, f"{base}.{key}", report)
        if user.gecos is not None and any(c in user.gecos for c in ":\n"):
            report.error(f"{base}.gecos", "must not contain ':' or newlines")
        if user.uid is not None and user.uid < 0:
            report.error(f"{base}.uid", "must not be negative")
    for i, group in enumerate(passwd.groups):
        if group.gid is not None and group.gid < 0:
            report.error(f"$.passwd.groups[{i}].gid", "must not be negative")


def _check_unsupported(config: Config, report: Report) -> None:
    # Accepting these and doing nothing would give "a machine other than the one specified".
    unsupported = (
        ("$.storage.raid", bool(config.storage.raid), "software RAID"),
        ("$.storage.luks", bool(config.storage.luks), "LUKS encryption"),
    )
    for path, present, what in unsupported:
        if present:
            report.error(path, f"{what} is not supported by Wellcar yet; remove this section")
