"""The shape of a config as one spec version declares it, and the structural check.

Each spec module (v3_0 ... v3_5, v2_x) declares its definitions the way Ignition's JSON
schema does, as named objects that refer to each other, and derives them from the previous
version's, so a version's module reads as "what changed". The check reports unknown keys
as warnings (like Ignition's "unused key") and wrong types or missing keys as errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wellcar.ignition.report import ROOT, Report, child


@dataclass(frozen=True)
class Scalar:
    kind: type  # str, int or bool


@dataclass(frozen=True)
class Ref:
    name: str  # a definition of the same spec


@dataclass(frozen=True)
class ListOf:
    item: Scalar | Ref


Kind = Scalar | Ref | ListOf

STRING = Scalar(str)
INT = Scalar(int)
BOOL = Scalar(bool)
STRINGS = ListOf(STRING)


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, Kind]
    required: frozenset[str] = field(default_factory=frozenset)

    def with_fields(self, **more: Kind) -> Obj:
        return Obj({**self.fields, **more}, self.required)

    def requiring(self, *names: str) -> Obj:
        return Obj(self.fields, self.required | frozenset(names))

    def not_requiring(self, *names: str) -> Obj:
        return Obj(self.fields, self.required - frozenset(names))


def obj(required: tuple[str, ...] = (), **fields: Kind) -> Obj:
    return Obj(dict(fields), frozenset(required))


@dataclass(frozen=True)
class Spec:
    version: str
    definitions: Mapping[str, Obj]
    root: str = "config"

    def derive(self, version: str, **changed: Obj) -> Spec:
        return Spec(version, {**self.definitions, **changed}, self.root)

    def check(self, document: Any, report: Report) -> None:
        _check(document, Ref(self.root), self.definitions, ROOT, report)


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _check(value: Any, kind: Kind, defs: Mapping[str, Obj], path: str, report: Report) -> None:
    if value is None:
        return  # null means "not set" everywhere in the spec
    if isinstance(kind, Scalar):
        ok = isinstance(value, kind.kind) and (kind.kind is bool or not isinstance(value, bool))
        if not ok:
            report.error(path, f"must be {_TYPE_NAMES[kind.kind]}, not {_json_type(value)}")
        return
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            report.error(path, f"must be an array, not {_json_type(value)}")
            return
        for index, item in enumerate(value):
            if item is None:
                report.error(child(path, index), "must not be null")
            else:
                _check(item, kind.item, defs, child(path, index), report)
        return
    definition = defs[kind.name]
    if not isinstance(value, dict):
        report.error(path, f"must be an object, not {_json_type(value)}")
        return
    for key, item in value.items():
        if key not in definition.fields:
            report.warn(child(path, key), "unused key (not in this spec version); ignored")
        else:
            _check(item, definition.fields[key], defs, child(path, key), report)
    for key in sorted(definition.required):
        if value.get(key) is None:
            report.error(child(path, key), "is required")
