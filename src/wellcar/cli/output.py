"""Console output shared by every `wellcar` command: stdout tables, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from wellcar.logline.encode import visible

err = Console(stderr=True, soft_wrap=True, highlight=False)
PIPE_WIDTH = 240  # tables written to a pipe or file are not squeezed to 80 columns


class _Out:
    """stdout as a Rich console, created per print (so redirected stdout is honoured)."""

    def print(self, *objects: Any) -> None:
        width = (
            None
            if sys.stdout.isatty()
            else (int(os.environ.get("COLUMNS", "0") or 0) or PIPE_WIDTH)
        )
        Console(width=width, highlight=False).print(*objects)


out = _Out()


class UsageError(Exception):
    """A value given on the command line cannot be used."""


def fail(message: str) -> NoReturn:
    """End the command with one ``error:`` line on stderr and exit status 1."""
    err.print(f"error: {visible(message)}", markup=False)
    raise typer.Exit(1)
