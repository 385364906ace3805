"""Merging a child config into its parent, by Ignition's rules: the child's set values win,
keyed lists (files by path, units by name, ...) merge entry by entry, other lists append."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

from wellcar.ignition.types import (
    Config,
    Directory,
    Disk,
    Dropin,
    File,
    Filesystem,
    Group,
    HttpHeader,
    Link,
    Luks,
    Partition,
    Raid,
    Storage,
    Unit,
    User,
)

T = TypeVar("T")

_KEYS: dict[type, Callable[[Any], object]] = {
    Disk: lambda d: d.device,
    Partition: lambda p: ("number", p.number) if p.number else ("label", p.label),
    Raid: lambda r: r.name,
    Luks: lambda v: v.name,
    Filesystem: lambda f: f.device,
    File: lambda f: f.path,
    Directory: lambda d: d.path,
    Link: lambda link: link.path,
    Unit: lambda u: u.name,
    Dropin: lambda d: d.name,
    User: lambda u: u.name,
    Group: lambda g: g.name,
    HttpHeader: lambda h: h.name,
}


def merge(parent: T, child: T) -> T:
    if not (is_dataclass(parent) and is_dataclass(child)):
        return child if child is not None else parent
    changes = {}
    for f in fields(parent):
        changes[f.name] = _merge_value(getattr(parent, f.name), getattr(child, f.name))
    merged: T = replace(parent, **changes)  # type: ignore[type-var]
    if isinstance(merged, Storage) and isinstance(child, Storage):
        return _one_node_per_path(merged, child)  # type: ignore[return-value]
    return merged


def _merge_value(parent: Any, child: Any) -> Any:
    if isinstance(parent, tuple):
        return _merge_list(parent, child)
    if is_dataclass(parent):
        return merge(parent, child)
    return parent if child is None else child


def _merge_list(parent: tuple[Any, ...], child: tuple[Any, ...]) -> tuple[Any, ...]:
    items = list(parent)
    for item in child:
        key = _KEYS.get(type(item))
        if key is None:
            if is_dataclass(item) or item not in items:
                items.append(item)
            continue
        for index, existing in enumerate(items):
            if key(existing) == key(item):
                items[index] = merge(existing, item)
                break
        else:
            items.append(item)
    return tuple(items)


def _one_node_per_path(merged: Storage, child: Storage) -> Storage:
    """A child's file, directory or link at a path replaces the parent's node of another kind."""
    files = {f.path for f in child.files}
    dirs = {d.path for d in child.directories}
    links = {link.path for link in child.links}
    return replace(
        merged,
        files=tuple(f for f in merged.files if f.path not in dirs | links),
        directories=tuple(d for d in merged.directories if d.path not in files | links),
        links=tuple(link for link in merged.links if link.path not in files | dirs),
    )


def merge_configs(parent: Config, child: Config) -> Config:
    return merge(parent, child)
