"""`wellcar packages`: the package set rebuilt from Debian sources (docs/packages.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wellcar.cli.output import err, fail, out
from wellcar.image.settings import DEFAULT_MIRRORS, default_dev_keys_dir, resolve_settings
from wellcar.packages.builder import BuildResult, build_set
from wellcar.packages.errors import PackageError
from wellcar.packages.image_report import ImageStatus, Origin, image_status, read_manifest
from wellcar.packages.layout import BuildCache, default_cache_dir
from wellcar.packages.licences import LicenceCache
from wellcar.packages.package_set import load_package_set
from wellcar.packages.repo_key import SigningKey, ensure_dev_key, find_signing_key
from wellcar.packages.repository import Repository, publish_repository
from wellcar.packages.sbom import make_sbom
from wellcar.packages.sources import AptState
from wellcar.packages.verify import VerifyResult, load_verify_results, verify_source

packages_app = typer.Typer(
    help="Debian packages rebuilt from source with Wellcar's patches, and their signed "
    "apt repository",
    no_args_is_help=True,
)

SetDir = Annotated[Path, typer.Option("--set", help="The package set directory", show_default=True)]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Build cache [default: $WELLCAR_PACKAGE_BUILD_CACHE or "
        "~/.cache/wellcar/package-builds]",
        show_default=False,
    ),
]
Names = Annotated[
    list[str] | None, typer.Argument(help="Packages of the set [default: all]", show_default=False)
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Cores per build", min=1)]


@contextmanager
def reporting_errors() -> Iterator[None]:
    try:
        yield
    except PackageError as exc:
        fail(str(exc))


def _build(
    names: list[str] | None, set_dir: Path, cache: Path | None, jobs: int
) -> list[BuildResult]:
    specs = load_package_set(set_dir, names)
    with err.status("packages") as status:
        return build_set(
            specs,
            BuildCache(cache or default_cache_dir()),
            DEFAULT_MIRRORS,
            lambda message: status.update(message),
            jobs,
        )


@packages_app.command("build")
def build_command(
    names: Names = None,
    set_dir: SetDir = Path("packages"),
    cache: CacheDir = None,
    jobs: Jobs = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Fetch each package's Debian source, apply its patches and build it in a clean chroot
    without network; an unchanged package is taken from the cache."""
    with reporting_errors():
        results = _build(names, set_dir, cache, jobs)
    if as_json:
        typer.echo(json.dumps([_summary(r) for r in results], indent=2))
        return
    table = Table(header_style="bold")
    for column in ("package", "version", "binaries", "cache", "outputs"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(
            r.name, r.version, ", ".join(r.binaries), "hit" if r.cached else "built", r.directory
        )
    out.print(table)


def _summary(result: BuildResult) -> dict[str, object]:
    return {
        "name": result.name,
        "version": result.version,
        "key": result.key,
        "cached": result.cached,
        "directory": result.directory,
        "binaries": result.binaries,
    }


@packages_app.command("repo")
def repo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Repository directory")],
    key_dir: Annotated[
        Path | None,
        typer.Option(
            "--key-dir",
            help="GnuPG home with the vendor's secret key [default: a "
            "development key in the dev-keys directory]",
            show_default=False,
        ),
    ] = None,
    set_dir: SetDir = Path("packages"),
    cache: CacheDir = None,
    jobs: Jobs = 2,
) -> None:
    """Build the set (cached builds are reused) and publish it as a signed apt repository."""
    with reporting_errors():
        key: SigningKey
        if key_dir is None:
            key = ensure_dev_key(default_dev_keys_dir())
            err.print(
                f"warning: signing with the development key in {key.home} (for "
                "development only; --key-dir names the vendor's)",
                markup=False,
            )
        else:
            key = find_signing_key(key_dir)
        results = _build(None, set_dir, cache, jobs)
        repo = publish_repository(output, results, key)
    out.print(f"published {len(results)} source packages to {repo.root} (key {key.fingerprint})")


