"""The agent's configuration: update.conf files and the release file → :class:`AgentConfig`.

Files are read in order of precedence, all relative to ``root`` (so tests use a
temporary directory): ``/etc/<brand>/update.conf``, ``/etc/flatcar/update.conf``,
``/etc/coreos/update.conf`` (users migrating from Flatcar or Container Linux keep
their settings), ``/usr/share/<brand>/update.conf`` (the vendor's built-in
``SERVER`` and ``GROUP``) and ``/usr/share/<brand>/release``. For every key the
first file that sets it wins, even with an empty value, as in update_engine. The
release keys can therefore be overridden from ``/etc`` too (Flatcar's documented
trick: ``<BRAND>_RELEASE_VERSION=0.0.0`` makes any offered version look newer).

The keys themselves are declared once, in :data:`wellcar.agent.settings.SETTINGS`;
see docs/agent.md for every key, its default and the decisions taken here.
"""

from __future__ import annotations

import logging
import platform
import re
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from wellcar.logline import log_fields
from wellcar.omaha import FLATCAR_APP_ID

from .conf_file import ConfEntry, read_conf_file
from .durations import format_duration, parse_duration
from .errors import ConfigError
from .node_identity import in_root
from .reboot_window import RebootWindow, parse_window_start
from .settings import (
    IGNORED_KEYS,
    IGNORED_PREFIXES,
    NODE_PATH_DEFAULTS,
    SETTINGS,
    RebootStrategy,
    Setting,
    is_http_url,
)
from .state_dir import StateDir

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_HEALTH_UNITS",
    "AgentConfig",
    "RebootStrategy",
    "default_state_dir",
    "load_config",
    "settings_markdown",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "stable"
DEFAULT_HEALTH_UNITS = ("containerd.service", "docker.service", "wellcar-agent.service")
DEFAULT_FLEETLOCK_GROUP = "default"
_BRAND = re.compile(r"[a-z0-9][a-z0-9_-]*")


# AgentConfig's defaults (brand wellcar); load_config uses the configured brand's.
_WELLCAR_STATE_DIR = Path(NODE_PATH_DEFAULTS["state_dir"].format(brand="wellcar"))
_WELLCAR_PAYLOAD_KEY_DIR = Path(NODE_PATH_DEFAULTS["payload_key_dir"].format(brand="wellcar"))
_WELLCAR_TRUST_ROOT = Path(NODE_PATH_DEFAULTS["trust_root"].format(brand="wellcar"))


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent needs, with defaults that work on a node. Paths are
    already joined to ``root``. Construct directly in tests, or use
    :func:`load_config`."""

    server: str | None = None  # Omaha URL; None = updates disabled
    default_server: str | None = None  # the vendor's built-in SERVER (the "production" URL)
    group: str = DEFAULT_GROUP
    # CHANNEL=: the release channel the operator chose (switching channels); None: the
    # channel the node follows is worked out from GROUP and the running release.
    channel: str | None = None
    machine_alias: str | None = None
    app_id: str = FLATCAR_APP_ID
    version: str = "0.0.0"  # the running OS version (release file)
    board: str = "amd64-usr"
    reboot_strategy: RebootStrategy = RebootStrategy.REBOOT
    reboot_window: RebootWindow | None = None
    fleetlock_url: str | None = None  # base URL; the client POSTs to v1/pre-reboot etc.
    fleetlock_group: str = DEFAULT_FLEETLOCK_GROUP
    fleetlock_retry_interval: timedelta = timedelta(minutes=1)
    health_units: tuple[str, ...] = DEFAULT_HEALTH_UNITS
    health_command: tuple[str, ...] | None = None  # argv, already split like a shell
    # Boot assessment: a boot is judged no earlier than `grace` after the agent
    # starts (update_engine marks boots good after 45 s), and judged bad when the
    # health checks have not passed `timeout` after that.
    boot_assessment_grace: timedelta = timedelta(seconds=45)
    boot_assessment_timeout: timedelta = timedelta(minutes=5)
    check_initial_delay: timedelta = timedelta(minutes=7)
    check_interval: timedelta = timedelta(minutes=45)
    check_fuzz: timedelta = timedelta(minutes=5)  # ± around both of the above
    max_backoff: timedelta = timedelta(hours=4)
    http_timeout: timedelta = timedelta(seconds=60)
    delta_okay: bool = False  # update_engine hard-codes false
    download_user: str | None = None
    download_password: str | None = field(default=None, repr=False)
    root: Path = Path("/")
    brand: str = "wellcar"
    state_dir: Path = _WELLCAR_STATE_DIR
    payload_key_dir: Path = _WELLCAR_PAYLOAD_KEY_DIR
    # TUF: the root metadata shipped in the image. When it exists, every payload must be
    # a target signed under it (see wellcar.agent.trusted_payload and docs/trust.md).
    trust_root: Path = _WELLCAR_TRUST_ROOT
    release_repository: str | None = None  # base URL of the release tree (metadata/ below)
    sources: tuple[Path, ...] = ()  # the files that were read, highest precedence first
    warnings: tuple[str, ...] = ()

    @property
    def updates_enabled(self) -> bool:
        return self.server is not None

    @property
    def is_production_server(self) -> bool:
        """False when SERVER differs from the vendor's built-in one; failure
        reports then carry ``ErrorFlag.TEST_OMAHA_URL``, as update_engine's do."""
        return self.server is not None and self.server == self.default_server

    @property
    def status_path(self) -> Path:
        return StateDir(self.state_dir).status

    @property
    def download_dir(self) -> Path:
        return StateDir(self.state_dir).download

    @property
    def full_response_path(self) -> Path:
        return StateDir(self.state_dir).full_response

    @property
    def trust_dir(self) -> Path:
        return StateDir(self.state_dir).trust

    @property
    def download_auth(self) -> tuple[str, str] | None:
        """``DOWNLOAD_USER``/``DOWNLOAD_PASSWORD`` for HTTP basic auth on payloads."""
        if self.download_user is None:
            return None
        return (self.download_user, self.download_password or "")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}/"


