"""Run real `wellcar serve` processes for tests that need more than one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.loopback_ports import free_port


@contextmanager
def serve_processes(
    data_dir: Path,
    count: int,
    database: str | None = None,
    extra_env: dict[str, str] | None = None,
    log_args: tuple[str, ...] = ("--log-level", "warning"),
    log_file: Path | None = None,
) -> Iterator[list[str]]:
    """Start `count` server processes on one database; yield their base URLs.

    Their log goes to ``log_file`` when given (appended), else to a pipe read on failure."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    env = {**os.environ, **(extra_env or {})}
    try:
        for _ in range(count):
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "wellcar.cli.main",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                *log_args,
            ]
            if database:
                cmd += ["--database", database]
            if log_file is None:
                procs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                    )
                )
            else:
                with log_file.open("ab") as log:
                    procs.append(
                        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
                    )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs, strict=True):
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    if log_file is not None:
                        err = log_file.read_text(errors="replace")
                    raise RuntimeError(f"server exited: {err[-2000:]}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server at {url} did not come up")
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
