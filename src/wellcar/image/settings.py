"""Build settings, declared once in :data:`SETTINGS` (mkosi-style).

Each row names a setting, its kind, default, help text and TOML key. The one table drives
the brand-profile parser (:func:`load_profile`), the ``wellcar build`` options
(:func:`cli_options`) and the documentation table (:func:`settings_markdown`), so the three
cannot drift apart. Values are layered: defaults, then the profile file, then the command
line; a bad value is reported with the setting's TOML key and where the value came from.
"""

from __future__ import annotations

import os
import re
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from wellcar.disk import DiskError, parse_size
from wellcar.disk.sizes import MiB, format_size
from wellcar.omaha.model import FLATCAR_APP_ID

from .errors import SettingsError
from .version import OsVersion, parse_os_version, today_version


class Kind(StrEnum):
    """How a value is parsed; the same parser serves TOML values and CLI strings."""

    TEXT = "text"
    IDENT = "identifier"  # an os-release ID: lowercase letters, digits, ".", "_", "-"
    URL = "URL"
    APP_ID = "app id"  # an Omaha app id, a GUID in braces
    INT = "integer"
    SIZE = "size"  # bytes, or with K/M/G/T; a multiple of 1 MiB
    PATH = "path"
    OPTIONAL_PATH = "path (optional)"
    LIST = "list"  # TOML array, or comma-separated on the command line
    PATH_LIST = "list of paths"  # the same, each a path (relative: to the profile)
    VERSION = "version"
    OPTIONAL_INT = "integer (optional)"
    SWITCH = "on, off or auto"  # TOML: also true / false


class Section(StrEnum):
    BRAND = "brand"
    BUILD = "build"


@dataclass(frozen=True)
class Setting:
    """One build setting. ``name`` is the field of :class:`BrandProfile` (section brand)
    or :class:`BuildSettings` (section build)."""

    name: str
    section: Section
    kind: Kind
    default: Callable[[], Any]
    help: str

    @property
    def key(self) -> str:
        """The TOML key, in the ``[brand]`` or ``[build]`` table."""
        return self.name.replace("_", "-")

    @property
    def flag(self) -> str:
        prefix = "brand-" if self.section is Section.BRAND else ""
        return f"--{prefix}{self.key}"

    @property
    def qualified(self) -> str:
        return f"{self.section}.{self.key}"


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value


# The container host of the brief: init, devices, D-Bus, kernel and its initramfs, remote
# access, TLS roots, a container runtime, filesystem and dm-verity tools, and python3 with
# the Debian-packaged dependencies of Wellcar's own code (see docs/image.md, "In the image").
DEFAULT_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "systemd-timesyncd",
    "udev",
    "dbus",
    "linux-image-amd64",
    "initramfs-tools",
    "busybox-static",  # the initramfs shell and tools; static, so it also runs in a container
    "zstd",
    "openssh-server",
    "sudo",  # the core user's passwordless sudo (wellcar.image.users), as on Flatcar
    "containerd",
    "docker.io",
    "apparmor",  # the Debian kernel enables AppArmor; docker loads its default profile with it
    "iproute2",
    "iptables",
    "iputils-ping",
    "netbase",
    "procps",
    "ca-certificates",
    "curl",
    "kmod",
    "e2fsprogs",
    "dosfstools",  # fsck.fat: the ESP (FAT, no journal) is checked before each mount
    "cloud-guest-utils",  # growpart: ROOT grows to fill the disk on first boot
    "gdisk",  # growpart moves the backup GPT to the end of a larger disk with sgdisk
    "cryptsetup-bin",
    "dmsetup",
    "tzdata",
    "python3",
    "python3-httpx",
    "python3-lxml",
    "python3-pygments",  # rich's dependency (rich itself is vendored, bookworm's is too old)
    "python3-markdown-it",
    "python3-typing-extensions",
    "python3-cryptography",
    "python3-zstandard",
    "python3-systemd",  # the agent logs into the journal with its fields (wellcar.logline)
)
# The same snapshot mirrors as the host's apt sources; named explicitly because
# mmdebstrap's default security mirror is not reachable from build machines without
# internet access.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)


