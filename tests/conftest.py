"""Session-wide fixtures: the project's throw-away PostgreSQL server."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from postgres_cluster import PostgresCluster

from .system.builds import OsBuilds, build_pair


@pytest.fixture(scope="session")
def os_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OsBuilds]:
    """Versions N and N+1 of the OS, really built (a few minutes, once per session).

    Removed at the end of the session: the pair takes about 15 GiB, and a machine that runs
    the suite several times would otherwise fill its disk (pytest keeps three sessions)."""
    work = tmp_path_factory.mktemp("os-builds")
    try:
        yield build_pair(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
