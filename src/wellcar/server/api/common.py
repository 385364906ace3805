"""Shared pieces of the REST handlers: transactions, paging parameters, routers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Connection, Engine

from wellcar.server.db.engine import READ_ONLY as READ_ONLY_OPTION
from wellcar.server.db.engine import begin_write

from .deps import get_engine
from .errors import ApiRoute

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
