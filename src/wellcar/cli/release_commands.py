"""`wellcar release` (versions, create, promote, publish) and `wellcar trust` (TUF keys,
root rotation, offline signing, online re-signing). See docs/release.md, docs/trust.md.

Failures print one line (``error: …``) on stderr, exit with status 1, publish nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from tuf.api.metadata import Metadata

from wellcar.cli.output import fail, out
from wellcar.image.version import parse_os_version
from wellcar.payload.errors import PayloadError
from wellcar.payload.signing import load_signing_key, load_trusted_keys
from wellcar.release.boards import check_board
from wellcar.release.channels import check_channel, version_for_channel
from wellcar.release.create import (
    DEFAULT_BOARD,
    ReleaseInputs,
    create_release,
    promote_release,
    promotion_target,
)
from wellcar.release.digests import Expected, check_digests
from wellcar.release.errors import ReleaseError
from wellcar.release.tree import ReleaseTree
from wellcar.trust.errors import TrustError
from wellcar.trust.keys import Keyring, generate_key, load_public_key
from wellcar.trust.repository import (
    TOP_ROLES,
    RootChange,
    TrustRepository,
    sign_file,
)

release_app = typer.Typer(
    help="Releases: versions, channels, the release tree, promotion, publishing.",
    no_args_is_help=True,
)
trust_app = typer.Typer(
    help="Signed release metadata (TUF): keys, root rotation, offline signing.",
    no_args_is_help=True,
)
trust_keys_app = typer.Typer(
    help="TUF signing keys (Ed25519; NAME.key + NAME.pub).", no_args_is_help=True
)
trust_app.add_typer(trust_keys_app, name="keys")

Tree = Annotated[
    Path, typer.Option("--tree", envvar="WELLCAR_RELEASE_TREE", help="Release tree directory")
]
Keys = Annotated[
    list[Path] | None,
    typer.Option("--keys", help="TUF private keys: files, or directories of *.key (repeatable)"),
]
Board = Annotated[str, typer.Option("--board", help="Board, e.g. amd64-usr, arm64-usr")]
Minor = Annotated[int | None, typer.Option("--minor", help="MINOR of a custom channel's versions")]
SigningKeyOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--signing-key",
        help="Payload key (`wellcar keys generate`, not a TUF key) that signs DIGESTS",
    ),
]
Changelog = Annotated[
    Path | None,
    typer.Option("--changelog", help="Directory of changelog/{security,bugfixes,changes,updates}"),
]


@contextmanager
def release_errors() -> Iterator[None]:
    try:
        yield
    except (ReleaseError, TrustError, PayloadError) as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")


def _keyring(keys: list[Path] | None) -> Keyring:
    return Keyring.load(keys or [])


def _inputs(
    signing_key: list[Path] | None, keys: list[Path] | None, changelog: Path | None, board: str
) -> ReleaseInputs:
    return ReleaseInputs(
        payload_keys=[load_signing_key(p) for p in signing_key or []],
        tuf_keys=_keyring(keys),
        changelog=changelog,
        board=board,
    )


# ------------------------------------------------------------------------ release


@release_app.command("version")
def release_version(
    channel: Annotated[str, typer.Option("--channel", help="alpha, beta, stable, lts, custom")],
    tree: Annotated[
        Path | None, typer.Option("--tree", help="Release tree: skip PATCHes already used")
    ] = None,
    minor: Minor = None,
) -> None:
    """Print the version a build made now for CHANNEL gets."""
    with release_errors():
        existing = ReleaseTree(tree).versions() if tree else []
        typer.echo(str(version_for_channel(datetime.now(UTC), channel, existing, minor)))


@release_app.command("create")
def release_create(
    build_dir: Annotated[Path, typer.Argument(help="Output directory of `wellcar build`")],
    channel: Annotated[str, typer.Option("--channel", help="alpha, beta, stable, lts, custom")],
    tree: Tree,
    keys: Keys = None,
    signing_key: SigningKeyOpt = None,
    changelog: Changelog = None,
    board: Board = DEFAULT_BOARD,
) -> None:
    """Release a build into CHANNEL: copy, digest, sign (DIGESTS + TUF), notes, feeds."""
    with release_errors():
        outcome = create_release(
            tree, build_dir, channel, _inputs(signing_key, keys, changelog, board)
        )
    out.print(f"released {outcome.record.version} to {channel}/{board} in {outcome.directory}")
    out.print(f"signed: {', '.join(outcome.published_metadata)}")


@release_app.command("promote")
def release_promote(
    version: Annotated[str, typer.Argument(help="Version to promote, e.g. 4799.0.0")],
    to: Annotated[str, typer.Option("--to", help="Channel to promote to")],
    tree: Tree,
    build_dir: Annotated[
        Path | None,
        typer.Option("--build-dir", help="The rebuild of VERSION with the promoted version"),
    ] = None,
    keys: Keys = None,
    signing_key: SigningKeyOpt = None,
    changelog: Changelog = None,
    board: Board = DEFAULT_BOARD,
    minor: Minor = None,
) -> None:
    """Promote VERSION to the next channel (rebuilt from the same inputs, re-signed)."""
    with release_errors():
        _, target = promotion_target(tree, version, to, board, minor)
        if build_dir is None:
            raise ReleaseError(
                f"the promotion of {version} to {to} is {target}, which must be rebuilt: run "
                f"`wellcar build --version {target} --output DIR` with the same profile and "
                "pass --build-dir DIR"
            )
        outcome = promote_release(
            tree, version, to, build_dir, _inputs(signing_key, keys, changelog, board),
            minor=minor,
        )  # fmt: skip
    out.print(f"promoted {version} to {to} as {outcome.record.version} in {outcome.directory}")
    out.print(f"signed: {', '.join(outcome.published_metadata)}")


@release_app.command("publish")
def release_publish(
    version: Annotated[str, typer.Argument(help="Released version to publish")],
    tree: Tree,
    app: Annotated[str, typer.Option("--app", help="Application id on the update server")],
    base_url: Annotated[
        str, typer.Option("--base-url", help="URL where the release tree is served")
    ],
    server: Annotated[
        str, typer.Option("--server", envvar="WELLCAR_SERVER", help="Update server base URL")
    ] = "http://127.0.0.1:8000",
    token: Annotated[str, typer.Option("--token", envvar="WELLCAR_TOKEN", show_default=False)] = "",
    board: Board = DEFAULT_BOARD,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Server channel name [the release's]")
    ] = None,
) -> None:
    """Register VERSION's payload with the update server and point its channel at it."""
    from wellcar.cli.api_client import ApiClient, ApiClientError
    from wellcar.release.publish import publish_release

    with release_errors():
        try:
            with ApiClient(server, token) as api:
                result = publish_release(
                    api, tree, version, app=app, base_url=base_url, board=board,
                    channel_name=channel,
                )  # fmt: skip
        except ApiClientError as exc:
            raise ReleaseError(str(exc)) from None
    verb = "registered" if result.created_package else "reused"
    out.print(
        f"{verb} package {result.package.version} ({result.package.id}); channel "
        f"{result.channel.name} now serves it"
    )


