"""Running the host tools of the build, with their output kept in build.log."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import MissingToolError, ToolError


def require_tool(step: str, name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(step, f"{name} is not installed (needed for this step)")
    return path


def run_tool(
    step: str,
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``argv``; return its combined output, also appended to ``log``.

    Output is captured rather than streamed so that a failure can quote its tail in the
    error; mmdebstrap's few MB of output fit in memory comfortably.
    """
    require_tool(step, argv[0])
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    if log is not None:
        with log.open("a", encoding="utf-8") as out:
            out.write(f"### [{step}] $ {' '.join(argv)}\n{output}")
            if output and not output.endswith("\n"):
                out.write("\n")
    if result.returncode != 0:
        raise ToolError(step, argv, result.returncode, output)
    return output
