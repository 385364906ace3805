"""Butane's YAML, read as go-yaml (which Butane uses) reads it, not as YAML 1.1.

go-yaml decodes each scalar into the type of the Go field it lands in: a string field gets
the scalar's text (`inline: no` is "no", `inline: 1.10` is "1.10"), an integer field
parses it with base 0 (`mode: 0644` is 420, `0o644` and `0x1a4` too), a boolean field
takes true/false and YAML 1.1's yes/no/on/off. Keys are always strings (`on:` is "on").
PyYAML only builds the node tree here; plain scalars stay text (`Plain`) until the
Ignition spec says which type their field has (`type_by_spec`). Host side only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wellcar.ignition.report import Report, child
from wellcar.ignition.schema import ListOf, Obj, Ref, Scalar

NULLS = ("", "~", "null", "Null", "NULL")
TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE")
FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE")
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$")
_CORE_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


class Plain(str):
    """The text of a plain (unquoted) scalar, typed later by the field it lands in."""


def go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), as go-yaml decodes into an integer field."""
    if not _GO_INT.match(text):
        return None
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    prefix = digits[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        return sign * int(digits[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix])
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits[1:], 8)
    return sign * int(digits)


def go_bool(value: Any) -> bool | None:
    """A boolean field's value: YAML booleans, and yes/no/on/off as go-yaml allows."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Plain):
        if value in TRUE:
            return True
        if value in FALSE:
            return False
    return None


def core_value(text: Plain) -> Any:
    """A plain scalar no spec field types, resolved as go-yaml resolves YAML 1.2 core."""
    if text in NULLS:
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _CORE_INT.match(text):
        return go_int(text.replace("0o", "0"))
    if _CORE_FLOAT.match(text):
        return float(text)
    return str(text)


def load(text: str, report: Report) -> Any:
    """The document with plain scalars as Plain (None when empty/null), quoted and block
    scalars as str; a key given twice is an error, as in go-yaml."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    return None if node is None else _value(node, "$", report)


def _value(node: Any, path: str, report: Report) -> Any:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.style is None:
            return None if node.value in NULLS and node.tag.endswith(":null") else Plain(node.value)
        return str(node.value)
    if isinstance(node, yaml.SequenceNode):
        return [_value(item, child(path, i), report) for i, item in enumerate(node.value)]
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        if key in out:
            report.error(child(path, key), "is given twice in this mapping")
        out[key] = _value(value_node, child(path, key), report)
    return out


def type_by_spec(value: Any, kind: Scalar | Ref | ListOf | None, defs: Mapping[str, Obj]) -> Any:
    """value with each Plain converted to the type of its field in the Ignition spec
    (left as text when it does not fit, so the spec check names the field)."""
    if isinstance(value, dict):
        definition = defs.get(kind.name) if isinstance(kind, Ref) else None
        fields = definition.fields if definition is not None else {}
        return {k: type_by_spec(v, fields.get(k), defs) for k, v in value.items()}
    if isinstance(value, list):
        item = kind.item if isinstance(kind, ListOf) else None
        return [type_by_spec(v, item, defs) for v in value]
    if not isinstance(value, Plain):
        return value
    if isinstance(kind, Scalar):
        if kind.kind is str:
            return str(value)
        if kind.kind is int:
            number = go_int(value)
            return number if number is not None else str(value)
        if kind.kind is bool:
            flag = go_bool(value)
            return flag if flag is not None else str(value)
    return core_value(value)