@release_app.command("verify-digests")
def release_verify_digests(
    directory: Annotated[Path, typer.Argument(help="A release's version directory")],
    trusted_key: Annotated[
        list[Path], typer.Option("--trusted-key", help="Public payload key, NAME.pub (repeatable)")
    ],
    version: Annotated[
        str | None,
        typer.Option("--version", help="The version you expect [the directory's name]"),
    ] = None,
    board: Annotated[
        str | None, typer.Option("--board", help="The board you expect [from the path]")
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="The channel you expect [from the path]")
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option("--file", help="Check only this file (repeatable) [the whole directory]"),
    ] = None,
    allow_unbound: Annotated[
        bool,
        typer.Option(help="Accept an old DIGESTS that does not name its release (files only)"),
    ] = False,
) -> None:
    """Check DIGESTS.sig, that DIGESTS is for the release you expect, and the files: every
    file it lists, and no file it does not list (unless --file names the ones to check)."""
    with release_errors():
        if version is not None:
            version = str(parse_os_version(version))
        if board is not None:
            check_board(board)
        if channel is not None:
            check_channel(channel)
        result = check_digests(
            directory, load_trusted_keys(trusted_key), Expected(version, board, channel),
            files=file, allow_unbound=allow_unbound,
        )  # fmt: skip
    what = f"{len(result.files)} files match the signed DIGESTS"
    if result.identity is None:
        out.print(f"ok: {what} (an old DIGESTS: which release it is for was not checked)")
        return
    unchecked = (
        f"; {' and '.join(result.unchecked)} not checked (pass --{' --'.join(result.unchecked)})"
        if result.unchecked
        else ""
    )
    out.print(f"ok: {what} of {result.identity}{unchecked}")


# -------------------------------------------------------------------------- trust