def _machine_board(machine: str) -> str:
    return {"x86_64": "amd64-usr", "aarch64": "arm64-usr", "arm64": "arm64-usr"}.get(
        machine, f"{machine}-usr"
    )


class _Layers:
    """Entries of every file, highest precedence first."""

    def __init__(self, files: list[tuple[Path, list[ConfEntry]]]) -> None:
        self.files = files

    def get(self, *keys: str) -> ConfEntry | None:
        for _, entries in self.files:
            found: ConfEntry | None = None
            for key in keys:  # first alias wins within one file; last line wins per key
                matches = [e for e in entries if e.key == key]
                if matches:
                    found = matches[-1]
                    break
            if found is not None:
                return found
        return None

    def value(self, *keys: str) -> ConfEntry | None:
        """Like get, but None for an empty value too (empty means "the default")."""
        entry = self.get(*keys)
        return entry if entry is not None and entry.value else None


def _fail(entry: ConfEntry, message: str) -> ConfigError:
    return ConfigError(f"{entry.key}: {message}", path=entry.path, line=entry.line)


def _where(entry: ConfEntry) -> str:
    return f"{entry.path}:{entry.line}"


_WINDOW_START, _WINDOW_LENGTH = "LOCKSMITHD_REBOOT_WINDOW_START", "LOCKSMITHD_REBOOT_WINDOW_LENGTH"
# Fields whose value the loader works out from the parsed keys (and the files, the root).
_DERIVED = frozenset(
    {"server", "reboot_strategy", "reboot_window", "fleetlock_url", *NODE_PATH_DEFAULTS}
)


