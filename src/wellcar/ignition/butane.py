"""Butane YAML (`variant: flatcar` 1.0.0/1.1.0, `variant: wellcar` 1.0.0) to Ignition JSON.

Host side only: PyYAML is imported when a file is transpiled, never on the node. Keys are
snake_case and become camelCase; `inline`/`local` contents become data: URLs (the shortest
of URL-escaped, base64 and gzip+base64, as Butane's MakeDataURL); `*_local` shortcuts and
`storage.trees` read files under --files-dir, never outside it; `with_mount_unit` writes
the mount unit, named as `systemd-escape --path` names it. YAML is read as go-yaml reads
it (`butane_yaml`). The result is checked by the Ignition validator.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wellcar.ignition import butane_yaml
from wellcar.ignition.dataurl import encode_data_url
from wellcar.ignition.errors import ConfigInvalidError
from wellcar.ignition.parse import V3_CHAIN, parse_config
from wellcar.ignition.report import Report, child
from wellcar.ignition.schema import Ref
from wellcar.ignition.unit_names import escape_path

# (variant, version) -> the Ignition spec it emits
VARIANTS = {
    ("flatcar", "1.0.0"): "3.3.0",
    ("flatcar", "1.1.0"): "3.4.0",
    ("wellcar", "1.0.0"): "3.4.0",
}


@dataclass(frozen=True)
class Transpiled:
    config: dict[str, Any]
    report: Report  # warnings only (errors raise)


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return (head + "".join(p.capitalize() for p in rest)).replace("Mib", "MiB")


def data_url(data: bytes) -> tuple[str, str | None]:
    """(source, compression): the shortest encoding, as Butane picks it."""
    candidates: list[tuple[str, str | None]] = [
        (encode_data_url(data, base64_encoded=False), None),
        (encode_data_url(data, base64_encoded=True), None),
    ]
    zipped = gzip.compress(data, mtime=0)
    candidates.append((encode_data_url(zipped, base64_encoded=True), "gzip"))
    return min(candidates, key=lambda c: len(c[0]))


class _Translator:
    def __init__(self, files_dir: Path | None, report: Report) -> None:
        self.files_dir = files_dir
        self.report = report

    def local(self, name: Any, path: str) -> bytes:
        if self.files_dir is None:
            self.report.error(path, "local files need --files-dir")
            return b""
        if not isinstance(name, str) or os.path.isabs(name) or ".." in Path(name).parts:
            self.report.error(path, f"{name!r} must be a relative path inside --files-dir")
            return b""
        try:
            return (self.files_dir / name).read_bytes()
        except OSError as exc:
            self.report.error(path, f"cannot read {name}: {exc.strerror}")
            return b""

    def resource(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return self.value(value, path)
        out = self.mapping({k: v for k, v in value.items() if k not in ("inline", "local")}, path)
        given = [k for k in ("inline", "local", "source") if k in value]
        if len(given) > 1:
            self.report.error(path, f"give only one of {', '.join(given)}")
        data: bytes | None = None
        if "inline" in value:
            inline = value["inline"]
            data = b"" if inline is None else str(inline).encode()
        elif "local" in value:
            data = self.local(value["local"], child(path, "local"))
        if data is not None:
            out["source"], compression = data_url(data)
            if compression:
                out["compression"] = compression
        return out

    def value(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return self.mapping(value, path)
        if isinstance(value, list):
            return [self.value(v, child(path, i)) for i, v in enumerate(value)]
        return value

    def mapping(self, value: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            here = child(path, str(key))
            if key in ("contents", "key_file", "replace") and isinstance(item, dict):
                out[camel(key)] = self.resource(item, here)
            elif key in ("append", "merge", "certificate_authorities") and isinstance(item, list):
                out[camel(key)] = [self.resource(r, child(here, i)) for i, r in enumerate(item)]
            elif key == "contents_local":
                out["contents"] = self.local(item, here).decode(errors="replace")
            elif key == "ssh_authorized_keys_local" and isinstance(item, list):
                keys = out.setdefault("sshAuthorizedKeys", [])
                for i, name in enumerate(item):
                    text = self.local(name, child(here, i)).decode(errors="replace")
                    keys += [k for k in text.splitlines() if k.strip()]
            elif key == "ssh_authorized_keys" and isinstance(item, list):
                out.setdefault("sshAuthorizedKeys", [])
                out["sshAuthorizedKeys"] = [*item, *out["sshAuthorizedKeys"]]
            else:
                out[camel(str(key))] = self.value(item, here)
        return out


def _mount_unit(fs: dict[str, Any]) -> dict[str, Any]:
    """The unit Butane's ``with_mount_unit`` generates (its template, line for line in
    meaning): a mount that waits for the device's fsck, or a swap unit."""
    device = str(fs["device"])
    options = ",".join(fs.get("mountOptions") or [])
    option_line = f"Options={options}\n" if options else ""
    if fs.get("format") == "swap":
        contents = (
            "# Generated by Butane\n[Swap]\n"
            f"What={device}\n{option_line}\n[Install]\nRequiredBy=swap.target\n"
        )
        return {"name": escape_path(device, "swap"), "enabled": True, "contents": contents}
    fsck = f"systemd-fsck@{escape_path(device, 'service')}"
    contents = (
        f"# Generated by Butane\n[Unit]\nRequires={fsck}\nAfter={fsck}\n\n[Mount]\n"
        f"Where={fs['path']}\nWhat={device}\nType={fs.get('format')}\n{option_line}"
        "\n[Install]\nRequiredBy=local-fs.target\n"
    )
    return {"name": escape_path(str(fs["path"]), "mount"), "enabled": True, "contents": contents}


