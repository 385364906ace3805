"""The first-boot run: if the flag is there, find the config, resolve, plan, apply, and
clear the flag; on any error, leave the flag (the next boot tries again) and the machine
untouched, and say on the console what went wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wellcar.ignition.apply import apply_config
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.kernel_arguments import (
    ESP_MOUNT,
    set_kernel_arguments,
    wants_kernel_arguments,
)
from wellcar.ignition.parse import parse_config
from wellcar.ignition.report import Report
from wellcar.ignition.resolve import resolve
from wellcar.ignition.sources import SourceLocations, find_config

DEFAULT_FLAG = Path("/etc/.wellcar-first-boot")
# Where the final, merged config is kept for later inspection (as Flatcar keeps
# /run/ignition.json); in the target root.
APPLIED_COPY = "/var/lib/wellcar/ignition/applied.json"


@dataclass(frozen=True)
class FirstBootOptions:
    root: Path = Path("/")
    flag: Path = DEFAULT_FLAG  # in the target root
    sources: SourceLocations = field(default_factory=SourceLocations)
    change_owner: bool = True
    force: bool = False  # run even without the flag
    esp: Path = ESP_MOUNT  # where kernelArguments change the slots' boot entries
    brand: str = "wellcar"


@dataclass(frozen=True)
class FirstBootResult:
    ran: bool
    origin: str = ""
    messages: tuple[str, ...] = ()
    reboot_required: bool = False  # kernelArguments changed the boot entries


def first_boot(options: FirstBootOptions, fetcher: Fetcher | None = None) -> FirstBootResult:
    """Raises IgnitionError on any failure; the flag then stays for the next boot."""
    flag = options.root / options.flag.relative_to("/")
    if not options.force and not flag.exists():
        return FirstBootResult(ran=False)
    fetcher = fetcher or Fetcher(oem_dir=options.sources.oem_dir)
    found = find_config(options.sources, fetcher)
    parsed = parse_config(found.data, origin=found.origin)
    report = Report()
    report.extend(parsed.report)
    config = resolve(parsed.config, fetcher, report)
    plan = apply_config(config, options.root, fetcher, change_owner=options.change_owner)
    changed: tuple[Path, ...] = ()
    if wants_kernel_arguments(config.kernel_arguments):
        # Before the flag goes: a failure here leaves it, and the next boot tries again.
        changed = set_kernel_arguments(config.kernel_arguments, options.esp, options.brand)
    _keep_copy(options.root, config)
    flag.unlink(missing_ok=True)
    messages = tuple(str(e) for e in report.entries) + tuple(plan.warnings)
    messages += tuple(f"kernel arguments set in {path.name}" for path in changed)
    return FirstBootResult(
        ran=True, origin=found.origin, messages=messages, reboot_required=bool(changed)
    )


def _keep_copy(root: Path, config: object) -> None:
    import json

    from wellcar.ignition.codec import encode
    from wellcar.ignition.rootfs import atomic_write

    path = root / APPLIED_COPY.lstrip("/")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(encode(config), indent=2).encode(), 0o600)
