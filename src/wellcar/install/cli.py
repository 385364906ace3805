"""``wellcar install``: flatcar-install's flags and meanings, plus long names (argparse:
it runs on the node's python3 as on any Debian host; see docs/install.md).

Defaults come from the running system when it is a Wellcar node (its update.conf and
release file: channel, board, release tree, trusted root, payload keys, version), as
flatcar-install reads them from Flatcar's; elsewhere channel ``stable``, board
``amd64-usr``, version ``current``, and the tree and keys must be named. Every refusal
is one ``error:`` line and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wellcar.install.errors import InstallError
from wellcar.install.installer import InstallOutcome, InstallRequest, install
from wellcar.install.release_source import CURRENT, ReleaseChoice

BRAND = "wellcar"
DEFAULT_CHANNEL = "stable"
DEFAULT_BOARD = "amd64-usr"


@dataclass(frozen=True)
class NodeDefaults:
    channel: str = DEFAULT_CHANNEL
    board: str = DEFAULT_BOARD
    version: str = CURRENT
    base_url: str | None = None
    trust_root: Path | None = None
    payload_keys: Path | None = None


def node_defaults(brand: str) -> NodeDefaults:
    """What the running node's configuration says, when it is a Wellcar node."""
    release_file = Path(f"/usr/share/{brand}/release")
    if not release_file.is_file():
        return NodeDefaults()
    from wellcar.agent.config import load_config
    from wellcar.agent.errors import AgentError

    agent_log = logging.getLogger("wellcar.agent")
    level = agent_log.level
    agent_log.setLevel(logging.ERROR)  # its warnings are about updates, not installs
    try:
        config = load_config(Path("/"), brand)
    except AgentError:
        return NodeDefaults()
    finally:
        agent_log.setLevel(level)
    return NodeDefaults(
        channel=config.channel or config.group or DEFAULT_CHANNEL,
        board=config.board,
        version=config.version if config.version != "0.0.0" else CURRENT,
        base_url=config.release_repository,
        trust_root=config.trust_root if config.trust_root.is_file() else None,
        payload_keys=config.payload_key_dir if config.payload_key_dir.is_dir() else None,
    )


def build_parser(prog: str, defaults: NodeDefaults) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Install the OS onto a disk: fetch the release's disk image, verify it "
        "against the release keys, write it, read it back, place the Ignition config. "
        "Destroys everything on the disk.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-d", "--device", type=Path, help="the whole disk to install to")
    where.add_argument(
        "-s", "--smallest", action="store_true", help="the smallest unused disk (lsblk)"
    )
    parser.add_argument(
        "-C", "--channel", default=defaults.channel, help=f"[default: {defaults.channel}]"
    )
    parser.add_argument(
        "-V", "--version", dest="os_version", default=defaults.version,
        help=f"MAJOR.MINOR.PATCH or current [default: {defaults.version}]",
    )  # fmt: skip
    parser.add_argument(
        "-B", "--board", default=defaults.board, help=f"[default: {defaults.board}]"
    )
    parser.add_argument("-i", "--ignition", type=Path, help="Ignition config to place on OEM")
    parser.add_argument(
        "-b", "--base-url", default=defaults.base_url,
        help="the release tree: http(s) URL or local folder"
        + (f" [default: {defaults.base_url}]" if defaults.base_url else ""),
    )  # fmt: skip
    parser.add_argument(
        "-f", "--image-file", type=Path,
        help="install this local image file (zstd, gzip or raw) instead of fetching; verified "
        "when its signed DIGESTS is beside it",
    )  # fmt: skip
    parser.add_argument("-o", "--oem-id", help="OEM id written to the OEM partition (oem-release)")
    parser.add_argument(
        "--trust-root", type=Path, default=defaults.trust_root,
        help="TUF root.json the release tree must chain to"
        + (f" [default: {defaults.trust_root}]" if defaults.trust_root else ""),
    )  # fmt: skip
    parser.add_argument(
        "--trusted-key", type=Path, action="append", default=None,
        help="payload public key (file or directory) for DIGESTS; repeatable"
        + (f" [default: {defaults.payload_keys}]" if defaults.payload_keys else ""),
    )  # fmt: skip
    parser.add_argument("--brand", default=BRAND, help=argparse.SUPPRESS)
    return parser


def _run(args: argparse.Namespace, defaults: NodeDefaults) -> InstallOutcome:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if args.smallest:
        from wellcar.install.smallest_disk import smallest_unused_disk

        target = smallest_unused_disk()
        print(f"-s: installing to {target}, the smallest unused disk", file=sys.stderr)
    else:
        target = args.device
    keys = tuple(args.trusted_key or ([defaults.payload_keys] if defaults.payload_keys else []))
    request = InstallRequest(
        target=target,
        choice=ReleaseChoice(args.channel, args.board, args.os_version),
        base_url=args.base_url,
        image_file=args.image_file,
        ignition=args.ignition,
        oem_id=args.oem_id,
        trust_root=args.trust_root,
        trusted_keys=keys,
    )
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), transient=True, console=Console(stderr=True),
    )  # fmt: skip
    tasks: dict[str, TaskID] = {}
    labels = {"write": "writing", "check": "reading back"}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done)

    with bar:
        return install(request, progress=progress, say=lambda line: print(line, file=sys.stderr))


def main(argv: Sequence[str] | None = None, prog: str = "wellcar install") -> int:
    brand_args = list(sys.argv[1:] if argv is None else argv)
    brand = BRAND
    if "--brand" in brand_args[:-1]:
        brand = brand_args[brand_args.index("--brand") + 1]
    defaults = node_defaults(brand)
    args = build_parser(prog, defaults).parse_args(brand_args)
    try:
        outcome = _run(args, defaults)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted before the disk was written", file=sys.stderr)
        return 130
    placed = f"; placed {', '.join(outcome.placed)} on OEM" if outcome.placed else ""
    version = f" {outcome.version}" if outcome.version else ""
    print(
        f"installed{version} onto {outcome.target}: {outcome.image_bytes} bytes written and "
        f"read back, verified by {outcome.verified_by}{placed} ({outcome.seconds:.1f} s)"
    )
    return 0