def _add_generated_unit(out: dict[str, Any], unit: dict[str, Any]) -> None:
    """As Butane merges what it generates with the config: a unit of the same name the
    user wrote keeps every field the user set; the generated one fills the rest."""
    units = out.setdefault("systemd", {}).setdefault("units", [])
    for index, existing in enumerate(units):
        if isinstance(existing, dict) and existing.get("name") == unit["name"]:
            units[index] = {**unit, **existing}
            return
    units.append(unit)


def _trees(trees: Any, translator: _Translator, report: Report) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    for i, tree in enumerate(trees or []):
        here = f"$.storage.trees[{i}]"
        local = tree.get("local") if isinstance(tree, dict) else None
        if translator.files_dir is None or not isinstance(local, str) or ".." in Path(local).parts:
            report.error(f"{here}.local", "needs --files-dir and a relative path inside it")
            continue
        base = translator.files_dir / local
        if not base.is_dir():
            report.error(f"{here}.local", f"{local} is not a directory under --files-dir")
            continue
        target = str(tree.get("path") or "/" + local).rstrip("/")
        for item in sorted(base.rglob("*")):
            if item.is_file() and not item.is_symlink():
                source, compression = data_url(item.read_bytes())
                contents: dict[str, Any] = {"source": source}
                if compression:
                    contents["compression"] = compression
                mode = 0o755 if item.stat().st_mode & 0o111 else 0o644
                rel = item.relative_to(base).as_posix()
                files.append({"path": f"{target}/{rel}", "mode": mode, "contents": contents})
    return files


# --- modes written in decimal ---------------------------------------------------------------
# YAML reads `mode: 644` as the number 644 (0o1204: sticky, -w- for the owner), almost never
# what was meant. As Butane, such a mode is an error when it is odd as written and would be
# an ordinary mode read as octal.
DECIMAL_MODE_MESSAGE = (
    "unreasonable mode would be reasonable if specified in octal; remember to add a "
    "leading zero (0644, not 644)"
)


def octal_reading(mode: int) -> int | None:
    """``mode``'s decimal digits read as octal (644 -> 0o644); None if a digit is 8 or 9."""
    if not 0 <= mode <= 7777:
        return None
    digits = str(mode)
    return None if any(d in "89" for d in digits) else int(digits, 8)


