"""`wellcar config`: check Ignition configs and turn Butane YAML into them, on the host.

`validate` behaves like `ignition-validate` (warnings and errors on stderr, each naming
the JSON path; exit status 1 on errors); `transpile` like `butane` (JSON on stdout or -o).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wellcar.cli.output import err, fail
from wellcar.ignition import IgnitionError, check_config
from wellcar.ignition.errors import ConfigInvalidError

config_app = typer.Typer(
    help="Ignition configs (spec 2.x, 3.0-3.5) and Butane YAML: validate, transpile.",
    no_args_is_help=True,
)

FileArg = Annotated[Path, typer.Argument(help="Config file ('-' for stdin)", show_default=False)]


def _read(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


@config_app.command("validate")
def validate(file: FileArg) -> None:
    """Check an Ignition config: unknown keys warn, errors exit with status 1."""
    report = check_config(_read(file), str(file))
    for entry in report.entries:
        err.print(str(entry), markup=False)
    if report.has_errors:
        raise typer.Exit(1)


@config_app.command("transpile")
def transpile(
    file: FileArg,
    files_dir: Annotated[
        Path | None,
        typer.Option("--files-dir", "-d", help="Directory for local: files and trees"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here, not stdout")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too")] = False,
    pretty: Annotated[bool, typer.Option("--pretty", "-p", help="Indent the JSON")] = False,
) -> None:
    """Translate Butane YAML (variant flatcar 1.0/1.1, wellcar 1.0) to Ignition JSON."""
    from wellcar.ignition.butane import transpile as butane_transpile

    text = _read(file).decode("utf-8", errors="replace")
    try:
        result = butane_transpile(text, files_dir, strict=strict)
    except ConfigInvalidError as exc:
        for entry in exc.report.entries:
            err.print(str(entry), markup=False)
        fail(f"{file}: cannot transpile: {len(exc.report.errors) or 'warnings with --strict'}"
             f"{' error(s)' if exc.report.errors else ''}")  # fmt: skip
    except IgnitionError as exc:
        fail(str(exc))
    for entry in result.report.entries:
        err.print(str(entry), markup=False)
    text_out = json.dumps(result.config, indent=2 if pretty else None) + "\n"
    if output is None:
        sys.stdout.write(text_out)
    else:
        output.write_text(text_out, encoding="utf-8")
