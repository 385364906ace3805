"""Planning `systemd.units`: unit files and drop-ins under /etc/systemd/system, enabling
by `[Install]` symlinks (as `systemctl --root enable` does) and masking by /dev/null links."""

from __future__ import annotations

from dataclasses import dataclass, field

from wellcar.ignition.errors import ConflictError
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.steps import NO_OWNER, MakeLink, RemoveLink, Step, WriteFile
from wellcar.ignition.types import Unit

ETC_UNITS = "/etc/systemd/system"
UNIT_DIRS = (ETC_UNITS, "/usr/lib/systemd/system", "/lib/systemd/system")
LINK_KEYS = {"WantedBy": ".wants", "RequiredBy": ".requires", "UpheldBy": ".upholds"}


@dataclass
class InstallSection:
    targets: list[tuple[str, str]] = field(default_factory=list)  # (unit, .wants|.requires)
    aliases: list[str] = field(default_factory=list)
    also: list[str] = field(default_factory=list)
    default_instance: str | None = None


def parse_install(contents: str) -> InstallSection | None:
    """The [Install] section of a unit file, or None when it has none."""
    section: str | None = None
    install: InstallSection | None = None
    for raw in contents.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section == "Install" and install is None:
                install = InstallSection()
            continue
        if section != "Install" or install is None or "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key in LINK_KEYS:
            install.targets += [(v, LINK_KEYS[key]) for v in value.split()]
        elif key == "Alias":
            install.aliases += value.split()
        elif key == "Also":
            install.also += value.split()
        elif key == "DefaultInstance":
            install.default_instance = value
    return install


def _template_of(name: str) -> str | None:
    stem, at, rest = name.partition("@")
    if not at or rest.startswith("."):
        return None
    return f"{stem}@.{rest.rsplit('.', 1)[1]}"


def _find_unit(root: TargetRoot, name: str, written: dict[str, str]) -> tuple[str, str] | None:
    """(path in the root, contents) of the unit file that defines name, if any."""
    for candidate in (name, _template_of(name)):
        if candidate is None:
            continue
        if candidate in written:
            return f"{ETC_UNITS}/{candidate}", written[candidate]
        for directory in UNIT_DIRS:
            host = root.resolve(f"{directory}/{candidate}")
            if host.is_file():
                return f"{directory}/{candidate}", host.read_text(errors="replace")
    return None


def _enable(
    root: TargetRoot, name: str, written: dict[str, str], where: str, steps: list[Step],
    warnings: list[str], seen: set[str],
) -> None:  # fmt: skip
    if name in seen:
        return
    seen.add(name)
    found = _find_unit(root, name, written)
    if found is None:
        raise ConflictError(
            f"{where}: cannot enable {name}: no unit file for it in the image or the config; "
            "add contents"
        )
    unit_path, contents = found
    install = parse_install(contents)
    if install is None or not (install.targets or install.aliases or install.also):
        warnings.append(f"{where}: {name} has no [Install] section; enabling it does nothing")
        return
    instance_name = name
    if name.endswith(tuple(f"@.{t}" for t in ("service", "socket", "timer", "path"))):
        if install.default_instance is None:
            warnings.append(f"{where}: template {name} needs an instance to be enabled")
            return
        stem, suffix = name.split("@.")
        instance_name = f"{stem}@{install.default_instance}.{suffix}"
    for target, suffix in install.targets:
        link = root.resolve(f"{ETC_UNITS}/{target}{suffix}", follow_last=True) / instance_name
        steps.append(MakeLink(link, unit_path, False, NO_OWNER, replace_node=True))
    for alias in install.aliases:
        link = root.resolve(f"{ETC_UNITS}/{alias}", follow_last=False)
        steps.append(MakeLink(link, unit_path, False, NO_OWNER, replace_node=True))
    for other in install.also:
        _enable(root, other, written, where, steps, warnings, seen)


def _disable(root: TargetRoot, name: str, steps: list[Step]) -> None:
    etc = root.resolve(ETC_UNITS)
    if not etc.is_dir():
        return
    # Not Path.glob: it skips dangling links, and a link into /usr may dangle in a root.
    for directory in sorted(etc.iterdir()):
        link = directory / name
        if directory.suffix in (".wants", ".requires", ".upholds") and link.is_symlink():
            steps.append(RemoveLink(link))


def plan_units(units: tuple[Unit, ...], root: TargetRoot, warnings: list[str]) -> list[Step]:
    steps: list[Step] = []
    written = {u.name: u.contents for u in units if u.contents is not None and not u.mask}
    for i, unit in enumerate(units):
        where = f"$.systemd.units[{i}]"
        unit_host = root.resolve(f"{ETC_UNITS}/{unit.name}", follow_last=False)
        if unit.mask:
            steps.append(MakeLink(unit_host, "/dev/null", False, NO_OWNER, replace_node=True))
        elif unit.contents is not None:
            steps.append(WriteFile(unit_host, unit.contents.encode(), b"", 0o644, NO_OWNER, True))
        for dropin in unit.dropins:
            host = root.resolve(f"{ETC_UNITS}/{unit.name}.d/{dropin.name}", follow_last=False)
            data = (dropin.contents or "").encode()
            steps.append(WriteFile(host, data, b"", 0o644, NO_OWNER, True))
        if unit.enabled is True:
            _enable(root, unit.name, written, f"{where}.enabled", steps, warnings, set())
        elif unit.enabled is False:
            _disable(root, unit.name, steps)
    return steps
