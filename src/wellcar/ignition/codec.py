"""Typed config <-> JSON-shaped data, driven by the dataclass fields of `types`."""

from __future__ import annotations

import types as pytypes
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from wellcar.ignition.types import Config, json_key

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def decode(cls: type[T], data: Any) -> T:
    """Build cls from checked JSON data (the structural check has already run)."""
    if not isinstance(data, dict):
        return cls()
    hints = _hints(cls)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw = data.get(json_key(f))
        if raw is not None:
            values[f.name] = _decode_value(hints[f.name], raw)
    return cls(**values)


def _decode_value(tp: Any, raw: Any) -> Any:
    origin = get_origin(tp)
    if origin is tuple:
        (item, _ellipsis) = get_args(tp)
        return tuple(_decode_value(item, v) for v in raw if v is not None)
    if origin in (Union, pytypes.UnionType):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _decode_value(inner, raw)
    if isinstance(tp, type) and is_dataclass(tp):
        return decode(tp, raw)
    return raw


def decode_config(data: dict[str, Any]) -> Config:
    return decode(Config, data)


def encode(value: Any) -> Any:
    """JSON data for a typed value, leaving out unset (None, empty) members as Ignition does."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = encode(getattr(value, f.name))
            if item is not None and item != {} and item != []:
                out[json_key(f)] = item
        return out
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value
