"""`python3 -m wellcar.ignition`: the node-side entry point (standard library only).

    python3 -m wellcar.ignition first-boot [--root /] [--flag /etc/.wellcar-first-boot]
        [--brand-domain org.wellcar-linux] [--oem-dir /oem] [--force]
    python3 -m wellcar.ignition validate FILE
    python3 -m wellcar.ignition apply FILE [--root DIR]

Errors print one line starting with "wellcar-ignition: error:" and exit with status 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from wellcar.ignition.apply import apply_config
from wellcar.ignition.errors import ConfigInvalidError, IgnitionError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.firstboot import DEFAULT_FLAG, FirstBootOptions, first_boot
from wellcar.ignition.kernel_arguments import ESP_MOUNT
from wellcar.ignition.parse import check_config, parse_config
from wellcar.ignition.report import Report
from wellcar.ignition.resolve import resolve
from wellcar.ignition.sources import DEFAULT_BRAND_DOMAIN, OEM_DIR, SourceLocations

PROG = "wellcar-ignition"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Wellcar first-boot provisioning")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("first-boot", help="provision this machine if it is its first boot")
    boot.add_argument("--root", type=Path, default=Path("/"))
    boot.add_argument("--flag", type=Path, default=DEFAULT_FLAG)
    boot.add_argument("--brand-domain", default=DEFAULT_BRAND_DOMAIN)
    boot.add_argument("--oem-dir", type=Path, default=OEM_DIR)
    boot.add_argument("--force", action="store_true", help="run even without the flag")
    boot.add_argument("--esp", type=Path, default=ESP_MOUNT, help="the mounted ESP")
    boot.add_argument("--brand", default="wellcar", help="whose boot entries are ours")
    check = sub.add_parser("validate", help="check a config; exit 1 on errors")
    check.add_argument("file", type=Path)
    apply = sub.add_parser("apply", help="apply a config file to a root directory")
    apply.add_argument("file", type=Path)
    apply.add_argument("--root", type=Path, default=Path("/"))
    return parser


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            report = check_config(args.file.read_bytes(), str(args.file))
            for entry in report.entries:
                _say(str(entry))
            return 1 if report.has_errors else 0
        if args.command == "apply":
            parsed = parse_config(args.file.read_bytes(), str(args.file))
            fetcher = Fetcher()
            config = resolve(parsed.config, fetcher, Report())
            plan = apply_config(config, args.root, fetcher)
            for warning in plan.warnings:
                _say(f"warning: {warning}")
            return 0
        options = FirstBootOptions(
            root=args.root,
            flag=args.flag,
            sources=SourceLocations(brand_domain=args.brand_domain, oem_dir=args.oem_dir),
            force=args.force,
            esp=args.esp,
            brand=args.brand,
        )
        result = first_boot(options)
        if not result.ran:
            _say(f"not a first boot ({args.flag} is absent); nothing to do")
            return 0
        for message in result.messages:
            _say(message)
        _say(f"provisioned from {result.origin}")
        if result.reboot_required:
            # As Ignition does for kernel arguments: one reboot, so they are in effect.
            _say("rebooting once so the kernel arguments take effect")
            subprocess.run(["systemctl", "--no-block", "reboot"], check=False)
        return 0
    except ConfigInvalidError as exc:
        for entry in exc.report.entries:
            _say(f"{exc.origin}: {entry}")
        _say("error: the config is invalid; nothing was changed. Fix it and reboot.")
        return 1
    except IgnitionError as exc:
        _say(f"error: {exc}")
        _say("error: provisioning failed; fix the cause and reboot to try again.")
        return 1
    except OSError as exc:
        _say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
