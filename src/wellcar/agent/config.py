"""The agent's configuration: update.conf files, the release file, node identity.

Files are read in order of precedence, all relative to ``root`` (so tests use a
temporary directory): ``/etc/<brand>/update.conf``, ``/etc/flatcar/update.conf``,
``/etc/coreos/update.conf`` (users migrating from Flatcar or Container Linux keep
their settings), ``/usr/share/<brand>/update.conf`` (the vendor's built-in
``SERVER`` and ``GROUP``) and ``/usr/share/<brand>/release``. For every key the
first file that sets it wins, even with an empty value, as in update_engine. The
release keys can therefore be overridden from ``/etc`` too (Flatcar's documented
trick: ``<BRAND>_RELEASE_VERSION=0.0.0`` makes any offered version look newer).

See docs/agent.md for every key, its default and the decisions taken here.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shlex
import stat
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from wellcar.logline import log_fields
from wellcar.omaha import FLATCAR_APP_ID
from wellcar.trust.channels import CHANNEL_NAME

from .errors import ConfigError

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_HEALTH_UNITS",
    "AgentConfig",
    "ConfEntry",
    "NodeIdentity",
    "RebootStrategy",
    "RebootWindow",
    "format_duration",
    "is_newer_version",
    "load_config",
    "load_identity",
    "parse_conf_text",
    "parse_duration",
    "parse_version",
    "parse_window_start",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "stable"
DEFAULT_HEALTH_UNITS = ("containerd.service", "docker.service", "wellcar-agent.service")
DEFAULT_FLEETLOCK_GROUP = "default"
MAX_CONF_BYTES = 256 * 1024  # update.conf is a handful of lines; refuse to slurp a huge file
_MAX_DURATION = timedelta(days=366)


# --- versions ------------------------------------------------------------------

_PRE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_VersionKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def parse_version(text: str) -> _VersionKey | None:
    """A sort key for a semantic version (as Nebraska compares them), or None
    when ``text`` is not one. Build metadata (``+…``) does not take part."""
    if len(text) > 128:
        return None
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    pre: tuple[tuple[int, int | str], ...] = ()
    if m.group(4):
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in m.group(4).split("."))
    # A release sorts after its pre-releases: 1.0.0-rc.1 < 1.0.0.
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre)


def is_newer_version(candidate: str, current: str) -> bool:
    """True when ``candidate`` is a valid semver strictly newer than ``current``
    (an invalid ``current`` counts as 0.0.0, an invalid candidate is never newer)."""
    cand = parse_version(candidate)
    if cand is None:
        return False
    cur = parse_version(current) or (0, 0, 0, 1, ())
    return cand > cur


# --- durations -----------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str, *, bare_seconds: bool = True) -> timedelta:
    """Parse a Go-style duration (``1h30m``, ``90s``, ``1.5h``) or, when
    ``bare_seconds``, a plain number of seconds (``300``). Negative and
    absurdly long (> 1 year) durations are refused with ``ValueError``."""
    s = text.strip()
    if not s or len(s) > 64:
        raise ValueError(f"not a duration: {text!r}")
    if s == "0" or (bare_seconds and _BARE_SECONDS.fullmatch(s)):
        total = Decimal(s)
    else:
        total = Decimal(0)
        pos = 0
        while pos < len(s):
            m = _DURATION_PART.match(s, pos)
            if m is None:
                raise ValueError(f"not a duration: {text!r} (expected e.g. 300, 45s, 1h30m)")
            try:
                total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
            except InvalidOperation:
                raise ValueError(f"not a duration: {text!r}") from None
            pos = m.end()
    if total > Decimal(int(_MAX_DURATION.total_seconds())):
        raise ValueError(f"duration {text!r} is longer than {_MAX_DURATION.days} days")
    return timedelta(seconds=float(total))


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` → ``"1h30m"`` (Go-like, for messages)."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    out += f"{seconds}s" if seconds or not out else ""
    return out


# --- reboot strategy and window --------------------------------------------------


class RebootStrategy(StrEnum):
    """``REBOOT_STRATEGY``. locksmith's ``etcd-lock`` and ``best-effort`` are
    accepted and mapped (with a warning) by :func:`load_config`: ``etcd-lock``
    becomes ``fleet-lock`` (the same counting semaphore, kept by the update
    server instead of etcd); ``best-effort`` becomes ``fleet-lock`` when
    ``FLEETLOCK_URL`` is set explicitly, else ``reboot`` -- what locksmith does on
    a node that has no etcd to lock in."""

    REBOOT = "reboot"
    OFF = "off"
    FLEET_LOCK = "fleet-lock"


_WEEKDAYS = {
    name: i
    for i, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW_START = re.compile(r"(?:([A-Za-z]+)\s+)?(\d{1,2}):(\d{2})")
_US_PER_DAY = 86_400 * 1_000_000


def parse_window_start(text: str) -> tuple[int | None, time]:
    """``"14:00"`` → ``(None, 14:00)``, ``"Thu 23:00"`` → ``(3, 23:00)``
    (day names as locksmith takes them: three letters or in full, any case)."""
    m = _WINDOW_START.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text[:40]!r} is not '[Day] HH:MM'")
    weekday: int | None = None
    if m.group(1) is not None:
        weekday = _WEEKDAYS.get(m.group(1).lower())
        if weekday is None:
            raise ValueError(f"unknown day {m.group(1)[:20]!r}")
    hour, minute = int(m.group(2)), int(m.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{text[:40]!r} is not a time of day")
    return weekday, time(hour, minute)


@dataclass(frozen=True, slots=True)
class RebootWindow:
    """locksmith's reboot window: daily (``14:00``) or weekly (``Thu 23:00``),
    open for ``length`` from each start.

    Times are wall-clock times compared with the wall clock of the datetime
    passed in (naive or aware): the daemon passes local time, as locksmith
    uses the node's local time zone. Around a DST change a window opens at the
    same wall-clock time, so it may be an hour longer or shorter in real time.
    """

    start: time
    length: timedelta
    weekday: int | None = None  # 0 = Monday; None = every day

    def __post_init__(self) -> None:
        if self.length <= timedelta(0):
            raise ValueError("reboot window length must be positive")
        if self.length > self._period():
            raise ValueError(
                f"reboot window length {format_duration(self.length)} is longer than its "
                f"period ({'a week' if self.weekday is not None else 'a day'})"
            )

    @classmethod
    def parse(cls, start: str, length: str) -> RebootWindow:
        """From ``LOCKSMITHD_REBOOT_WINDOW_START``/``_LENGTH``; ``ValueError`` if bad."""
        weekday, at = parse_window_start(start)
        return cls(start=at, length=parse_duration(length), weekday=weekday)

    def _period(self) -> timedelta:
        return timedelta(days=7 if self.weekday is not None else 1)

    def _offset_us(self, dt: datetime) -> int:
        """Microseconds from the window's start back in the current period."""
        day_us = ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000 + dt.microsecond
        start_us = (self.start.hour * 60 + self.start.minute) * 60 * 1_000_000
        if self.weekday is not None:
            day_us += dt.weekday() * _US_PER_DAY
            start_us += self.weekday * _US_PER_DAY
        period_us = (7 if self.weekday is not None else 1) * _US_PER_DAY
        return (day_us - start_us) % period_us

    def contains(self, dt: datetime) -> bool:
        """Is the window open at ``dt`` (start inclusive, end exclusive)?"""
        return self._offset_us(dt) < self.length // timedelta(microseconds=1)

    def next_start(self, dt: datetime) -> datetime:
        """The first window start at or after ``dt``."""
        offset = self._offset_us(dt)
        if offset == 0:
            return dt
        period_us = self._period() // timedelta(microseconds=1)
        return dt + timedelta(microseconds=period_us - offset)

    def __str__(self) -> str:
        day = f"{_WEEKDAY_NAMES[self.weekday]} " if self.weekday is not None else ""
        return f"{day}{self.start:%H:%M} for {format_duration(self.length)}"


