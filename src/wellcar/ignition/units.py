"""Planning `systemd.units` as Ignition does: unit files and drop-ins under
/etc/systemd/system, masking by /dev/null links, and `enabled` as lines of Ignition's
preset file, applied with systemd's own `systemctl --root=ROOT preset` (so `[Install]`,
`Alias=`, `Also=`, templates, specifiers and continued lines behave as systemd says).

Names are resolved as systemd resolves them first: an alias link (Debian's
`sshd.service -> ssh.service`) stands for the unit it points to, because systemctl refuses
to enable or disable an alias name. A unit that exists nowhere (neither in the root nor
written by the config) gets one warning and is left alone, never a failed provisioning.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from wellcar.ignition.errors import ApplyError
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.steps import NO_OWNER, MakeLink, Step, WriteFile
from wellcar.ignition.types import Storage, Unit

ETC_UNITS = "/etc/systemd/system"
# systemd's unit search path for the system manager in a root, most important first.
UNIT_DIRS = (ETC_UNITS, "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
             "/lib/systemd/system")  # fmt: skip
# Ignition's preset file: `enable NAME` / `disable NAME`, one line each.
PRESET_FILE = "/etc/systemd/system-preset/20-ignition.preset"
PRESET_DIRS = ("/etc/systemd/system-preset", "/usr/local/lib/systemd/system-preset",
               "/usr/lib/systemd/system-preset", "/lib/systemd/system-preset")  # fmt: skip
MAX_ALIAS_HOPS = 8


@dataclass
class UnitSwitches:
    """What `systemctl --root preset` is asked to apply, after every file is written."""

    enable: list[str] = field(default_factory=list)
    disable: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [*self.enable, *self.disable]

    def preset_text(self) -> str:
        lines = [f"enable {n}" for n in self.enable] + [f"disable {n}" for n in self.disable]
        return "".join(f"{line}\n" for line in lines)


def template_of(name: str) -> str | None:
    """foo@.service for foo@bar.service; None for a name that is not an instance."""
    stem, at, rest = name.partition("@")
    if not at or rest.startswith("."):
        return None
    return f"{stem}@.{rest.rsplit('.', 1)[-1]}"


def _written_names(units: tuple[Unit, ...], storage: Storage) -> set[str]:
    """Unit names this config defines: units with contents, and files or links it writes
    straight into a unit directory."""
    names = {u.name for u in units if u.contents is not None and not u.mask}
    paths = [f.path for f in storage.files] + [link.path for link in storage.links]
    for path in paths:
        directory, name = posixpath.split(path.rstrip("/"))
        if directory in UNIT_DIRS:
            names.add(name)
    return names


def _unit_link(root: TargetRoot, name: str) -> tuple[str, str | None] | None:
    """(directory, link target or None for a regular file) of the first definition of
    name on the unit search path in the root."""
    for directory in UNIT_DIRS:
        host = root.resolve(directory, follow_last=True) / name
        if host.is_symlink():
            return directory, os.readlink(host)
        if host.exists():
            return directory, None
    return None


def resolve_unit(root: TargetRoot, name: str, written: set[str]) -> str | None:
    """The real unit name systemctl must be given for name (an alias resolved to its
    unit), or None when no such unit exists in the root or the config."""
    seen: set[str] = set()
    current = name
    while current not in seen and len(seen) < MAX_ALIAS_HOPS:
        seen.add(current)
        if current in written:
            return current
        found = _unit_link(root, current)
        if found is None:
            template = template_of(current)
            if template is not None and (template in written or _unit_link(root, template)):
                return current
            return None
        _directory, target = found
        if target is None or target == "/dev/null":
            return current
        target_name = posixpath.basename(target)
        if target_name == current:
            return current  # a linked unit file (systemctl link), not an alias
        current = target_name
    return None  # an alias loop: systemd would refuse it too


def plan_units(
    units: tuple[Unit, ...], storage: Storage, root: TargetRoot, warnings: list[str]
) -> tuple[list[Step], UnitSwitches]:
    steps: list[Step] = []
    switches = UnitSwitches()
    written = _written_names(units, storage)
    for i, unit in enumerate(units):
        where = f"$.systemd.units[{i}]"
        unit_host = root.resolve(f"{ETC_UNITS}/{unit.name}", follow_last=False)
        if unit.mask:
            # Masking an alias masks its unit, as systemctl mask would.
            masked = resolve_unit(root, unit.name, written) or unit.name
            host = root.resolve(f"{ETC_UNITS}/{masked}", follow_last=False)
            steps.append(MakeLink(host, "/dev/null", False, NO_OWNER, replace_node=True))
        elif unit.contents is not None:
            data = unit.contents.encode()
            steps.append(WriteFile(unit_host, data, b"", 0o644, NO_OWNER, replace_node=True))
        for dropin in unit.dropins:
            host = root.resolve(f"{ETC_UNITS}/{unit.name}.d/{dropin.name}", follow_last=False)
            data = (dropin.contents or "").encode()
            steps.append(WriteFile(host, data, b"", 0o644, NO_OWNER, replace_node=True))
        if unit.enabled is None or unit.mask:
            continue
        real = resolve_unit(root, unit.name, written)
        if real is None:
            action = "enabled" if unit.enabled else "disabled"
            warnings.append(
                f"{where}.enabled: {unit.name} exists neither in the image nor in the config; "
                f"it is not {action}"
            )
            continue
        target = switches.enable if unit.enabled else switches.disable
        if real not in switches.names:
            target.append(real)
    if switches.names:
        if shutil.which("systemctl") is None:
            raise ApplyError("systemctl not found: enabling units needs systemd's systemctl")
        preset = root.resolve(PRESET_FILE, follow_last=False)
        text = switches.preset_text().encode()
        steps.append(WriteFile(preset, text, b"", 0o644, NO_OWNER, replace_node=True))
    return steps, switches


def _preset(switches: UnitSwitches, root: Path) -> None:
    argv = ["systemctl", f"--root={root}", "preset", "--preset-mode=full", *switches.names]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        failed = [line for line in done.stderr.splitlines() if line.startswith("Failed")]
        detail = failed[-1] if failed else done.stderr.strip()[-200:] or f"exit {done.returncode}"
        raise ApplyError(f"$.systemd.units: systemd cannot enable or disable these units: {detail}")


def rehearse_switches(switches: UnitSwitches, steps: list[Step], root: TargetRoot) -> None:
    """Apply the switches first to a scratch copy of the root's unit and preset
    directories, with the config's unit files in it, so that what systemd refuses (an
    alias it cannot make, say) fails the plan before anything is written."""
    if not switches.names:
        return
    with tempfile.TemporaryDirectory(prefix="wellcar-units-") as scratch_dir:
        scratch = Path(scratch_dir)
        for top in ("lib", "lib64"):  # merged /usr: /lib -> usr/lib, as in the root
            if (root.path / top).is_symlink():
                os.symlink(os.readlink(root.path / top), scratch / top)
        for directory in (*UNIT_DIRS, *PRESET_DIRS):
            source = root.path / directory.lstrip("/")
            target = scratch / directory.lstrip("/")
            if source.is_dir() and not source.is_symlink() and not target.exists():
                shutil.copytree(source, target, symlinks=True)
        prefixes = tuple(d.lstrip("/") + "/" for d in (*UNIT_DIRS, *PRESET_DIRS))
        for step in steps:
            if isinstance(step, (WriteFile, MakeLink)) and not getattr(step, "hard", False):
                relative = str(step.host.relative_to(root.path))
                if relative.startswith(prefixes):
                    replace(step, host=scratch / relative).run(None)
        _preset(switches, scratch)


def apply_switches(switches: UnitSwitches, root: TargetRoot) -> None:
    """`systemctl --root preset` the units, after their files are written: systemd reads
    Ignition's preset file and makes (or removes) the links of each unit's [Install]."""
    if switches.names:
        _preset(switches, root.path)