def _default_cache() -> Path:
    env = os.environ.get("WELLCAR_PACKAGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wellcar" / "packages"


def default_dev_keys_dir() -> Path:
    """``$XDG_DATA_HOME/wellcar/dev-keys``: the XDG spec's fallback is ~/.local/share, and a
    relative XDG_DATA_HOME is ignored, as the spec says."""
    base = os.environ.get("XDG_DATA_HOME", "")
    data = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return data / "wellcar" / "dev-keys"


def _default_epoch() -> int | None:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    return int(env) if env and env.isdigit() else None


B, S = Section.BRAND, Section.BUILD
SETTINGS: tuple[Setting, ...] = (
    Setting("name", B, Kind.TEXT, _const("Wellcar"), "os-release NAME"),
    Setting("id", B, Kind.IDENT, _const("wellcar"),
            "os-release ID; also the directory name under /usr/share, /etc and the ESP"),
    Setting("id_like", B, Kind.TEXT, _const("flatcar coreos"),
            "os-release ID_LIKE: the ancestors, so tools written for them recognise the OS"),
    Setting("pretty_name", B, Kind.TEXT, _const("Wellcar Linux"),
            "os-release PRETTY_NAME (the version is appended)"),
    Setting("home_url", B, Kind.URL, _const("https://wellcar.dev/"), "os-release HOME_URL"),
    Setting("bug_report_url", B, Kind.URL, _const("https://wellcar.dev/issues"),
            "os-release BUG_REPORT_URL"),
    Setting("update_server", B, Kind.URL, _const("https://update.wellcar.dev/v1/update/"),
            "SERVER in /usr/share/<id>/update.conf"),
    Setting("update_group", B, Kind.TEXT, _const("stable"),
            "GROUP in /usr/share/<id>/update.conf"),
    Setting("app_id", B, Kind.APP_ID, _const(FLATCAR_APP_ID),
            "Omaha app id (<ID>_RELEASE_APPID); Flatcar's by default, so Flatcar update "
            "servers serve it"),
    Setting("board", B, Kind.IDENT, _const("amd64-usr"), "<ID>_RELEASE_BOARD"),
    Setting("payload_key_dir", B, Kind.OPTIONAL_PATH, _const(None),
            "directory of *.pub (or *.pem) public keys installed as trusted payload keys"),
    Setting("trust_root", B, Kind.OPTIONAL_PATH, _const(None),
            "TUF root.json shipped as /usr/share/<id>/trust/root.json: the agent then installs "
            "only releases the release keys signed (docs/trust.md)"),
    Setting("release_repository", B, Kind.TEXT, _const(""),
            "RELEASE_REPOSITORY in /usr/share/<id>/update.conf: the release tree whose TUF "
            "metadata the agent verifies [default: none]"),
    Setting("version", S, Kind.VERSION, today_version,
            "MAJOR.MINOR.PATCH; MAJOR = days since 2013-07-01 UTC, MINOR 0 alpha .. 3 lts "
            "[default: today's alpha, <days>.0.0]"),
    Setting("packages", S, Kind.LIST, _const(DEFAULT_PACKAGES),
            "Debian packages installed on top of the minbase variant"),
    Setting("extra_packages", S, Kind.LIST, _const(()),
            "more packages, added to the list (a profile's way to extend, not replace)"),
    Setting("extra_trees", S, Kind.PATH_LIST, _const(()),
            "directories copied over the root filesystem after the packages and branding "
            "(files under etc/ also become /etc defaults)"),
    Setting("suite", S, Kind.IDENT, _const("bookworm"), "Debian suite"),
    Setting("mirrors", S, Kind.LIST, _const(DEFAULT_MIRRORS), "apt sources lines"),
    Setting("output", S, Kind.PATH, _const(Path("build")), "output directory"),
    Setting("package_cache", S, Kind.PATH, _default_cache,
            "where downloaded .deb files are kept between builds [default: "
            "$WELLCAR_PACKAGE_CACHE or ~/.cache/wellcar/packages]"),
    Setting("source_date_epoch", S, Kind.OPTIONAL_INT, _default_epoch,
            "timestamp of every file in the images [default: $SOURCE_DATE_EPOCH, else "
            "midnight UTC of the version's MAJOR day]"),
    Setting("usr_size", S, Kind.SIZE, _const(2048 * MiB),
            "size of each /usr partition (USR-A, USR-B)"),
    Setting("esp_size", S, Kind.SIZE, _const(128 * MiB), "size of the EFI system partition"),
    Setting("root_size", S, Kind.SIZE, _const(1024 * MiB),
            "size of ROOT in the image (it grows to the disk on first boot)"),
    Setting("signing_key", S, Kind.OPTIONAL_PATH, _const(None),
            "private key that signs the update payload [default: the development key set "
            "when no key is named at all, else unsigned]"),
    Setting("dev_keys_dir", S, Kind.PATH, default_dev_keys_dir,
            "development key set (payload key, TUF keys, a release tree and its root) that a "
            "build naming no signing-key, payload-key-dir or trust-root creates once and uses "
            "(docs/image.md, \"Keys\") [default: $XDG_DATA_HOME/wellcar/dev-keys or "
            "~/.local/share/wellcar/dev-keys]"),
    Setting("payload_zstd_level", S, Kind.INT, _const(19),
            "zstd level of the update payload (lower builds faster)"),
    Setting("live_artifacts", S, Kind.SWITCH, _const("auto"),
            "the live ISO and PXE files (docs/live.md); auto: on for a release build (its "
            "payload signed by a key outside the development key set), off for development "
            "and test builds (development keys, or unsigned)"),
    Setting("package_repository", S, Kind.OPTIONAL_PATH, _const(None),
            "Wellcar's signed apt repository (wellcar packages repo): its packages are "
            "pinned above Debian's, and the build fails if one of them is installed from "
            "elsewhere (docs/packages.md) [default: Debian's packages only]"),
)  # fmt: skip
del B, S

_IDENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class BrandProfile:
    """Who the OS says it is. A fork changes these and nothing else."""

    name: str = "Wellcar"
    id: str = "wellcar"
    id_like: str = "flatcar coreos"
    pretty_name: str = "Wellcar Linux"
    home_url: str = "https://wellcar.dev/"
    bug_report_url: str = "https://wellcar.dev/issues"
    update_server: str = "https://update.wellcar.dev/v1/update/"
    update_group: str = "stable"
    app_id: str = FLATCAR_APP_ID
    board: str = "amd64-usr"
    payload_key_dir: Path | None = None
    trust_root: Path | None = None
    release_repository: str = ""

    @property
    def prefix(self) -> str:
        """The variable prefix of the release files: ``WELLCAR`` as Flatcar has FLATCAR."""
        return re.sub(r"[^A-Z0-9]", "_", self.id.upper())


@dataclass(frozen=True)
class BuildSettings:
    brand: BrandProfile = field(default_factory=BrandProfile)
    version: OsVersion = field(default_factory=today_version)
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    extra_packages: tuple[str, ...] = ()
    extra_trees: tuple[Path, ...] = ()
    suite: str = "bookworm"
    mirrors: tuple[str, ...] = DEFAULT_MIRRORS
    output: Path = Path("build")
    package_cache: Path = field(default_factory=_default_cache)
    source_date_epoch: int | None = None
    usr_size: int = 2048 * MiB  # Flatcar's; the default package set needs ~0.9 GiB
    esp_size: int = 128 * MiB
    root_size: int = 1024 * MiB  # room for a full payload download before ROOT grows
    signing_key: Path | None = None
    payload_zstd_level: int = 19
    dev_keys_dir: Path = field(default_factory=default_dev_keys_dir)
    package_repository: Path | None = None
    live_artifacts: str = "auto"  # "on", "off" or "auto": see wants_live_artifacts

    @property
    def wants_live_artifacts(self) -> bool:
        """Whether the build makes the live ISO and PXE files (docs/live.md)."""
        if self.live_artifacts != "auto":
            return self.live_artifacts == "on"
        key, dev = self.signing_key, self.dev_keys_dir.expanduser()
        return key is not None and not key.resolve().is_relative_to(dev.resolve())

    @property
    def epoch(self) -> int:
        """The effective SOURCE_DATE_EPOCH."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return self.version.day_epoch

    @property
    def all_packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.packages, *self.extra_packages]))

    def seed(self, purpose: str) -> str:
        """A reproducibility seed: the same brand, version and purpose give the same UUIDs
        and salts, different versions differ like two releases do."""
        return f"{self.brand.id}\0{self.version}\0{purpose}"

    def derived_uuid(self, purpose: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"wellcar-image:{self.seed(purpose)}")


def _check_fields() -> None:
    # The table and the dataclasses must name the same settings; checked at import so a
    # new row without a field (or the reverse) fails every test at once.
    table = {(s.section, s.name) for s in SETTINGS}
    declared = {(Section.BRAND, f.name) for f in fields(BrandProfile)} | {
        (Section.BUILD, f.name) for f in fields(BuildSettings) if f.name != "brand"
    }
    if table != declared:
        raise AssertionError(f"settings table and dataclasses differ: {table ^ declared}")


_check_fields()


def _parse(setting: Setting, raw: object, source: str, base: Path | None) -> Any:
    """Convert ``raw`` (TOML value or CLI string) for ``setting``; ``base`` resolves
    relative paths of a profile against the profile's directory."""
    where = f"{setting.qualified} ({setting.flag}) in {source}"

    def bad(expected: str) -> SettingsError:
        return SettingsError(f"{where}: {raw!r} is not {expected}")

    kind = setting.kind
    if kind in (Kind.INT, Kind.OPTIONAL_INT):
        if isinstance(raw, bool):
            raise bad("an integer")
        if isinstance(raw, str) and raw.strip().isdigit():
            return int(raw)
        if isinstance(raw, int) and raw >= 0:
            return raw
        raise bad("a non-negative integer")
    if kind is Kind.LIST:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return tuple(raw)
        raise bad("a list of strings")
    if kind is Kind.PATH_LIST:
        if isinstance(raw, str):
            items = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            items = list(raw)
        else:
            raise bad("a list of paths")
        paths = [Path(item).expanduser() for item in items]
        return tuple(base / p if base is not None and not p.is_absolute() else p for p in paths)
    if kind is Kind.SWITCH:
        if isinstance(raw, bool):
            return "on" if raw else "off"
        if isinstance(raw, str) and raw.lower() in ("on", "off", "auto"):
            return raw.lower()
        raise bad("on, off or auto")
    if kind is Kind.SIZE:
        if isinstance(raw, int) and not isinstance(raw, bool):
            size = raw
        elif isinstance(raw, str):
            try:
                size = parse_size(raw)
            except DiskError as exc:
                raise SettingsError(f"{where}: {exc}") from exc
        else:
            raise bad("a size")
        if size <= 0 or size % MiB:
            raise SettingsError(f"{where}: {format_size(size)} is not a positive multiple of 1 MiB")
        return size
    if not isinstance(raw, str):
        raise bad(f"a string ({kind})")
    if kind in (Kind.PATH, Kind.OPTIONAL_PATH):
        path = Path(raw).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    if kind is Kind.VERSION:
        try:
            return parse_os_version(raw)
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from exc
    if kind is Kind.IDENT and not _IDENT_RE.match(raw):
        raise bad("an identifier (lowercase letters, digits, '.', '_', '-')")
    if kind is Kind.URL and not raw.startswith(("http://", "https://")):
        raise bad("an http(s) URL")
    if kind is Kind.APP_ID:
        try:
            uuid.UUID(raw.strip("{}"))
        except ValueError:
            raise bad("a GUID in braces, like {e96281a6-d1af-4bde-9a0a-97b76e56dc57}") from None
        if not (raw.startswith("{") and raw.endswith("}")):
            raise bad("a GUID in braces")
    return raw


def _setting(section: Section, key: str) -> Setting | None:
    for setting in SETTINGS:
        if setting.section is section and setting.key == key:
            return setting
    return None


def load_profile(path: Path) -> dict[Setting, Any]:
    """The settings a TOML profile sets, parsed. Unknown tables and keys are errors:
    a typo silently ignored would build a wrongly branded image."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read profile {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
    values: dict[Setting, Any] = {}
    for table, entries in data.items():
        if table not in Section.__members__.values() or not isinstance(entries, dict):
            raise SettingsError(
                f"{path}: unknown table [{table}]; a profile has [brand] and [build] tables"
            )
        section = Section(table)
        for key, raw in entries.items():
            setting = _setting(section, key)
            if setting is None:
                known = ", ".join(s.key for s in SETTINGS if s.section is section)
                raise SettingsError(f"{path}: unknown key {key!r} in [{table}]; known: {known}")
            values[setting] = _parse(setting, raw, str(path), path.parent)
    return values


def resolve_settings(
    profile: Path | None = None, overrides: Mapping[str, str | None] | None = None
) -> BuildSettings:
    """Defaults, then ``profile``, then ``overrides`` (setting name → CLI string; None
    means "not given")."""
    values: dict[Setting, Any] = {s: s.default() for s in SETTINGS}
    if profile is not None:
        values.update(load_profile(profile))
    by_name = {s.name if s.section is Section.BUILD else f"brand_{s.name}": s for s in SETTINGS}
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        setting = by_name.get(name)
        if setting is None:
            raise SettingsError(f"unknown setting {name!r}")
        values[setting] = _parse(setting, raw, "the command line", None)
    brand = BrandProfile(**{s.name: v for s, v in values.items() if s.section is Section.BRAND})
    return BuildSettings(
        brand=brand, **{s.name: v for s, v in values.items() if s.section is Section.BUILD}
    )


def cli_name(setting: Setting) -> str:
    """The Python parameter name of a setting's CLI option (brand ones prefixed)."""
    return setting.name if setting.section is Section.BUILD else f"brand_{setting.name}"


def settings_markdown() -> str:
    """The settings table of docs/image.md, generated from :data:`SETTINGS`."""
    lines = [
        "| TOML key | Option | Kind | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = _describe_default(setting)
        lines.append(
            f"| `[{setting.section}] {setting.key}` | `{setting.flag}` | {setting.kind} | "
            f"{default} | {setting.help.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _describe_default(setting: Setting) -> str:
    if setting.name in ("version", "package_cache", "source_date_epoch", "dev_keys_dir"):
        return "see description"  # computed at run time
    value = setting.default()
    if value is None or value == ():
        return "—"
    if setting.kind is Kind.SIZE:
        return format_size(value)
    if setting.kind is Kind.LIST:
        return f"{len(value)} entries (see below)"
    if setting.kind is Kind.PATH_LIST:
        return ", ".join(f"`{path}`" for path in value)
    return f"`{value}`"