# --- update.conf syntax ------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNQUOTED_COMMENT = re.compile(r"\s#")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ConfEntry:
    key: str
    value: str
    path: str
    line: int


def _unquote(rest: str, path: str, line: int) -> str:
    """The value after ``=``: ``"double"`` (``\\"``, ``\\\\``, ``\\$``, ``\\```
    escapes), ``'single'`` (literal) or bare (a `` #`` starts a comment; inner
    spaces are kept, as systemd's EnvironmentFile does)."""
    if rest[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(rest):
            c = rest[i]
            if c == "\\" and i + 1 < len(rest) and rest[i + 1] in '"\\$`':
                out.append(rest[i + 1])
                i += 2
                continue
            if c == '"':
                break
            out.append(c)
            i += 1
        else:
            raise ConfigError("unterminated double quote", path=path, line=line)
        value, tail = "".join(out), rest[i + 1 :].strip()
    elif rest[:1] == "'":
        end = rest.find("'", 1)
        if end < 0:
            raise ConfigError("unterminated single quote", path=path, line=line)
        value, tail = rest[1:end], rest[end + 1 :].strip()
    else:
        m = _UNQUOTED_COMMENT.search(rest)
        value = (rest[: m.start()] if m else rest).strip()
        tail = ""
        if '"' in value or "'" in value:
            raise ConfigError(
                "quote inside an unquoted value (quote the whole value)", path=path, line=line
            )
    if tail and not tail.startswith("#"):
        raise ConfigError(
            f"unexpected text after the closing quote: {tail[:40]!r}", path=path, line=line
        )
    if _CONTROL.search(value):
        raise ConfigError("control character in value", path=path, line=line)
    return value


def parse_conf_text(text: str, path: str) -> list[ConfEntry]:
    """Parse shell-like ``KEY=VALUE`` lines (``#`` comments, blank lines, an
    optional ``export``, optional quotes). Any other line is a ConfigError
    naming ``path:line``. A key set twice keeps its last value, as in a shell."""
    entries: list[ConfEntry] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, rest = line.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {line[:40]!r}", path=path, line=lineno)
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise ConfigError(f"invalid key {key[:40]!r}", path=path, line=lineno)
        entries.append(ConfEntry(key, _unquote(rest.strip(), path, lineno), path, lineno))
    return entries


def _read_conf(path: Path, shown: str) -> list[ConfEntry] | None:
    """The entries of ``path``, or None when it does not exist."""
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError("not a regular file", path=shown)
            data = f.read(MAX_CONF_BYTES + 1)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=shown) from None
    if len(data) > MAX_CONF_BYTES:
        raise ConfigError(f"larger than {MAX_CONF_BYTES} bytes", path=shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("not valid UTF-8", path=shown, line=line) from None
    return parse_conf_text(text, shown)


# --- the configuration ---------------------------------------------------------------


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
    state_dir: Path = Path("/var/lib/wellcar")
    payload_key_dir: Path = Path("/usr/share/wellcar/update-payload-keys")
    # TUF: the root metadata shipped in the image. When it exists, every payload must be
    # a target signed under it (see wellcar.agent.trusted_payload and docs/trust.md).
    trust_root: Path = Path("/usr/share/wellcar/trust/root.json")
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
        return self.state_dir / "status.json"

    @property
    def download_dir(self) -> Path:
        return self.state_dir / "download"

    @property
    def full_response_path(self) -> Path:
        """Where the last Omaha reply with an update is kept (update_engine's
        prefs/full-response, read by postinstall hooks for extra packages)."""
        return self.state_dir / "full-response"

    @property
    def trust_dir(self) -> Path:
        """The TUF metadata cache: what this node last trusted, kept across reboots so a
        mirror cannot roll it back."""
        return self.state_dir / "trust"

    @property
    def download_auth(self) -> tuple[str, str] | None:
        """``DOWNLOAD_USER``/``DOWNLOAD_PASSWORD`` for HTTP basic auth on payloads."""
        if self.download_user is None:
            return None
        return (self.download_user, self.download_password or "")


_DURATION_KEYS: dict[str, tuple[str, bool]] = {
    # key: (field, may be zero)
    "CHECK_INITIAL_DELAY": ("check_initial_delay", True),
    "CHECK_INTERVAL": ("check_interval", False),
    "CHECK_FUZZ": ("check_fuzz", True),
    "MAX_BACKOFF": ("max_backoff", False),
    "HTTP_TIMEOUT": ("http_timeout", False),
    "BOOT_ASSESSMENT_GRACE": ("boot_assessment_grace", True),
    "BOOT_ASSESSMENT_TIMEOUT": ("boot_assessment_timeout", False),
    "FLEETLOCK_RETRY_INTERVAL": ("fleetlock_retry_interval", False),
}
_PLAIN_KEYS = frozenset(
    {
        "SERVER",
        "GROUP",
        "CHANNEL",
        "MACHINE_ALIAS",
        "APP_ID",
        "REBOOT_STRATEGY",
        "LOCKSMITHD_REBOOT_WINDOW_START",
        "LOCKSMITHD_REBOOT_WINDOW_LENGTH",
        "LOCKSMITHD_GROUP",
        "FLEETLOCK_URL",
        "HEALTH_UNITS",
        "HEALTH_COMMAND",
        "DELTA_OKAY",
        "DOWNLOAD_USER",
        "DOWNLOAD_PASSWORD",
        "STATE_DIR",
        "PAYLOAD_KEY_DIR",
        "TRUST_ROOT",
        "RELEASE_REPOSITORY",
    }
)
_RELEASE_FIELDS = ("VERSION", "BOARD", "APPID")
# Keys Flatcar knows that Wellcar does not implement: accepted, with a warning.
_IGNORED_KEYS = frozenset({"PCR_POLICY_SERVER", "LOCKSMITHD_ENDPOINT"})
_IGNORED_PREFIXES = ("LOCKSMITHD_ETCD_", "ETCD_")
_FLEETLOCK_GROUP = re.compile(r"[a-zA-Z0-9.-]+")
_UNIT_NAME = re.compile(
    r"[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|automount|device|path|timer|swap|scope|slice)"
)
_BRAND = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _http_url(text: str) -> bool:
    """An absolute http(s) URL with a host and no whitespace."""
    if not text or any(c.isspace() for c in text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}/"


def _in_root(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


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


class _Loader:
    """One load_config run: the files, then one method per group of settings,
    each filling ``values`` (AgentConfig field -> value) and ``warnings``."""

    def __init__(self, root: Path, brand: str) -> None:
        self.root = root
        self.brand = brand
        upper = brand.upper().replace("-", "_")
        self.conf_paths = [
            f"/etc/{brand}/update.conf",
            "/etc/flatcar/update.conf",
            "/etc/coreos/update.conf",
            f"/usr/share/{brand}/update.conf",
        ]
        self.release_path = f"/usr/share/{brand}/release"
        self.release_keys = {
            name: tuple(dict.fromkeys(f"{p}_RELEASE_{name}" for p in (upper, "FLATCAR", "COREOS")))
            for name in _RELEASE_FIELDS
        }
        self.warnings: list[str] = []
        self.values: dict[str, object] = {}
        self.vendor_entries: list[ConfEntry] = []
        self.files: list[tuple[Path, list[ConfEntry]]] = []
        self._read_files()
        self.layers = _Layers(self.files)

    def _read_files(self) -> None:
        known = set(_PLAIN_KEYS) | set(_DURATION_KEYS)
        for aliases in self.release_keys.values():
            known.update(aliases)
        seen: set[tuple[int, int]] = set()
        for shown in [*self.conf_paths, self.release_path]:
            path = _in_root(self.root, shown)
            entries = _read_conf(path, shown)
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
                if e.key in _IGNORED_KEYS or e.key.startswith(_IGNORED_PREFIXES):
                    self.warnings.append(f"{_where(e)}: {e.key} is not supported and is ignored")
                else:
                    self.warnings.append(f"{_where(e)}: unknown key {e.key}")

    def server(self) -> None:
        # SERVER: "disabled", empty or not a URL disables updates (update_engine).
        vendor = [e for e in self.vendor_entries if e.key == "SERVER"]
        if vendor and _http_url(vendor[-1].value):
            self.values["default_server"] = vendor[-1].value
        server: str | None = None
        entry = self.layers.get("SERVER")
        if entry is None:
            self.warnings.append("no SERVER configured: updates are disabled")
        elif entry.value != "disabled":
            if _http_url(entry.value):
                server = entry.value
            else:
                self.warnings.append(
                    f"{_where(entry)}: SERVER {entry.value[:80]!r} is not an http(s) URL: "
                    "updates are disabled"
                )
        self.values["server"] = server

    def node(self) -> None:
        layers, keys = self.layers, self.release_keys
        for key, name in (("GROUP", "group"), ("APP_ID", "app_id")):
            entry = layers.value(key, *keys["APPID"]) if key == "APP_ID" else layers.value(key)
            if entry is not None:
                if any(c.isspace() for c in entry.value):
                    raise _fail(entry, "must not contain whitespace")
                self.values[name] = entry.value
        entry = layers.value("CHANNEL")
        if entry is not None and entry.value:
            if not CHANNEL_NAME.fullmatch(entry.value):
                raise _fail(entry, "must be a channel name like stable or edge ([a-z][a-z0-9-]*)")
            self.values["channel"] = entry.value
        entry = layers.value("MACHINE_ALIAS")
        if entry is not None:
            self.values["machine_alias"] = entry.value
        entry = layers.value(*keys["VERSION"])
        if entry is None:
            self.warnings.append(f"no {keys['VERSION'][0]} in {self.release_path}: assuming 0.0.0")
        elif parse_version(entry.value) is None:
            raise _fail(entry, f"{entry.value[:40]!r} is not a version like 4459.2.1")
        else:
            self.values["version"] = entry.value
        entry = layers.value(*keys["BOARD"])
        if entry is not None:
            self.values["board"] = entry.value
        else:
            board = _machine_board(platform.machine())
            self.values["board"] = board
            self.warnings.append(f"no {keys['BOARD'][0]}: assuming {board}")

    def reboot(self) -> None:
        layers, values = self.layers, self.values
        explicit = layers.value("FLEETLOCK_URL")
        server = values.get("server")
        fleetlock_url: str | None = None
        if explicit is not None:
            if not _http_url(explicit.value):
                raise _fail(explicit, "is not an http(s) URL")
            fleetlock_url = explicit.value
        elif isinstance(server, str):
            fleetlock_url = _origin(server)
        values["fleetlock_url"] = fleetlock_url

        entry = layers.value("REBOOT_STRATEGY")
        if entry is not None:
            text = entry.value.lower()
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
                try:
                    values["reboot_strategy"] = RebootStrategy(text)
                except ValueError:
                    raise _fail(
                        entry, f"{entry.value[:40]!r} is not reboot, off, fleet-lock or etcd-lock"
                    ) from None
        if values.get("reboot_strategy") is RebootStrategy.FLEET_LOCK and fleetlock_url is None:
            self.warnings.append("REBOOT_STRATEGY=fleet-lock without SERVER or FLEETLOCK_URL")

        start = layers.value("LOCKSMITHD_REBOOT_WINDOW_START")
        length = layers.value("LOCKSMITHD_REBOOT_WINDOW_LENGTH")
        if start is not None and length is not None:
            try:
                weekday, at = parse_window_start(start.value)
            except ValueError as exc:
                raise _fail(start, str(exc)) from None
            try:
                window = RebootWindow(
                    start=at, length=parse_duration(length.value), weekday=weekday
                )
            except ValueError as exc:
                raise _fail(length, str(exc)) from None
            values["reboot_window"] = window
        elif start is not None or length is not None:
            # Half a window would mean "reboot any time", the opposite of what
            # whoever set one wanted.
            given = start or length
            assert given is not None
            missing = "LENGTH" if start is not None else "START"
            raise _fail(given, f"set without LOCKSMITHD_REBOOT_WINDOW_{missing}")

        entry = layers.value("LOCKSMITHD_GROUP")
        if entry is not None:
            if not _FLEETLOCK_GROUP.fullmatch(entry.value):
                raise _fail(entry, "must match [a-zA-Z0-9.-]+ (the FleetLock group syntax)")
            values["fleetlock_group"] = entry.value

    def health(self) -> None:
        entry = self.layers.get("HEALTH_UNITS")
        if entry is not None:  # an empty value means: check no units
            units = tuple(entry.value.split())
            for unit in units:
                if not _UNIT_NAME.fullmatch(unit):
                    raise _fail(entry, f"{unit[:60]!r} is not a systemd unit name")
            self.values["health_units"] = units
        entry = self.layers.value("HEALTH_COMMAND")
        if entry is not None:
            try:
                self.values["health_command"] = tuple(shlex.split(entry.value))
            except ValueError as exc:
                raise _fail(entry, f"cannot split into words: {exc}") from None

    def timings(self) -> None:
        for key, (name, may_be_zero) in _DURATION_KEYS.items():
            entry = self.layers.value(key)
            if entry is None:
                continue
            try:
                duration = parse_duration(entry.value)
            except ValueError as exc:
                raise _fail(entry, str(exc)) from None
            if not may_be_zero and duration <= timedelta(0):
                raise _fail(entry, "must be greater than zero")
            self.values[name] = duration

    def download_and_paths(self) -> None:
        layers, values = self.layers, self.values
        entry = layers.value("DELTA_OKAY")
        if entry is not None:
            if entry.value.lower() not in _TRUE | _FALSE:
                raise _fail(entry, f"{entry.value[:20]!r} is not true or false")
            values["delta_okay"] = entry.value.lower() in _TRUE
        for key, name in (
            ("DOWNLOAD_USER", "download_user"),
            ("DOWNLOAD_PASSWORD", "download_password"),
        ):
            entry = layers.value(key)
            if entry is not None:
                values[name] = entry.value
        values["state_dir"] = default_state_dir(self.root, self.brand)
        values["payload_key_dir"] = _in_root(
            self.root, f"/usr/share/{self.brand}/update-payload-keys"
        )
        values["trust_root"] = _in_root(self.root, f"/usr/share/{self.brand}/trust/root.json")
        for key, name in (
            ("STATE_DIR", "state_dir"),
            ("PAYLOAD_KEY_DIR", "payload_key_dir"),
            ("TRUST_ROOT", "trust_root"),
        ):
            entry = layers.value(key)
            if entry is not None:
                if not entry.value.startswith("/"):
                    raise _fail(entry, "must be an absolute path")
                values[name] = _in_root(self.root, entry.value)

    def trust(self) -> None:
        entry = self.layers.value("RELEASE_REPOSITORY")
        if entry is not None:
            # Refused rather than ignored: with a shipped root, no repository means no
            # updates at all, so a typo must show up here and not as failed updates.
            if not _http_url(entry.value):
                raise _fail(
                    entry, "is not an http(s) URL (the base URL of the release tree, e.g. "
                    "https://release.example.com/)"
                )  # fmt: skip
            self.values["release_repository"] = entry.value

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
    return _in_root(root, f"/var/lib/{brand}")


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
    loader.server()
    loader.node()
    loader.reboot()
    loader.health()
    loader.timings()
    loader.download_and_paths()
    loader.trust()
    config = loader.config()
    for warning in config.warnings:
        log.warning("config", extra=log_fields(warning=warning))
    return config


# --- node identity -----------------------------------------------------------------

_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OEM_RELEASE_PATHS = ("/usr/share/oem/oem-release", "/oem/oem-release")
MACHINE_ID_PATH = "/etc/machine-id"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is, as Omaha requests say it. Construct directly in tests."""

    version: str
    board: str
    machine_id: str  # 32 hex digits, no braces (update_engine sends it so)
    boot_id: str  # the kernel's boot_id, a dashed UUID; requests wrap it in {}
    oem_id: str = ""
    oem_version: str = ""
    arch: str = field(default_factory=platform.machine)  # uname -m, for os@sp


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None


def _read_oem(root: Path) -> tuple[str, str]:
    for shown in OEM_RELEASE_PATHS:
        text = _read_small(_in_root(root, shown))
        if text is None:
            continue
        try:
            entries = {e.key: e.value for e in parse_conf_text(text, shown)}
        except ConfigError as exc:
            # The OEM file belongs to the platform image; a broken one must not
            # stop updates (which may well be what fixes it).
            log.warning("ignoring unreadable OEM release file", extra=log_fields(error=exc))
            return "", ""
        return entries.get("ID", ""), entries.get("VERSION_ID", "")
    return "", ""


def load_identity(
    config: AgentConfig, root: Path | None = None, *, arch: str | None = None
) -> NodeIdentity:
    """Read machine id, boot id and OEM release under ``root`` (default
    ``config.root``). A missing or malformed machine id or boot id is a
    ConfigError: the server keys instances on them."""
    base = config.root if root is None else root
    machine_id = (_read_small(_in_root(base, MACHINE_ID_PATH)) or "").strip().lower()
    if not _MACHINE_ID.fullmatch(machine_id):
        raise ConfigError("missing or not 32 hex digits", path=MACHINE_ID_PATH)
    boot_id = (_read_small(_in_root(base, BOOT_ID_PATH)) or "").strip().lower()
    if not _BOOT_ID.fullmatch(boot_id):
        raise ConfigError("missing or not a UUID", path=BOOT_ID_PATH)
    oem_id, oem_version = _read_oem(base)
    return NodeIdentity(
        version=config.version,
        board=config.board,
        machine_id=machine_id,
        boot_id=boot_id,
        oem_id=oem_id,
        oem_version=oem_version,
        arch=arch if arch is not None else platform.machine(),
    )
