"""``python3 -m wellcar.metadata run``: the node's metadata agent (stdlib only).

    python3 -m wellcar.metadata run [--platform ID] [--root /] [--base-url URL]
                                    [--wireserver-url URL]

The platform comes from the kernel command line unless ``--platform`` names it. A
service that is absent, slow, or answers garbage costs a bounded wait; then the boot goes
on without platform metadata, and the console says why (exit status 0, so a cloud outage
never fails a boot's health check and rolls back an update). On platforms that wait
for it (Azure), the boot is then reported as ready, as afterburn's ``--check-in`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from wellcar.logline import configure_logging, log_fields

from .errors import MetadataError
from .node import NodeFiles, apply_hostname, apply_ssh_keys, write_attributes
from .platform_id import platform_from_cmdline
from .providers import BootCheckIn, Provider, ProviderSettings, provider_for

PROG = "wellcar-metadata"
log = logging.getLogger("wellcar.metadata")


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="platform metadata for this node")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fetch and apply hostname, ssh keys and attributes")
    run.add_argument("--platform", help="Ignition platform id (default: the command line's)")
    run.add_argument("--root", type=Path, default=Path("/"))
    run.add_argument("--cmdline", type=Path, default=Path("/proc/cmdline"))
    run.add_argument("--base-url", default=ProviderSettings().base_url)
    run.add_argument("--wireserver-url", default=ProviderSettings().wireserver_url)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(identifier=PROG)
    platform = args.platform
    if platform is None:
        cmdline = args.cmdline.read_text() if args.cmdline.is_file() else ""
        found = platform_from_cmdline(cmdline)
        platform = found.ignition if found is not None else None
    if platform is None:
        _say("the kernel command line names no platform; nothing to do")
        return 0
    settings = ProviderSettings(base_url=args.base_url, wireserver_url=args.wireserver_url)
    provider = provider_for(platform, settings)
    if provider is None:
        _say(f"platform {platform} has no metadata service; nothing to do")
        return 0
    files = NodeFiles(root=args.root, set_kernel_hostname=args.root == Path("/"))
    apply_metadata(platform, provider, files)
    if isinstance(provider, BootCheckIn):
        try:
            _say(f"{platform}: {provider.check_in()}")
        except MetadataError as exc:
            log.error("boot check-in failed", extra=log_fields(error=str(exc)))
            _say(f"{platform}: the boot check-in failed: {exc}")
    return 0


def apply_metadata(platform: str, provider: Provider, files: NodeFiles) -> None:
    try:
        metadata = provider.metadata()
    except MetadataError as exc:
        log.error("no platform metadata", extra=log_fields(error=str(exc)))
        _say(f"{platform}: {exc}")
        _say("booting without platform metadata (no hostname, ssh keys or attributes from it)")
        return
    written = write_attributes(files, metadata)
    hostname = apply_hostname(files, metadata.hostname)
    keys = apply_ssh_keys(files, metadata.ssh_keys) if metadata.ssh_keys else None
    _say(
        f"{platform} ({provider.name}): {len(metadata.attributes)} attributes in {written}, "
        f"hostname {hostname or 'kept'}, {len(metadata.ssh_keys)} ssh key(s) for core"
        + (f" in {keys}" if keys else "")
    )


if __name__ == "__main__":
    sys.exit(main())
