"""`wellcar build`: build a disk image, /usr image and update payload from a brand profile.

The options are generated from wellcar.image.settings.SETTINGS (one per setting, each
overriding the profile's value), so the command line, the TOML profile and docs/image.md
list the same settings. Register with ``app.command("build")(build_command)``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wellcar.disk.sizes import format_size
from wellcar.image import ImageBuildError, build, resolve_settings
from wellcar.image.dev_keys import DevKeysUse, with_dev_keys
from wellcar.image.platform_image import PlatformImage, make_platform_images
from wellcar.image.platforms import Platform, platform_named
from wellcar.image.preflight import preflight
from wellcar.image.settings import SETTINGS, cli_name


def _build(**options: Any) -> None:
    profile: Path | None = options.pop("profile")
    keep_work: bool = options.pop("keep_work")
    names: list[str] = options.pop("platform") or []
    platforms_only: bool = options.pop("platforms_only")
    console = Console(stderr=True)
    try:
        platforms = [platform_named(name) for name in dict.fromkeys(names)]
        if platforms_only:
            settings = resolve_settings(profile, options)
            _platform_images(console, settings.output, platforms)
            return
        settings, dev_keys = with_dev_keys(resolve_settings(profile, options))
        preflight(settings)  # before the progress display: its errors are one line
        if dev_keys is not None:
            _announce_dev_keys(console, dev_keys)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"building {settings.version}", total=None)

            def on_step(name: str, index: int, total: int) -> None:
                progress.update(task, description=name, completed=index, total=total)

            result = build(settings, on_step=on_step, keep_work=keep_work, checked=True)
            progress.update(task, description="done", completed=progress.tasks[0].total)
        made = _platform_images(console, settings.output, platforms) if platforms else []
    except ImageBuildError as exc:
        # One line; a tool's output tail is in build.log (its path is in the message).
        first, *rest = str(exc).splitlines()
        log = options.get("output") or "the output folder"
        hint = f" (the rest is in build.log in {log})" if rest else ""
        console.print(f"[red]error:[/red] {first.rstrip(':')}{hint}", markup=True,
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1) from exc
    table = Table(title=f"{settings.brand.name} {settings.version} in {result.output}")
    table.add_column("file")
    table.add_column("size", justify="right")
    for name, size in result.files.items():
        table.add_row(name, format_size(size))
    for image in made:
        for path in image.files:
            table.add_row(path.name, format_size(path.stat().st_size))
    Console().print(table)
    typer.echo(f"usr root hash {result.root_hash}")


def _platform_images(
    console: Console, output: Path, platforms: list[Platform]
) -> list[PlatformImage]:
    """Platform images from the build in ``output`` (wellcar.image.platform_image)."""
    if not platforms:
        return []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("platform images", total=len(platforms))

        def on_platform(name: str, index: int, total: int) -> None:
            progress.update(task, description=f"platform {name}", completed=index)

        made = make_platform_images(output, platforms, on_platform=on_platform)
        progress.update(task, description="done", completed=len(platforms))
    for image in made:
        files = ", ".join(str(path) for path in image.files)
        console.print(f"{image.platform.name}: {files} ({image.seconds:.1f} s)", highlight=False,
                      soft_wrap=True)  # fmt: skip
    return made


def _announce_dev_keys(console: Console, use: DevKeysUse) -> None:
    keys = use.keys
    made = "created" if use.created else "using"
    console.print(
        f"[bold yellow]{made} development keys[/] in {keys.directory} "
        "[yellow](for development only: unencrypted private keys)[/]",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    console.print(
        f"  payload signing key {keys.signing_key}, shipped public key {keys.public_key}\n"
        f"  TUF keys {keys.tuf_keys_dir}, release tree {keys.release_tree} (its root "
        f"{keys.trust_root.name} is shipped)\n"
        "  for releases, name your own: --signing-key, --brand-payload-key-dir, "
        "--brand-trust-root",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _parameters() -> list[inspect.Parameter]:
    params = [
        inspect.Parameter(
            "profile",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None, typer.Option("--profile", help="Brand profile (TOML)")
            ],
        ),
        inspect.Parameter(
            "keep_work",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool, typer.Option("--keep-work", help="Keep OUTPUT/.work (the rootfs tree)")
            ],
        ),
        inspect.Parameter(
            "platform",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                list[str] | None,
                typer.Option(
                    "--platform",
                    help="Also make this platform's image (repeatable; "
                    "docs/platforms.md lists them)",
                ),
            ],
        ),
        inspect.Parameter(
            "platforms_only",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--platforms-only",
                    help="Make the --platform images from the "
                    "build already in the output directory, without building",
                ),
            ],
        ),
    ]
    for setting in SETTINGS:
        # Every option is a string parsed by the settings table, so the command line and
        # the profile accept the same spellings and report errors the same way.
        option = typer.Option(
            setting.flag, help=setting.help, show_default=False, metavar=setting.kind.name
        )
        params.append(
            inspect.Parameter(
                cli_name(setting),
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[str | None, option],
            )
        )
    return params


def _make_command() -> Any:
    def build_command(**options: Any) -> None:
        """Build the OS image (disk.img, usr.img with its verity hash tree, kernel, initrd, update
        payload, package manifest) into the output directory. Needs root (mmdebstrap)."""
        _build(**options)

    params = _parameters()
    build_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    build_command.__annotations__ = {p.name: p.annotation for p in params}
    return build_command


build_command = _make_command()