class _Loader:
    """One load_config run: the files, every key of SETTINGS parsed in table order, then
    the rules that tie keys together; fills ``values`` (AgentConfig field -> value) and
    ``warnings``."""

    def __init__(self, root: Path, brand: str) -> None:
        self.root = root
        self.brand = brand
        self.prefix = brand.upper().replace("-", "_")
        self.conf_paths = [
            f"/etc/{brand}/update.conf",
            "/etc/flatcar/update.conf",
            "/etc/coreos/update.conf",
            f"/usr/share/{brand}/update.conf",
        ]
        self.release_path = f"/usr/share/{brand}/release"
        self.warnings: list[str] = []
        self.values: dict[str, object] = {}
        self.entries: dict[str, ConfEntry] = {}  # setting key -> the entry that set it
        self.parsed: dict[str, object] = {}  # setting key -> its parsed value
        self.vendor_entries: list[ConfEntry] = []
        self.files: list[tuple[Path, list[ConfEntry]]] = []
        self._read_files()
        self.layers = _Layers(self.files)

    def _read_files(self) -> None:
        known = {key for s in SETTINGS for key in s.keys(self.prefix)}
        seen: set[tuple[int, int]] = set()
        for shown in [*self.conf_paths, self.release_path]:
            path = in_root(self.root, shown)
            entries = read_conf_file(path, shown)
            if entries is None:
                continue
            st = path.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue  # /etc/coreos is usually a symlink to /etc/flatcar
            seen.add((st.st_dev, st.st_ino))
            self.files.append((path, entries))
            if shown == self.conf_paths[-1]:
                self.vendor_entries = entries
            if shown == self.release_path:
                continue  # the image owns the release file; its other keys are not ours to judge
            for e in entries:
                if e.key in known:
                    continue
                if e.key in IGNORED_KEYS or e.key.startswith(IGNORED_PREFIXES):
                    self.warnings.append(f"{_where(e)}: {e.key} is not supported and is ignored")
                else:
                    self.warnings.append(f"{_where(e)}: unknown key {e.key}")

    def _lookup(self, setting: Setting) -> ConfEntry | None:
        keys = setting.keys(self.prefix)
        return self.layers.get(*keys) if setting.keeps_empty else self.layers.value(*keys)

    def parse_settings(self) -> None:
        by_key = {s.key: s for s in SETTINGS}
        for setting in SETTINGS:
            entry = self._lookup(setting)
            if entry is None:
                continue
            if setting.together_with and self._lookup(by_key[setting.together_with]) is None:
                # Half a window would mean "reboot any time", the opposite of what
                # whoever set one wanted.
                raise _fail(entry, f"set without {setting.together_with}")
            try:
                value = setting.parse(entry.value)
            except ValueError as exc:
                raise _fail(entry, str(exc)) from None
            self.entries[setting.key], self.parsed[setting.key] = entry, value
            if setting.field not in _DERIVED:
                self.values[setting.field] = value
            if setting.key == _WINDOW_LENGTH:
                self._window()

    def _window(self) -> None:
        start, length = self.entries[_WINDOW_START], self.entries[_WINDOW_LENGTH]
        weekday, at = parse_window_start(start.value)
        try:
            window = RebootWindow(start=at, length=parse_duration(length.value), weekday=weekday)
        except ValueError as exc:
            raise _fail(length, str(exc)) from None
        self.values["reboot_window"] = window

    def server(self) -> None:
        # SERVER: "disabled", empty or not a URL disables updates (update_engine).
        vendor = [e for e in self.vendor_entries if e.key == "SERVER"]
        if vendor and is_http_url(vendor[-1].value):
            self.values["default_server"] = vendor[-1].value
        server: str | None = None
        entry = self.entries.get("SERVER")
        if entry is None:
            self.warnings.append("no SERVER configured: updates are disabled")
        elif entry.value != "disabled":
            if is_http_url(entry.value):
                server = entry.value
            else:
                self.warnings.append(
                    f"{_where(entry)}: SERVER {entry.value[:80]!r} is not an http(s) URL: "
                    "updates are disabled"
                )
        self.values["server"] = server

    def release(self) -> None:
        version, board = (s for s in SETTINGS if s.field in ("version", "board"))
        if "version" not in self.values:
            shown = version.keys(self.prefix)[0]
            self.warnings.append(f"no {shown} in {self.release_path}: assuming 0.0.0")
        if "board" not in self.values:
            machine_board = _machine_board(platform.machine())
            self.values["board"] = machine_board
            self.warnings.append(f"no {board.keys(self.prefix)[0]}: assuming {machine_board}")

    def reboot(self) -> None:
        values = self.values
        explicit = self.parsed.get("FLEETLOCK_URL")
        server = values.get("server")
        fleetlock_url: str | None = None
        if isinstance(explicit, str):
            fleetlock_url = explicit
        elif isinstance(server, str):
            fleetlock_url = _origin(server)
        values["fleetlock_url"] = fleetlock_url

        entry = self.entries.get("REBOOT_STRATEGY")
        if entry is not None:
            text = self.parsed["REBOOT_STRATEGY"]
            if text == "etcd-lock":
                values["reboot_strategy"] = RebootStrategy.FLEET_LOCK
                self.warnings.append(
                    f"{_where(entry)}: REBOOT_STRATEGY=etcd-lock is treated as fleet-lock"
                )
            elif text == "best-effort":
                chosen = RebootStrategy.FLEET_LOCK if explicit else RebootStrategy.REBOOT
                values["reboot_strategy"] = chosen
                self.warnings.append(
                    f"{_where(entry)}: REBOOT_STRATEGY=best-effort is treated as {chosen}"
                )
            else:
                values["reboot_strategy"] = RebootStrategy(str(text))
        if values.get("reboot_strategy") is RebootStrategy.FLEET_LOCK and fleetlock_url is None:
            self.warnings.append("REBOOT_STRATEGY=fleet-lock without SERVER or FLEETLOCK_URL")

    def paths(self) -> None:
        for name, default in NODE_PATH_DEFAULTS.items():
            key = next(s.key for s in SETTINGS if s.field == name)
            absolute = self.parsed.get(key, default.format(brand=self.brand))
            self.values[name] = in_root(self.root, str(absolute))

    def config(self) -> AgentConfig:
        return AgentConfig(
            root=self.root,
            brand=self.brand,
            sources=tuple(p for p, _ in self.files),
            warnings=tuple(self.warnings),
            **self.values,  # type: ignore[arg-type]
        )


