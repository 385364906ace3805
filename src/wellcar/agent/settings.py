"""The update.conf keys, declared once in :data:`SETTINGS`.

Each row names a key, the Flatcar/CoreOS keys that mean the same, the ``AgentConfig``
field it sets, its parser (whose ``ValueError`` message becomes the ``ConfigError``), the
default as the docs show it when the field's own default does not say it all, and help.
The table drives :func:`wellcar.agent.config.load_config` (which keys are known, how each
is parsed and checked) and the table in docs/agent.md (:func:`settings_markdown`, kept
in step by a test). Rules that tie keys together (a window needs both halves,
``FLEETLOCK_URL`` defaults to ``SERVER``'s origin, locksmith's strategies) stay in the
loader. Standard library only: the node runs it on Debian's python3.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from wellcar.trust.channels import CHANNEL_NAME

from .durations import parse_duration
from .reboot_window import parse_window_start
from .semver import semver_sort_key
from .state_dir import DEFAULT_STATE_DIR

__all__ = [
    "IGNORED_KEYS",
    "IGNORED_PREFIXES",
    "NODE_PATH_DEFAULTS",
    "SETTINGS",
    "RebootStrategy",
    "Setting",
    "is_http_url",
]


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


# Keys Flatcar knows that Wellcar does not implement: accepted, with a warning.
IGNORED_KEYS = frozenset({"PCR_POLICY_SERVER", "LOCKSMITHD_ENDPOINT"})
IGNORED_PREFIXES = ("LOCKSMITHD_ETCD_", "ETCD_")
_FLEETLOCK_GROUP = re.compile(r"[a-zA-Z0-9.-]+")
_UNIT_NAME = re.compile(
    r"[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|automount|device|path|timer|swap|scope|slice)"
)
# Defaults of the path settings, on the node; ``{brand}`` is the brand's name.
NODE_PATH_DEFAULTS = {
    "state_dir": DEFAULT_STATE_DIR,
    "payload_key_dir": "/usr/share/{brand}/update-payload-keys",
    "trust_root": "/usr/share/{brand}/trust/root.json",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_STRATEGIES = frozenset({*RebootStrategy, "etcd-lock", "best-effort"})


def is_http_url(text: str) -> bool:
    """An absolute http(s) URL with a host and no whitespace."""
    if not text or any(c.isspace() for c in text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# --- parsers: the value (never empty unless the setting keeps empty values) → the field's
# value; a ValueError's message follows "KEY: " in the ConfigError.


def _text(value: str) -> str:
    return value


def _word(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValueError("must not contain whitespace")
    return value


def _channel(value: str) -> str:
    if not CHANNEL_NAME.fullmatch(value):
        raise ValueError("must be a channel name like stable or edge ([a-z][a-z0-9-]*)")
    return value


def _version(value: str) -> str:
    if semver_sort_key(value) is None:
        raise ValueError(f"{value[:40]!r} is not a version like 4459.2.1")
    return value


def _url(value: str) -> str:
    if not is_http_url(value):
        raise ValueError("is not an http(s) URL")
    return value


def _release_repository(value: str) -> str:
    # Refused rather than ignored: with a shipped root, no repository means no updates
    # at all, so a typo must show up here and not as failed updates.
    if not is_http_url(value):
        raise ValueError(
            "is not an http(s) URL (the base URL of the release tree, e.g. "
            "https://release.example.com/)"
        )
    return value


def _strategy(value: str) -> str:
    """The strategy's name; locksmith's names are mapped by the loader (with a warning)."""
    text = value.lower()
    if text not in _STRATEGIES:
        raise ValueError(f"{value[:40]!r} is not reboot, off, fleet-lock or etcd-lock")
    return text


def _fleetlock_group(value: str) -> str:
    if not _FLEETLOCK_GROUP.fullmatch(value):
        raise ValueError("must match [a-zA-Z0-9.-]+ (the FleetLock group syntax)")
    return value


def _units(value: str) -> tuple[str, ...]:
    units = tuple(value.split())
    for unit in units:
        if not _UNIT_NAME.fullmatch(unit):
            raise ValueError(f"{unit[:60]!r} is not a systemd unit name")
    return units


def _argv(value: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ValueError(f"cannot split into words: {exc}") from None


def _duration(value: str) -> timedelta:
    return parse_duration(value)


def _positive_duration(value: str) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError("must be greater than zero")
    return duration


def _boolean(value: str) -> bool:
    if value.lower() not in _TRUE | _FALSE:
        raise ValueError(f"{value[:20]!r} is not true or false")
    return value.lower() in _TRUE


def _absolute_path(value: str) -> str:
    """An absolute path on the node; the loader joins it to ``root``."""
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def _window_start(value: str) -> str:
    parse_window_start(value)  # checked here; the loader builds the window from both keys
    return value


def _window_length(value: str) -> str:
    parse_duration(value)
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    """One update.conf key. ``{BRAND}`` in a key stands for the brand's upper-case name
    (``WELLCAR``): those keys live in the release file and may be overridden in
    update.conf."""

    key: str
    field: str  # the AgentConfig field it sets
    kind: str  # what the value is, for the docs
    parse: Callable[[str], object]
    help: str
    aliases: tuple[str, ...] = ()  # the same key under Flatcar's and CoreOS's names
    default: str = ""  # the docs' default when the field's default does not say it all
    keeps_empty: bool = False  # an empty value is a value, not "the default"
    together_with: str = ""  # a key that must be set too (half a window is an error)

    def keys(self, brand_prefix: str) -> tuple[str, ...]:
        """Every name of this key, the one that wins within a file first."""
        names = (self.key, *self.aliases)
        return tuple(dict.fromkeys(n.replace("{BRAND}", brand_prefix) for n in names))

    def shown_keys(self) -> str:
        names = (self.key, *(a for a in self.aliases if not a.startswith(("FLATCAR", "COREOS"))))
        shown = ", ".join(f"`{n.replace('{BRAND}', '<BRAND>')}`" for n in names)
        flatcar = [a for a in self.aliases if a.startswith(("FLATCAR", "COREOS"))]
        if flatcar:
            shown += " (also " + ", ".join(f"`{a}`" for a in flatcar) + ")"
        return shown


def _release(name: str) -> tuple[str, ...]:
    return (f"FLATCAR_RELEASE_{name}", f"COREOS_RELEASE_{name}")


_DURATION_HELP = "seconds (`300`, `1.5`) or Go style (`45s`, `1h30m`, `300ms`); ≤ 366 days"

# In the order the loader checks them (so the first of several errors is always the same).
SETTINGS: tuple[Setting, ...] = (
    Setting("SERVER", "server", "URL", _text,
            "the Omaha URL. `disabled` or anything that is not an absolute http(s) URL → "
            "`None` (updates off; invalid ones warn). `default_server` keeps the vendor's "
            "value from `/usr/share/<brand>/update.conf`; `is_production_server` is "
            "`server == default_server`",
            default="none → updates disabled, with a warning", keeps_empty=True),
    Setting("GROUP", "group", "word", _word, "sent as `track`; no whitespace"),
    Setting("APP_ID", "app_id", "word", _word, "the Omaha app id (Flatcar's by default)",
            aliases=("{BRAND}_RELEASE_APPID", *_release("APPID"))),
    Setting("CHANNEL", "channel", "channel name", _channel,
            "the release channel this node follows when TUF is on "
            "([trust.md](trust.md#the-nodes-channel)); set it to switch channels; "
            "`[a-z][a-z0-9-]*`"),
    Setting("MACHINE_ALIAS", "machine_alias", "text", _text, "sent as `machinealias`"),
    Setting("{BRAND}_RELEASE_VERSION", "version", "version", _version,
            "the running OS version, from the release file; must be semver, else "
            "`ConfigError`", aliases=_release("VERSION"), default="`0.0.0` with a warning"),
    Setting("{BRAND}_RELEASE_BOARD", "board", "word", _text, "from the release file",
            aliases=_release("BOARD"),
            default="from `uname -m`: `amd64-usr`, `arm64-usr` (warning)"),
    Setting("FLEETLOCK_URL", "fleetlock_url", "URL", _url,
            "base URL; the FleetLock client POSTs `v1/pre-reboot`, `v1/steady-state` under it",
            default="origin of `SERVER` + `/` (e.g. `https://up.example:8443/`)"),
    Setting("REBOOT_STRATEGY", "reboot_strategy", "strategy", _strategy,
            "`reboot`, `off`, `fleet-lock` (any case); locksmith's `etcd-lock` and "
            "`best-effort` are mapped, with a warning (see below)"),
    Setting("LOCKSMITHD_REBOOT_WINDOW_START", "reboot_window", "window start", _window_start,
            "`14:00` daily or `Thu 23:00` weekly (day as `thu` or `thursday`, any case). "
            "Without `LOCKSMITHD_REBOOT_WINDOW_LENGTH` a `ConfigError`",
            default="none (any time)", together_with="LOCKSMITHD_REBOOT_WINDOW_LENGTH"),
    Setting("LOCKSMITHD_REBOOT_WINDOW_LENGTH", "reboot_window", "duration", _window_length,
            "a Go duration (`1h30m`), positive, at most the period (a day or a week). "
            "Without `LOCKSMITHD_REBOOT_WINDOW_START` a `ConfigError`",
            default="none (any time)", together_with="LOCKSMITHD_REBOOT_WINDOW_START"),
    Setting("LOCKSMITHD_GROUP", "fleetlock_group", "FleetLock group", _fleetlock_group,
            "FleetLock group syntax `[a-zA-Z0-9.-]+`"),
    Setting("HEALTH_UNITS", "health_units", "unit list", _units,
            "whitespace-separated unit names; empty: check no units", keeps_empty=True),
    Setting("HEALTH_COMMAND", "health_command", "command", _argv,
            "split like a shell into an argv tuple"),
    Setting("CHECK_INITIAL_DELAY", "check_initial_delay", "duration", _duration,
            _DURATION_HELP),
    Setting("CHECK_INTERVAL", "check_interval", "duration", _positive_duration, "> 0"),
    Setting("CHECK_FUZZ", "check_fuzz", "duration", _duration,
            "± around the delay and the interval"),
    Setting("MAX_BACKOFF", "max_backoff", "duration", _positive_duration, "> 0"),
    Setting("HTTP_TIMEOUT", "http_timeout", "duration", _positive_duration,
            "per HTTP request (Omaha and payload); > 0"),
    Setting("BOOT_ASSESSMENT_GRACE", "boot_assessment_grace", "duration", _duration,
            "no verdict on a boot before this (update_engine marks good after 45 s)"),
    Setting("BOOT_ASSESSMENT_TIMEOUT", "boot_assessment_timeout", "duration",
            _positive_duration, "health not passed by then → bad boot; > 0"),
    Setting("FLEETLOCK_RETRY_INTERVAL", "fleetlock_retry_interval", "duration",
            _positive_duration, "between FleetLock attempts; > 0"),
    Setting("DELTA_OKAY", "delta_okay", "boolean", _boolean,
            "sent as `delta_okay`; update_engine hard-codes false"),
    Setting("DOWNLOAD_USER", "download_user", "text", _text,
            "`config.download_auth` → HTTP basic auth for payloads only, same origin only"),
    Setting("DOWNLOAD_PASSWORD", "download_password", "text", _text,
            "with `DOWNLOAD_USER`; not in `repr`"),
    Setting("STATE_DIR", "state_dir", "path", _absolute_path,
            "absolute; joined to `root`"),
    Setting("PAYLOAD_KEY_DIR", "payload_key_dir", "path", _absolute_path,
            "absolute; joined to `root`"),
    Setting("TRUST_ROOT", "trust_root", "path", _absolute_path,
            "absolute; joined to `root`. The TUF root shipped in the image; when the file "
            "exists, TUF is required (see [TUF](#tuf-only-signed-releases))"),
    Setting("RELEASE_REPOSITORY", "release_repository", "URL", _release_repository,
            "base URL of the release tree (`metadata/` below it), absolute http(s) URL, "
            "else `ConfigError`"),
)  # fmt: skip
