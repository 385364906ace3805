#!/usr/bin/env python3
"""Start and stop a throw-away PostgreSQL cluster on loopback, for tests and benchmarks.

Uses Debian's PostgreSQL binaries (package `postgresql`). As root, the server runs as
the `postgres` user (initdb refuses root). Usage as a script:

    python3 scripts/postgres_cluster.py start DIR   # prints the database URL
    python3 scripts/postgres_cluster.py stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the cluster would not start."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed: run scripts/setup.sh (installs Debian's postgresql)"
        )
    return Path(found[0]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_db_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresCluster:
    directory: Path
    port: int
    user: str = "wellcar"
    database: str = "wellcar"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @classmethod
    def start(cls, directory: Path | None = None, *, max_connections: int = 200) -> PostgresCluster:
        """Start a cluster in `directory` (default: a new folder under /tmp).

        The folder and its parents must be reachable by the `postgres` user when run as root,
        which is why the default lives in /tmp rather than under a private temp dir.
        """
        bin_dir = _bin_dir()
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="wellcar-pg-"))
            directory.chmod(0o755)
        directory = directory.resolve()
        data = directory / "data"
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (directory,):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        port = _free_port()

        def run(cmd: list[str]) -> None:
            proc = subprocess.run(_as_db_user(cmd), capture_output=True, text=True)
            if proc.returncode != 0:
                raise PostgresUnavailable(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")

        if not data.exists():
            run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory}"
            f" -c max_connections={max_connections} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c shared_buffers=256MB"
        )
        run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(directory / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        cluster = cls(directory, port)
        psql = shutil.which("psql") or str(bin_dir / "psql")
        for sql in (
            f"CREATE ROLE {cluster.user} LOGIN SUPERUSER",
            f"CREATE DATABASE {cluster.database} OWNER {cluster.user}",
        ):
            subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-qc",
                    sql,
                ],
                capture_output=True,
                check=False,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run([psql, cluster.url, "-qc", "SELECT 1"], capture_output=True)
            if probe.returncode == 0:
                return cluster
            time.sleep(0.2)
        raise PostgresUnavailable(
            f"PostgreSQL did not accept connections; see {directory}/server.log"
        )

    def create_database(self, name: str) -> str:
        """A fresh database in this cluster; returns its URL."""
        psql = shutil.which("psql") or str(_bin_dir() / "psql")
        subprocess.run(
            [psql, self.url, "-qc", f"CREATE DATABASE {name} OWNER {self.user}"],
            check=True,
            capture_output=True,
        )
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self, *, remove: bool = True) -> None:
        subprocess.run(
            _as_db_user(
                [
                    str(_bin_dir() / "pg_ctl"),
                    "-D",
                    str(self.directory / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            ),
            capture_output=True,
        )
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[2])
    if argv[1] == "start":
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        print(PostgresCluster.start(directory).url)
    else:
        subprocess.run(
            _as_db_user(
                [
                    str(_bin_dir() / "pg_ctl"),
                    "-D",
                    str(directory / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ]
            ),
            check=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
