"""`wellcar payload` and `wellcar keys`: make, sign, inspect, verify and apply update payloads.

Failures print one line (``error: …``) on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from wellcar.cli.output import err, fail, out
from wellcar.disk import DiskError, Slot, SlotTable, UsrVerity, UsrVerityError
from wellcar.keyfiles import key_pair_paths
from wellcar.payload.apply import ApplySources, ApplyTargets, apply_payload
from wellcar.payload.errors import PayloadError
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.http_source import http_opener
from wellcar.payload.inspect import describe_payload, verify_payload
from wellcar.payload.reader import Opener, file_opener
from wellcar.payload.resume import CheckpointFile
from wellcar.payload.signing import (
    KeyAlgorithm,
    TrustedKeys,
    generate_key,
    key_id_of,
    load_signing_key,
    load_trusted_keys,
    write_key_pair,
)
from wellcar.payload.slot_install import install_into_slot
from wellcar.payload.targets import TargetRegion
from wellcar.payload.writer import resign_payload

payload_app = typer.Typer(
    help="Update payloads: generate (full or delta), sign, inspect, verify, apply.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Signing keys for payloads.", no_args_is_help=True)


@contextmanager
def payload_errors() -> Iterator[None]:
    try:
        yield
    except (PayloadError, DiskError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


SigningKeys = Annotated[
    list[Path] | None,
    typer.Option("--key", help="Private key to sign with (repeat for several keys)"),
]
TrustedKeyFiles = Annotated[
    list[Path] | None,
    typer.Option("--key", help="Trusted public key file or directory of *.pem/*.pub (repeatable)"),
]
NoSignatureCheck = Annotated[
    bool,
    typer.Option("--no-signature-check", help="Skip signatures (hashes are still checked)"),
]


def _trusted(keys: list[Path] | None, skip: bool) -> TrustedKeys | None:
    if skip:
        return None
    if not keys:
        fail("give the trusted public key(s) with --key, or pass --no-signature-check")
    return load_trusted_keys(keys)


# --- keys -------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    path: Annotated[
        Path,
        typer.Argument(
            help="Writes PATH.key (private) and PATH.pub; with --name, PATH is a "
            "directory and NAME.key/NAME.pub go in it"
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="File name stem inside the directory PATH")
    ] = None,
    algorithm: Annotated[
        KeyAlgorithm,
        typer.Option(
            help="ed25519, or rsa (2048 bits) for payloads a Flatcar update_engine "
            "must verify (--flatcar-compatible)"
        ),
    ] = KeyAlgorithm.ED25519,
) -> None:
    """Generate a payload signing key pair (NAME.key + NAME.pub, as `wellcar trust keys
    generate`)."""
    with payload_errors():
        if name is not None:
            path.mkdir(parents=True, exist_ok=True)
        private, public = key_pair_paths(path / name if name is not None else path)
        key = generate_key(algorithm)
        write_key_pair(key, private, public)
    out.print(f"{algorithm.value} key {key_id_of(key.public_key()).hex()}: {private} {public}")


# --- payload ----------------------------------------------------------------------------


def parse_usr_verity(text: str) -> UsrVerity:
    """``ROOT_HASH:OFFSET`` as given to ``--usr-verity``; one error line when malformed."""
    root_hash, sep, offset = text.strip().partition(":")
    if not sep or not offset.isdecimal():
        fail(
            f"--usr-verity {text!r}: give ROOT_HASH:OFFSET, the 64-hex-digit root hash "
            "`veritysetup format` printed, a colon and the byte offset of the hash tree"
        )
    try:
        return UsrVerity(root_hash.lower(), int(offset))
    except UsrVerityError as exc:
        fail(f"--usr-verity: {exc}")


@payload_app.command("generate")
def generate(
    new: Annotated[Path, typer.Option("--new", help="The new /usr image")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Payload file to write")],
    old: Annotated[
        Path | None, typer.Option("--old", help="The old /usr image: makes a delta payload")
    ] = None,
    kernel: Annotated[Path | None, typer.Option(help="The slot's kernel")] = None,
    initrd: Annotated[Path | None, typer.Option(help="The slot's initrd")] = None,
    key: SigningKeys = None,
    flatcar_compatible: Annotated[
        bool,
        typer.Option(help="update_engine's shape: REPLACE_BZ, signatures last, RSA"),
    ] = False,
    zstd_level: Annotated[int, typer.Option(min=1, max=22)] = 19,
    no_bsdiff: Annotated[bool, typer.Option(help="Do not try bsdiff for changed blocks")] = False,
    usr_verity: Annotated[
        str | None,
        typer.Option(
            "--usr-verity",
            metavar="ROOT_HASH:OFFSET",
            help="Boot /usr through dm-verity: NEW is the erofs image with its hash tree "
            "appended at byte OFFSET; ROOT_HASH is the tree's sha256 root hash",
        ),
    ] = None,
) -> None:
    """Generate a full or delta payload (signed when --key is given)."""
    verity = parse_usr_verity(usr_verity) if usr_verity is not None else None
    with payload_errors():
        keys = [load_signing_key(k) for k in key or []]
        options = GenerateOptions(
            zstd_level=zstd_level, flatcar_compatible=flatcar_compatible, try_bsdiff=not no_bsdiff
        )
        with _progress() as progress:
            tasks: dict[str, TaskID] = {}

            def on_progress(what: str, done: int, total: int) -> None:
                if what not in tasks:
                    tasks[what] = progress.add_task(what, total=total)
                progress.update(tasks[what], completed=done)

            report = generate_payload(
                PayloadInputs(new, old, kernel, initrd, verity), output, keys, options, on_progress
            )
    kind = "delta" if report.delta else "full"
    ops = ", ".join(f"{n} {t}" for t, n in sorted(report.operations.items()))
    out.print(
        f"{output}: {kind} payload, {report.payload_size} bytes for a {report.new_size}-byte "
        f"/usr ({report.payload_size / report.new_size:.1%}); {ops}; "
        f"{len(keys)} signature(s)"
    )


@payload_app.command("inspect")
def inspect(
    payload: Annotated[Path, typer.Argument(help="Payload file")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show a payload's manifest: parts, sizes, hashes, operations, signatures."""
    with payload_errors():
        desc = describe_payload(payload)
    if as_json:
        typer.echo(json.dumps(desc.as_json(), indent=2))
        return
    out.print(
        f"{desc.path}: {desc.kind} payload, {desc.size} bytes, block size {desc.block_size}, "
        f"{desc.layout}, id {desc.payload_id[:16]}"
    )
    table = Table("part", "new size", "new sha256", "old sha256", "operations", "blob bytes")
    for part in desc.parts:
        table.add_row(
            part.name,
            str(part.new_size),
            part.new_sha256[:16],
            (part.old_sha256 or "-")[:16],
            ", ".join(f"{n}×{t}" for t, n in sorted(part.operations.items())),
            str(part.blob_bytes),
        )
    out.print(table)
    if desc.usr_verity is not None:
        out.print(
            f"usr verity: root hash {desc.usr_verity.root_hash}, "
            f"hash tree at byte {desc.usr_verity.hash_offset}"
        )
    else:
        out.print("usr verity: none (the node mounts /usr without dm-verity)")
    for sig in desc.signatures:
        out.print(f"signature: {sig.algorithm} key {sig.key_id or '?'} ({sig.length} bytes)")
    if not desc.signatures:
        out.print("signature: none")


