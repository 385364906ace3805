"""Fixtures for server tests: an app on a temporary SQLite database and a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from wellcar.server.api.app import create_app
from wellcar.server.settings import ServerSettings

ADMIN_TOKEN = "test-admin-token"
READ_TOKEN = "test-read-token"


@dataclass
class FakeClock:
    """Naive-UTC clock that only moves when a test moves it."""

    now: datetime = datetime(2026, 11, 18, 10, 0, 0)  # a Wednesday

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WELLCAR_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("WELLCAR_READ_TOKEN", READ_TOKEN)
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path, clock: FakeClock) -> Iterator[TestClient]:
    app = create_app(ServerSettings(data_dir=data_dir), clock=clock)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield c


@pytest.fixture
def pg_client(data_dir: Path, clock: FakeClock, postgres_url: str) -> Iterator[TestClient]:
    """The app on the session's PostgreSQL (tests/conftest.py starts the cluster)."""
    app = create_app(ServerSettings(data_dir=data_dir, database_url=postgres_url), clock=clock)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield c