def default_state_dir(root: Path, brand: str) -> Path:
    """``STATE_DIR`` when update.conf does not set it (also where a blocked agent keeps its
    status when update.conf cannot be read at all)."""
    return in_root(root, NODE_PATH_DEFAULTS["state_dir"].format(brand=brand))


def load_config(root: Path = Path("/"), brand: str = "wellcar") -> AgentConfig:
    """Read the configuration files under ``root`` (see module docstring).

    Raises :class:`ConfigError` naming ``file:line`` for malformed lines and bad
    values. Unknown keys and deprecated values only add to ``warnings``. An
    empty value means the built-in default, except ``SERVER=`` (updates
    disabled, as in update_engine) and ``HEALTH_UNITS=`` (no units).
    """
    if not _BRAND.fullmatch(brand):
        raise ConfigError(f"invalid brand {brand!r}")
    loader = _Loader(root, brand)
    loader.parse_settings()
    loader.server()
    loader.release()
    loader.reboot()
    loader.paths()
    config = loader.config()
    for warning in config.warnings:
        log.warning("config", extra=log_fields(warning=warning))
    return config


# --- the docs table -------------------------------------------------------------------


def _describe_default(setting: Setting) -> str:
    if setting.default:
        return setting.default
    if setting.field in NODE_PATH_DEFAULTS:
        return f"`{NODE_PATH_DEFAULTS[setting.field].format(brand='<brand>')}`"
    declared = next(f for f in fields(AgentConfig) if f.name == setting.field)
    value = declared.default
    if value is MISSING or value is None:
        return "none"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, tuple):
        return f"`{' '.join(str(v) for v in value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_markdown() -> str:
    """The key table of docs/agent.md, generated from :data:`SETTINGS`."""
    lines = ["| key | field | kind | default | notes |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        lines.append(
            f"| {setting.shown_keys()} | `{setting.field}` | {setting.kind} | "
            f"{_describe_default(setting)} | {setting.help.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