@payload_app.command("verify")
def verify(
    payload: Annotated[Path, typer.Argument(help="Payload file")],
    key: TrustedKeyFiles = None,
    no_signature_check: NoSignatureCheck = False,
) -> None:
    """Check a payload's structure, every blob hash and its signature."""
    with payload_errors():
        report = verify_payload(payload, _trusted(key, no_signature_check))
    signer = f"signed by {report.signed_by}" if report.signed_by else "signature not checked"
    out.print(f"{payload}: OK, {report.payload_bytes} bytes, {report.blobs} blobs, {signer}")


@payload_app.command("sign")
def sign(
    payload: Annotated[Path, typer.Argument(help="Payload file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Signed payload to write")],
    key: SigningKeys = None,
) -> None:
    """Replace a payload's signatures with signatures by the given keys."""
    with payload_errors():
        if not key:
            fail("give at least one private key with --key")
        keys = [load_signing_key(k) for k in key]
        size = resign_payload(payload, output, keys)
    out.print(f"{output}: {size} bytes, signed by {', '.join(k.key_id.hex() for k in keys)}")


def _opener(payload: str, client: httpx.Client) -> Opener:
    if payload.startswith(("http://", "https://")):
        return http_opener(client, payload)
    return file_opener(Path(payload))


@payload_app.command("apply")
def apply(
    payload: Annotated[str, typer.Argument(help="Payload file or http(s) URL")],
    target: Annotated[
        Path | None, typer.Option(help="Slot to write: a /usr image file or block device")
    ] = None,
    disk: Annotated[
        Path | None,
        typer.Option(help="Or: a disk image; writes its inactive USR slot and records it"),
    ] = None,
    slot: Annotated[Slot | None, typer.Option(help="With --disk: the slot to write")] = None,
    version: Annotated[str, typer.Option(help="With --disk: version recorded for the slot")] = (
        "unknown"
    ),
    make_bootable: Annotated[
        bool, typer.Option(help="With --disk: boot the new slot next (one try) once verified")
    ] = False,
    source: Annotated[
        Path | None, typer.Option(help="The running slot's /usr (for delta payloads)")
    ] = None,
    kernel_target: Annotated[Path | None, typer.Option(help="Where the new kernel goes")] = None,
    initrd_target: Annotated[Path | None, typer.Option(help="Where the new initrd goes")] = None,
    key: TrustedKeyFiles = None,
    no_signature_check: NoSignatureCheck = False,
    resume_file: Annotated[
        Path | None, typer.Option(help="Progress file (default: TARGET.wellcar-apply.json)")
    ] = None,
) -> None:
    """Write a payload into a slot, verifying as it streams and the result at the end."""
    if (target is None) == (disk is None):
        fail("give either --target (a slot file or device) or --disk (a disk image)")
    written_to = target or disk
    assert written_to is not None
    with payload_errors(), httpx.Client(timeout=60.0) as client:
        trusted = _trusted(key, no_signature_check)
        checkpoint = CheckpointFile(
            resume_file or written_to.with_name(written_to.name + ".wellcar-apply.json")
        )
        with _progress() as progress:
            task = progress.add_task("apply", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            opener = _opener(payload, client)
            slot_note = ""
            if disk is not None:
                installed = install_into_slot(
                    opener,
                    disk,
                    SlotTable.for_image(disk),
                    trusted,
                    version,
                    slot=slot,
                    make_bootable=make_bootable,
                    checkpoint=checkpoint,
                    on_progress=on_progress,
                    kernel=kernel_target,
                    initrd=initrd_target,
                )
                result = installed.apply
                slot_note = f"; slot {installed.slot} is now {installed.info.state}"
            else:
                assert target is not None
                result = apply_payload(
                    opener,
                    ApplyTargets(TargetRegion(target), kernel_target, initrd_target),
                    trusted,
                    ApplySources(TargetRegion(source) if source else None),
                    checkpoint,
                    on_progress,
                )
    resumed = (
        f", resumed at operation {result.resumed_from_operation}"
        if result.resumed_from_operation is not None
        else ""
    )
    signer = f"signed by {result.signed_by}" if result.signed_by else "signature not checked"
    out.print(
        f"{written_to}: /usr written and verified ({result.new_size} bytes, sha256 "
        f"{result.new_sha256.hex()[:16]}…), {result.operations} operations in "
        f"{result.seconds:.1f} s{resumed}; {signer}{slot_note}"
    )