def is_ordinary_mode(mode: int, directory: bool) -> bool:
    """A mode people set on purpose: each less specific class has no bit the more specific
    lacks, readable by someone, nothing writable or executable without read, and no
    special bit where it makes no sense."""
    if mode == 0:
        return True  # no permissions: root ignores mode bits anyway
    classes = [(mode >> shift) & 7 for shift in (0, 3, 6)]  # other, group, owner
    seen_r = seen_w = seen_x = False
    for bits in classes:
        r, w, x = bool(bits & 4), bool(bits & 2), bool(bits & 1)
        if (seen_r and not r) or (seen_w and not w) or (seen_x and not x):
            return False
        if x and seen_r and not seen_x:  # rwxr-----: others read but do not execute
            return False
        if (w or x) and not r:
            return False
        seen_r, seen_w, seen_x = seen_r or r, seen_w or w, seen_x or x
    if not seen_r:
        return False
    if directory:
        return seen_x and not mode & 0o4000 and (not mode & 0o3000 or seen_w)
    if mode & 0o6000 and (not seen_x or mode & 0o002):
        return False
    return not mode & 0o1000


def decimal_mode_mistake(mode: int, directory: bool) -> bool:
    meant = octal_reading(mode)
    return (
        meant is not None
        and not is_ordinary_mode(mode, directory)
        and is_ordinary_mode(meant, directory)
    )


def _check_decimal_modes(out: dict[str, Any], report: Report) -> None:
    storage = out.get("storage")
    if not isinstance(storage, dict):
        return
    for kind, directory in (("files", False), ("directories", True)):
        for index, node in enumerate(storage.get(kind) or []):
            mode = node.get("mode") if isinstance(node, dict) else None
            if isinstance(mode, bool) or not isinstance(mode, int):
                continue
            if decimal_mode_mistake(mode, directory):
                report.error(f"$.storage.{kind}.{index}.mode", DECIMAL_MODE_MESSAGE)


def transpile(text: str, files_dir: Path | None = None, *, strict: bool = False) -> Transpiled:
    """Ignition JSON data for Butane YAML; raises ConfigInvalidError on errors (or, with
    strict, on warnings too)."""
    import yaml  # host-side only; the node never transpiles

    report = Report()
    try:
        document = butane_yaml.load(text, report)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        report.error("$", f"invalid YAML{where}: {getattr(exc, 'problem', exc)}")
        raise ConfigInvalidError(report, "butane") from None
    if not isinstance(document, dict) or report.has_errors:
        if not report.has_errors:
            report.error("$", "a Butane config must be a YAML mapping")
        raise ConfigInvalidError(report, "butane")
    variant, version = document.pop("variant", None), document.pop("version", None)
    spec = VARIANTS.get((str(variant), str(version)))
    if spec is None:
        known = ", ".join(f"{v} {n}" for v, n in VARIANTS)
        report.error("$.version", f"unknown variant/version {variant} {version}; known: {known}")
        raise ConfigInvalidError(report, "butane")
    translator = _Translator(files_dir, report)
    storage = document.get("storage") if isinstance(document.get("storage"), dict) else None
    trees = storage.pop("trees", None) if storage is not None else None
    out = translator.mapping(document, "$")
    out = {"ignition": {**(out.get("ignition") or {}), "version": spec}, **out}
    target = next(s for s, _ in V3_CHAIN if s.version == spec)
    out = butane_yaml.type_by_spec(out, Ref(target.root), target.definitions)
    if trees:
        out.setdefault("storage", {}).setdefault("files", []).extend(
            _trees(trees, translator, report)
        )
    for fs in (out.get("storage") or {}).get("filesystems") or []:
        if (
            isinstance(fs, dict)
            and butane_yaml.go_bool(fs.pop("withMountUnit", False))
            and (fs.get("path") or fs.get("format") == "swap")  # swap needs no path
        ):
            _add_generated_unit(out, _mount_unit(fs))
    _check_decimal_modes(out, report)
    if not report.has_errors:
        try:
            report.extend(parse_config(json.dumps(out).encode(), "butane").report)
        except ConfigInvalidError as exc:
            report.extend(exc.report)
    if report.has_errors or (strict and report.warnings):
        raise ConfigInvalidError(report, "butane")
    return Transpiled(out, report)