@trust_app.command("init")
def trust_init(
    tree: Tree,
    keys_dir: Annotated[Path, typer.Option("--keys-dir", help="Where to write the new keys")],
    root_keys: Annotated[int, typer.Option(min=1)] = 1,
    root_threshold: Annotated[int, typer.Option(min=1)] = 1,
    targets_keys: Annotated[int, typer.Option(min=1)] = 1,
    targets_threshold: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create the TUF repository of a release tree and its keys."""
    with release_errors():
        _, keys = TrustRepository.initialize(
            tree, keys_dir, root_keys=root_keys, root_threshold=root_threshold,
            targets_keys=targets_keys, targets_threshold=targets_threshold,
        )  # fmt: skip
    for key in keys:
        out.print(f"{key.private_path.name}: {key.keyid}")
    out.print(
        f"ship {tree / 'metadata' / 'root.json'} in the image; move root-* and targets-* "
        "keys offline"
    )


@trust_keys_app.command("generate")
def trust_keys_generate(
    path: Annotated[
        Path,
        typer.Argument(
            help="Directory for NAME.key and NAME.pub (with --name), or PATH "
            "itself: writes PATH.key and PATH.pub"
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", help="File name stem, e.g. root-2")] = None,
) -> None:
    """Generate an Ed25519 key pair (NAME.key + NAME.pub, as `wellcar keys generate`) and
    print its TUF key id."""
    with release_errors():
        directory, stem = (path, name) if name is not None else (path.parent, path.name)
        key = generate_key(directory, stem)
    out.print(f"ed25519 key {key.keyid}: {key.private_path} {key.public_path}")


@trust_app.command("rotate-root")
def trust_rotate_root(
    tree: Tree,
    keys: Keys = None,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", help="ROLE=PUBLIC_KEY_FILE to add (repeatable)"),
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="ROLE=KEYID to remove (repeatable)")
    ] = None,
    threshold: Annotated[
        list[str] | None, typer.Option("--threshold", help="ROLE=N (repeatable)")
    ] = None,
) -> None:
    """Stage root N+1 (also renews root's expiry), sign with the keys given, publish if
    old and new root thresholds are met; otherwise sign it offline."""

    def pairs(items: list[str] | None, what: str) -> list[tuple[str, str]]:
        result = []
        for item in items or []:
            role, sep, value = item.partition("=")
            if not sep or role not in TOP_ROLES:
                raise ReleaseError(
                    f"--{what} {item!r}: use ROLE=VALUE with ROLE one of {', '.join(TOP_ROLES)}"
                )
            result.append((role, value))
        return result

    with release_errors():
        change = RootChange()
        for role, path in pairs(add, "add"):
            change.add.setdefault(role, []).append(load_public_key(Path(path)))
        for role, keyid in pairs(remove, "remove"):
            change.remove.setdefault(role, []).append(keyid)
        for role, number in pairs(threshold, "threshold"):
            change.thresholds[role] = int(number)
        repo = TrustRepository(tree)
        staged = repo.stage_root(change)
        ring = _keyring(keys)
        try:
            result = repo.publish(ring)
        except TrustError as exc:
            out.print(f"root v{staged.signed.version} staged, not published: {exc}")
            raise typer.Exit(2) from None
    out.print(f"published: {', '.join(result.published)}")


@trust_app.command("export")
def trust_export(
    role: Annotated[str, typer.Argument(help="root or targets")],
    tree: Tree,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to carry offline")],
) -> None:
    """Write staged ROLE metadata to a file for signing on an offline machine."""
    with release_errors():
        staged = TrustRepository(tree).staged(role)
        if staged is None:
            raise ReleaseError(f"no staged {role} metadata in {tree}")
        output.write_bytes((TrustRepository(tree).staged_dir / f"{role}.json").read_bytes())
    out.print(
        f"wrote {role} v{staged.signed.version} to {output}; sign it with `wellcar trust sign`"
    )


@trust_app.command("sign")
def trust_sign(
    file: Annotated[Path, typer.Argument(help="Exported metadata file")],
    keys: Keys = None,
) -> None:
    """Offline machine: add signatures with the given keys (no repository needed)."""
    with release_errors():
        added = sign_file(file, _keyring(keys))
    out.print(f"signed by {', '.join(added)}; bring {file} back and `wellcar trust import` it")


@trust_app.command("import")
def trust_import(
    file: Annotated[Path, typer.Argument(help="Metadata file signed offline")],
    tree: Tree,
) -> None:
    """Add offline signatures to the staged metadata (checked against root)."""
    with release_errors():
        added = TrustRepository(tree).import_signatures(file)
    out.print(f"imported signatures by {', '.join(added) or 'nobody new'}")


@trust_app.command("publish")
def trust_publish(tree: Tree, keys: Keys = None) -> None:
    """Publish staged root/targets (all thresholds met) with new snapshot and timestamp."""
    with release_errors():
        result = TrustRepository(tree).publish(_keyring(keys))
    out.print(f"published: {', '.join(result.published)}")


@trust_app.command("refresh")
def trust_refresh(tree: Tree, keys: Keys = None) -> None:
    """Re-sign snapshot and timestamp with the online keys (run from a timer, hourly)."""
    with release_errors():
        result = TrustRepository(tree).refresh_online(_keyring(keys))
    out.print(f"published: {', '.join(result.published)}")


@trust_app.command("discard")
def trust_discard(role: Annotated[str, typer.Argument(help="root or targets")], tree: Tree) -> None:
    """Drop staged ROLE metadata."""
    with release_errors():
        TrustRepository(tree).discard_staged(role)
    out.print(f"discarded staged {role}")


@trust_app.command("status")
def trust_status(tree: Tree) -> None:
    """Versions and expiry of every role, and what is staged."""
    with release_errors():
        repo = TrustRepository(tree)
        rows: list[tuple[str, Metadata[Any]]] = [
            ("root", repo.root()),
            ("targets", repo.targets()),
            ("snapshot", repo.snapshot()),
            ("timestamp", repo.timestamp()),
        ]
        for role, md in rows:
            signed = md.signed
            out.print(
                f"{role:<10} v{signed.version:<5} expires {signed.expires:%Y-%m-%d %H:%M} UTC"
            )
        staged = repo.staged_roles()
    out.print(f"staged: {', '.join(staged) if staged else 'nothing'}")
