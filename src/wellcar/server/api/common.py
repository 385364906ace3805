"""Shared pieces of the REST handlers: transactions, paging parameters, routers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from wellcar.server.db.engine import READ_ONLY as READ_ONLY_OPTION
from wellcar.server.db.engine import begin_write

from .deps import get_engine
from .errors import ApiRoute

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Fields = TypeVar("Fields", bound=DataclassInstance)
else:
    Fields = TypeVar("Fields")

EngineDep = Annotated[Engine, Depends(get_engine)]

# Nebraska's paging: 1-based pages (0 counts as 1), 10 per page unless asked otherwise.
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000
PageParam = Annotated[int, Query(ge=0, le=MAX_PAGE, description="1-based page number (0 means 1)")]
PerPageParam = Annotated[
    int, Query(ge=0, le=MAX_PER_PAGE, description="items per page (0 means the default, 10)")
]


def paging(page: int, perpage: int) -> tuple[int, int]:
    """(limit, offset) for Nebraska's page/perpage."""
    page = max(page, 1)
    perpage = perpage if perpage > 0 else DEFAULT_PER_PAGE
    return perpage, (page - 1) * perpage


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction committed before the response is sent and rolled back on any error."""
    with begin_write(engine) as conn:
        yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        yield conn


def make_router(tag: str) -> APIRouter:
    return APIRouter(tags=[tag], route_class=ApiRoute)


def fields_of(body: BaseModel, target: type[Fields], **given: Any) -> Fields:
    """The data layer's input dataclass for a request body: the same-named fields, `sent`
    (the fields the caller gave, for updates), and `given` (nested parts, converted)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(target):
        if field.name in given:
            values[field.name] = given[field.name]
        elif field.name == "sent":
            values["sent"] = frozenset(body.model_fields_set)
        else:
            values[field.name] = getattr(body, field.name)
    return target(**values)