@packages_app.command("verify")
def verify_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Debian source packages (SOURCE or SOURCE=VERSION)", show_default=False
        ),
    ],
    suite: Annotated[str, typer.Option(help="Debian suite")] = "bookworm",
    cache: CacheDir = None,
    jobs: Jobs = 2,
) -> None:
    """Rebuild Debian's own sources, unpatched, and compare with Debian's binary .debs:
    bit-identical, or what differs."""
    build_cache = BuildCache(cache or default_cache_dir())
    build_cache.make()
    apt = AptState(build_cache.apt)
    results: list[VerifyResult] = []
    failed: list[tuple[str, str]] = []  # one source that cannot be rebuilt ends no sample
    with reporting_errors(), err.status("verify") as status:
        status.update("updating the indexes")
        apt.update(DEFAULT_MIRRORS)
        for item in sources:
            name, _, version = item.partition("=")
            try:
                results.append(
                    verify_source(
                        name,
                        suite,
                        version or None,
                        apt,
                        build_cache,
                        DEFAULT_MIRRORS,
                        status.update,
                        jobs,
                    )
                )
            except PackageError as exc:
                failed.append((item, str(exc)))
    table = Table(header_style="bold")
    for column in ("source", "version", "result", "build s"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(r.source, r.version, r.summary(), f"{r.build_seconds:.0f}")
    for item, message in failed:
        table.add_row(item, "", f"not verified: {message}", "")
    out.print(table)
    same = sum(r.identical for r in results)
    if results:
        out.print(f"bit-identical: {same} of {len(results)} ({100 * same / len(results):.0f}%)")
    if failed:
        fail(f"{len(failed)} of {len(sources)} sources could not be verified")


ImageDir = Annotated[Path, typer.Option("--image", help="An image build's output directory")]
RepoDir = Annotated[
    Path | None,
    typer.Option(
        "--repo", help="Wellcar's repository the image was built with", show_default=False
    ),
]


def _status(image: Path, repo: Path | None, cache: Path | None) -> ImageStatus:
    build_cache = BuildCache(cache or default_cache_dir())
    build_cache.make()
    apt = AptState(build_cache.apt)
    manifest = read_manifest(image)  # bad arguments fail before the index update
    repository = Repository(repo) if repo else None
    if repository is not None:
        repository.binaries()
    with err.status("reading the image's packages") as status:
        status.update("updating Debian's indexes")
        apt.update(DEFAULT_MIRRORS)
        return image_status(manifest, repository, apt, load_verify_results(build_cache))


@packages_app.command("status")
def status_command(
    image: ImageDir,
    repo: RepoDir = None,
    cache: CacheDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Which of an image's packages Wellcar built, which were verified bit-identical, and
    which are Debian binaries not yet checked: the independence figure."""
    with reporting_errors():
        result = _status(image, repo, cache)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "independence": result.independence,
                    "packages": [asdict(p) for p in result.packages],
                },
                indent=2,
            )
        )
        return
    table = Table(header_style="bold")
    for column in ("package", "version", "source", "origin"):
        table.add_column(column, overflow="fold")
    for p in result.packages:
        if p.origin is not Origin.UNCHECKED:
            table.add_row(p.name, p.version, f"{p.source} {p.source_version}", str(p.origin))
    out.print(table)
    for origin in Origin:
        out.print(f"{origin}: {result.count(origin)}")
    out.print(
        f"independence: {100 * result.independence:.1f}% of {len(result.packages)} "
        "packages built by Wellcar or verified bit-identical"
    )


@packages_app.command("sbom")
def sbom_command(
    image: ImageDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="The SBOM file (CycloneDX JSON)")],
    repo: RepoDir = None,
    debs: Annotated[
        list[Path] | None,
        typer.Option(
            "--debs",
            help="Directories of the image's .debs, for the licences "
            "[default: the image build's package cache]",
            show_default=False,
        ),
    ] = None,
    cache: CacheDir = None,
) -> None:
    """Write the image's SBOM: every package, version, licence and origin."""
    with reporting_errors():
        result = _status(image, repo, cache)
        repository = Repository(repo) if repo else None
        deb_dirs = list(debs or [resolve_settings().package_cache])
        if repository is not None:
            deb_dirs.append(repository.root / "pool")
        version = read_version(image)
        licences = LicenceCache(BuildCache(cache or default_cache_dir()).root / "licences.json")
        with err.status("reading licences"):
            text = make_sbom(result, "wellcar", version, repository, licences, deb_dirs)
    output.write_text(text, encoding="utf-8")
    out.print(f"{output}: {len(result.packages)} packages")


def read_version(image: Path) -> str:
    path = image / "version.txt"
    fields = (
        dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)
        if path.is_file()
        else {}
    )
    return fields.get("VERSION", fields.get("WELLCAR_VERSION", "unknown"))
