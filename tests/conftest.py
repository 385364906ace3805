"""Session-wide fixtures: the project's throw-away PostgreSQL server."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from postgres_cluster import PostgresCluster

from .system.builds import OsBuilds, build_pair


@pytest.fixture(scope="session")
def os_builds(tmp_path_factory: pytest.TempPathFactory) -> OsBuilds:
    """Versions N and N+1 of the OS, really built (a few minutes, once per session)."""
    return build_pair(tmp_path_factory.mktemp("os-builds"))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server on 127.0.0.1, started for this test session."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
