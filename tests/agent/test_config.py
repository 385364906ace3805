"""update.conf and release file loading, reboot windows, durations, node identity."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from wellcar.agent.conf_file import parse_conf_text
from wellcar.agent.config import DEFAULT_HEALTH_UNITS, AgentConfig, RebootStrategy, load_config
from wellcar.agent.durations import parse_duration
from wellcar.agent.errors import ConfigError
from wellcar.agent.node_identity import NodeIdentity, load_identity
from wellcar.agent.reboot_window import RebootWindow
from wellcar.agent.semver import is_newer_version
from wellcar.omaha import FLATCAR_APP_ID

RELEASE = "WELLCAR_RELEASE_VERSION=4459.2.1\nWELLCAR_RELEASE_BOARD=amd64-usr\n"


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path, "/usr/share/wellcar/release", RELEASE)
    return tmp_path


# --- defaults and precedence -----------------------------------------------------------


def test_defaults_without_update_conf(root: Path) -> None:
    cfg = load_config(root)
    assert cfg.server is None and not cfg.updates_enabled
    assert any("no SERVER" in w for w in cfg.warnings)
    assert cfg.group == "stable"
    assert cfg.app_id == FLATCAR_APP_ID
    assert cfg.version == "4459.2.1" and cfg.board == "amd64-usr"
    assert cfg.reboot_strategy is RebootStrategy.REBOOT
    assert cfg.reboot_window is None
    assert cfg.fleetlock_url is None and cfg.fleetlock_group == "default"
    assert cfg.health_units == DEFAULT_HEALTH_UNITS
    assert cfg.health_command is None
    assert cfg.check_initial_delay == timedelta(minutes=7)
    assert cfg.check_interval == timedelta(minutes=45)
    assert cfg.check_fuzz == timedelta(minutes=5)
    assert cfg.max_backoff == timedelta(hours=4)
    assert cfg.state_dir == root / "var/lib/wellcar"
    assert cfg.status_path == root / "var/lib/wellcar/status.json"
    assert cfg.payload_key_dir == root / "usr/share/wellcar/update-payload-keys"
    assert cfg.trust_root == root / "usr/share/wellcar/trust/root.json"
    assert cfg.release_repository is None
    assert cfg.trust_dir == root / "var/lib/wellcar/trust"
    assert cfg.sources == (root / "usr/share/wellcar/release",)


@pytest.mark.parametrize(
    ("files", "group"),
    [
        ({"/usr/share/wellcar/update.conf": "GROUP=vendor"}, "vendor"),
        (
            {
                "/usr/share/wellcar/update.conf": "GROUP=vendor",
                "/etc/coreos/update.conf": "GROUP=c",
            },
            "c",
        ),
        ({"/etc/coreos/update.conf": "GROUP=c", "/etc/flatcar/update.conf": "GROUP=f"}, "f"),
        ({"/etc/flatcar/update.conf": "GROUP=f", "/etc/wellcar/update.conf": "GROUP=w"}, "w"),
        # An empty value in a higher file wins and means "the default".
        (
            {
                "/usr/share/wellcar/update.conf": "GROUP=vendor",
                "/etc/wellcar/update.conf": "GROUP=",
            },
            "stable",
        ),
    ],
)
def test_file_precedence(root: Path, files: dict[str, str], group: str) -> None:
    for rel, text in files.items():
        write(root, rel, text + "\n")
    assert load_config(root).group == group


def test_release_keys_can_be_overridden_from_etc(root: Path) -> None:
    # Flatcar's documented trick to force an update: pretend to run 0.0.0.
    write(root, "/etc/wellcar/update.conf", "WELLCAR_RELEASE_VERSION=0.0.0\n")
    assert load_config(root).version == "0.0.0"


def test_flatcar_release_keys_accepted_for_migrating_users(root: Path) -> None:
    write(root, "/etc/flatcar/update.conf", "FLATCAR_RELEASE_APPID={abc}\n")
    assert load_config(root).app_id == "{abc}"


def test_app_id_key(root: Path) -> None:
    write(root, "/usr/share/wellcar/release", RELEASE + "WELLCAR_RELEASE_APPID={from-release}\n")
    assert load_config(root).app_id == "{from-release}"
    write(root, "/etc/wellcar/update.conf", "APP_ID={from-etc}\n")
    assert load_config(root).app_id == "{from-etc}"


def test_other_brand(tmp_path: Path) -> None:
    write(
        tmp_path,
        "/usr/share/acme/release",
        "ACME_RELEASE_VERSION=1.2.3\nACME_RELEASE_BOARD=arm64-usr\n",
    )
    write(tmp_path, "/etc/acme/update.conf", "SERVER=https://updates.acme.test/v1/update/\n")
    cfg = load_config(tmp_path, brand="acme")
    assert (cfg.version, cfg.board, cfg.brand) == ("1.2.3", "arm64-usr", "acme")
    assert cfg.server == "https://updates.acme.test/v1/update/"
    assert cfg.state_dir == tmp_path / "var/lib/acme"
    assert cfg.payload_key_dir == tmp_path / "usr/share/acme/update-payload-keys"
    assert cfg.trust_root == tmp_path / "usr/share/acme/trust/root.json"


def test_missing_version_assumes_zero_with_warning(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg.version == "0.0.0"
    assert any("WELLCAR_RELEASE_VERSION" in w for w in cfg.warnings)


def test_invalid_version_names_file_and_line(root: Path) -> None:
    write(root, "/usr/share/wellcar/release", "# comment\nWELLCAR_RELEASE_VERSION=4459.2\n")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert info.value.path == "/usr/share/wellcar/release" and info.value.line == 2
    assert str(info.value).startswith("/usr/share/wellcar/release:2: ")


def test_symlinked_etc_coreos_is_read_once(root: Path) -> None:
    write(root, "/etc/flatcar/update.conf", "GROUP=beta\n")
    (root / "etc/coreos").symlink_to("flatcar")
    cfg = load_config(root)
    assert cfg.group == "beta"
    assert cfg.sources.count(root / "etc/flatcar/update.conf") == 1
    assert root / "etc/coreos/update.conf" not in cfg.sources


# --- SERVER and FleetLock ------------------------------------------------------------------


def test_server_disabled_and_invalid(root: Path) -> None:
    write(root, "/etc/wellcar/update.conf", "SERVER=disabled\n")
    cfg = load_config(root)
    assert cfg.server is None and not any("SERVER" in w for w in cfg.warnings)
    write(root, "/etc/wellcar/update.conf", "SERVER=ftp://x/\n")
    cfg = load_config(root)
    assert cfg.server is None
    assert any("/etc/wellcar/update.conf:1" in w and "disabled" in w for w in cfg.warnings)
    write(root, "/etc/wellcar/update.conf", "SERVER=\n")  # as update_engine: empty = invalid
    assert load_config(root).server is None


def test_production_server_is_the_vendor_default(root: Path) -> None:
    write(root, "/usr/share/wellcar/update.conf", "SERVER=https://up.vendor.test/v1/update/\n")
    cfg = load_config(root)
    assert cfg.server == cfg.default_server == "https://up.vendor.test/v1/update/"
    assert cfg.is_production_server
    write(root, "/etc/wellcar/update.conf", "SERVER=http://10.0.0.1:8000/v1/update/\n")
    cfg = load_config(root)
    assert cfg.server == "http://10.0.0.1:8000/v1/update/"
    assert not cfg.is_production_server


@pytest.mark.parametrize(
    ("server", "fleetlock"),
    [
        ("https://up.test/v1/update/", "https://up.test/"),
        ("http://127.0.0.1:8000/v1/update/?x=1", "http://127.0.0.1:8000/"),
        ("http://user:pw@[::1]:99/v1/update/", "http://[::1]:99/"),
    ],
)
def test_fleetlock_url_derived_from_server_origin(root: Path, server: str, fleetlock: str) -> None:
    write(root, "/etc/wellcar/update.conf", f"SERVER={server}\n")
    assert load_config(root).fleetlock_url == fleetlock


def test_fleetlock_explicit_url_and_group(root: Path) -> None:
    write(
        root,
        "/etc/wellcar/update.conf",
        "SERVER=https://up.test/v1/update/\nFLEETLOCK_URL=http://lock.test:3333/\n"
        "LOCKSMITHD_GROUP=workers-1.a\n",
    )
    cfg = load_config(root)
    assert cfg.fleetlock_url == "http://lock.test:3333/"
    assert cfg.fleetlock_group == "workers-1.a"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("FLEETLOCK_URL=lock.test", "FLEETLOCK_URL"),
        ("LOCKSMITHD_GROUP=bad group!", "LOCKSMITHD_GROUP"),
        ("REBOOT_STRATEGY=sometimes", "REBOOT_STRATEGY"),
        ("CHECK_INTERVAL=0", "CHECK_INTERVAL"),
        ("CHECK_INTERVAL=soon", "CHECK_INTERVAL"),
        ("MAX_BACKOFF=-5", "MAX_BACKOFF"),
        ("HEALTH_UNITS=docker.service not-a-unit", "HEALTH_UNITS"),
        ("HEALTH_COMMAND='unterminated", "HEALTH_COMMAND"),
        ("DELTA_OKAY=maybe", "DELTA_OKAY"),
        ("STATE_DIR=relative/path", "STATE_DIR"),
        ("TRUST_ROOT=trust/root.json", "TRUST_ROOT"),
        ("RELEASE_REPOSITORY=ftp://release.test/", "RELEASE_REPOSITORY"),
        ("RELEASE_REPOSITORY=release.test", "RELEASE_REPOSITORY"),
        ("GROUP=two words", "GROUP"),
    ],
)
def test_bad_values_name_file_line_and_key(root: Path, line: str, key: str) -> None:
    if key == "HEALTH_COMMAND":
        line = 'HEALTH_COMMAND="sh -c \'oops"'
    write(root, "/etc/wellcar/update.conf", "# settings\n\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert info.value.path == "/etc/wellcar/update.conf"
    assert info.value.line == 3
    assert key in str(info.value)


# --- reboot strategy and window -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "extra", "strategy", "warned"),
    [
        ("reboot", "", RebootStrategy.REBOOT, False),
        ("off", "", RebootStrategy.OFF, False),
        ("fleet-lock", "", RebootStrategy.FLEET_LOCK, False),
        ("FLEET-LOCK", "", RebootStrategy.FLEET_LOCK, False),
        ("etcd-lock", "", RebootStrategy.FLEET_LOCK, True),
        ("best-effort", "", RebootStrategy.REBOOT, True),
        ("best-effort", "FLEETLOCK_URL=http://lock.test/\n", RebootStrategy.FLEET_LOCK, True),
    ],
)
def test_reboot_strategies(
    root: Path, text: str, extra: str, strategy: RebootStrategy, warned: bool
) -> None:
    write(
        root,
        "/etc/wellcar/update.conf",
        f"SERVER=http://127.0.0.1:1/v1/update/\nREBOOT_STRATEGY={text}\n{extra}",
    )
    cfg = load_config(root)
    assert cfg.reboot_strategy is strategy
    assert any("REBOOT_STRATEGY" in w for w in cfg.warnings) is warned


def test_reboot_window_from_update_conf(root: Path) -> None:
    write(
        root,
        "/etc/wellcar/update.conf",
        'LOCKSMITHD_REBOOT_WINDOW_START="Thu 23:00"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\n',
    )
    window = load_config(root).reboot_window
    assert window == RebootWindow(start=time(23, 0), length=timedelta(minutes=90), weekday=3)
    assert str(window) == "Thu 23:00 for 1h30m"


@pytest.mark.parametrize(
    ("start", "length", "bad_line"),
    [
        ("14:00", None, 1),  # a half window would mean "any time"
        (None, "1h", 1),
        ("25:00", "1h", 1),
        ("Someday 10:00", "1h", 1),
        ("10:00", "1x", 2),
        ("10:00", "25h", 2),  # longer than a daily period
        ("Mon 10:00", "0s", 2),
    ],
)
def test_bad_reboot_window(
    root: Path, start: str | None, length: str | None, bad_line: int
) -> None:
    lines = []
    if start is not None:
        lines.append(f"LOCKSMITHD_REBOOT_WINDOW_START={start}")
    if length is not None:
        lines.append(f"LOCKSMITHD_REBOOT_WINDOW_LENGTH={length}")
    write(root, "/etc/wellcar/update.conf", "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert info.value.line == bad_line


DAILY = RebootWindow.parse("23:30", "1h")  # wraps past midnight
WEEKLY = RebootWindow.parse("sunday 23:00", "2h")  # wraps into Monday
# 2026-11-16 is a Monday.


@pytest.mark.parametrize(
    ("window", "now", "inside", "next_start"),
    [
        (DAILY, datetime(2026, 11, 18, 23, 29, 59), False, datetime(2026, 11, 18, 23, 30)),
        (DAILY, datetime(2026, 11, 18, 23, 30), True, datetime(2026, 11, 18, 23, 30)),
        (DAILY, datetime(2026, 11, 19, 0, 15), True, datetime(2026, 11, 19, 23, 30)),
        (DAILY, datetime(2026, 11, 19, 0, 30), False, datetime(2026, 11, 19, 23, 30)),
        (DAILY, datetime(2026, 11, 19, 12, 0), False, datetime(2026, 11, 19, 23, 30)),
        (WEEKLY, datetime(2026, 11, 22, 22, 59), False, datetime(2026, 11, 22, 23, 0)),
        (WEEKLY, datetime(2026, 11, 22, 23, 0), True, datetime(2026, 11, 22, 23, 0)),
        (WEEKLY, datetime(2026, 11, 23, 0, 59, 59), True, datetime(2026, 11, 29, 23, 0)),
        (WEEKLY, datetime(2026, 11, 23, 1, 0), False, datetime(2026, 11, 29, 23, 0)),
        (WEEKLY, datetime(2026, 11, 18, 23, 30), False, datetime(2026, 11, 22, 23, 0)),
    ],
)
def test_reboot_window_contains_and_next_start(
    window: RebootWindow, now: datetime, inside: bool, next_start: datetime
) -> None:
    assert window.contains(now) is inside
    assert window.next_start(now) == next_start
    assert window.contains(window.next_start(now))


def test_reboot_window_uses_the_wall_clock_of_aware_datetimes() -> None:
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 11, 18, 23, 45, tzinfo=ZoneInfo("Europe/Berlin"))  # 22:45 UTC
    assert DAILY.contains(berlin)
    nxt = DAILY.next_start(berlin.replace(hour=12))
    assert (nxt.hour, nxt.minute, nxt.tzinfo) == (23, 30, berlin.tzinfo)


# --- syntax --------------------------------------------------------------------------------


def test_conf_syntax() -> None:
    text = (
        "# a comment\n"
        "\n"
        "export GROUP=beta\n"
        'MACHINE_ALIAS="rack 4 \\"east\\" $x"  # trailing comment\n'
        "HEALTH_COMMAND='/usr/bin/check --all \"x\"'\n"
        "HEALTH_UNITS=a.service b.service # systemd-style bare value with spaces\n"
        "  SERVER = http://h/v1/update/\n"
        "GROUP=alpha\n"
    )
    entries = {e.key: (e.value, e.line) for e in parse_conf_text(text, "f")}
    assert entries == {
        "GROUP": ("alpha", 8),
        "MACHINE_ALIAS": ('rack 4 "east" $x', 4),
        "HEALTH_COMMAND": ('/usr/bin/check --all "x"', 5),
        "HEALTH_UNITS": ("a.service b.service", 6),
        "SERVER": ("http://h/v1/update/", 7),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("JUSTAWORD", "expected KEY=VALUE"),
        ("1KEY=x", "invalid key"),
        ('GROUP="beta', "unterminated double quote"),
        ("GROUP='beta", "unterminated single quote"),
        ('GROUP="beta" trailing', "unexpected text"),
        ("GROUP=be'ta", "quote inside"),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_conf_text("# ok\n" + line + "\n", "/etc/wellcar/update.conf")
    assert (info.value.path, info.value.line) == ("/etc/wellcar/update.conf", 2)


def test_non_utf8_file_names_the_line(root: Path) -> None:
    write(root, "/etc/wellcar/update.conf", b"GROUP=beta\nMACHINE_ALIAS=caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_config(root)
    assert info.value.line == 2


def test_unknown_and_unsupported_keys_warn(root: Path) -> None:
    write(
        root,
        "/etc/wellcar/update.conf",
        "GROUP=beta\nGRUOP=typo\nPCR_POLICY_SERVER=http://x/\nLOCKSMITHD_ETCD_CAFILE=/x\n",
    )
    write(root, "/usr/share/wellcar/release", RELEASE + "WELLCAR_RELEASE_COMMIT=abc\n")
    cfg = load_config(root)
    assert "/etc/wellcar/update.conf:2: unknown key GRUOP" in cfg.warnings
    assert any(w.startswith("/etc/wellcar/update.conf:3: PCR_POLICY_SERVER") for w in cfg.warnings)
    assert any(w.startswith("/etc/wellcar/update.conf:4: LOCKSMITHD_ETCD") for w in cfg.warnings)
    assert not any("COMMIT" in w for w in cfg.warnings)  # the image's file, not the user's


def test_settings_for_fast_tests_and_health(root: Path) -> None:
    write(
        root,
        "/etc/wellcar/update.conf",
        "SERVER=http://127.0.0.1:9/v1/update/\nCHECK_INITIAL_DELAY=0\nCHECK_INTERVAL=2s\nCHECK_FUZZ=500ms\nMAX_BACKOFF=1m\n"
        "HTTP_TIMEOUT=5\nBOOT_ASSESSMENT_GRACE=1s\nBOOT_ASSESSMENT_TIMEOUT=1m30s\n"
        "HEALTH_UNITS=\nHEALTH_COMMAND=\"/usr/bin/test -e '/run/my flag'\"\nDELTA_OKAY=true\n"
        "DOWNLOAD_USER=me\nDOWNLOAD_PASSWORD=secret\nSTATE_DIR=/tmp/agent-state\n",
    )
    cfg = load_config(root)
    assert cfg.check_initial_delay == timedelta(0)
    assert cfg.check_interval == timedelta(seconds=2)
    assert cfg.check_fuzz == timedelta(milliseconds=500)
    assert cfg.max_backoff == timedelta(minutes=1)
    assert cfg.http_timeout == timedelta(seconds=5)
    assert cfg.boot_assessment_grace == timedelta(seconds=1)
    assert cfg.boot_assessment_timeout == timedelta(seconds=90)
    assert cfg.health_units == ()
    assert cfg.health_command == ("/usr/bin/test", "-e", "/run/my flag")
    assert cfg.delta_okay is True
    assert cfg.download_auth == ("me", "secret")
    assert "secret" not in repr(cfg)
    assert cfg.state_dir == root / "tmp/agent-state"
    assert cfg.warnings == ()


def test_trust_settings(root: Path) -> None:
    write(
        root,
        "/usr/share/wellcar/update.conf",
        "RELEASE_REPOSITORY=https://release.example.com/stable\n",
    )
    write(
        root,
        "/etc/wellcar/update.conf",
        "SERVER=https://up.test/v1/update/\nSTATE_DIR=/srv/agent\n"
        "TRUST_ROOT=/etc/wellcar/trust/root.json\n",
    )
    cfg = load_config(root)
    assert cfg.release_repository == "https://release.example.com/stable"
    assert cfg.trust_root == root / "etc/wellcar/trust/root.json"  # joined to root
    assert cfg.trust_dir == root / "srv/agent/trust"  # follows STATE_DIR
    assert cfg.warnings == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("0", timedelta(0)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("2h45m30s", timedelta(hours=2, minutes=45, seconds=30)),
        ("300ms", timedelta(milliseconds=300)),
        ("10us", timedelta(microseconds=10)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1d", "-5", "-1h", "1h 30m", "9999999h", "1e3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_window_length_must_carry_a_unit() -> None:
    with pytest.raises(ValueError):
        parse_duration("90", bare_seconds=False)


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [
        ("4459.2.2", "4459.2.1", True),
        ("4459.2.1", "4459.2.1", False),
        ("4459.2.1+build5", "4459.2.1", False),  # build metadata does not count
        ("4230.2.0", "4459.2.1", False),
        ("4459.10.0", "4459.9.0", True),  # numeric, not lexical
        ("1.0.0", "1.0.0-rc.1", True),
        ("1.0.0-rc.2", "1.0.0-rc.10", False),
        ("1.0.0", "0.0.0", True),
        ("not-a-version", "0.0.0", False),
        ("1.0.0", "garbage", True),
    ],
)
def test_version_order(candidate: str, current: str, newer: bool) -> None:
    assert is_newer_version(candidate, current) is newer


# --- identity -------------------------------------------------------------------------------

MACHINE_ID = "9ce7c0e2b5a14c1f8e2e6f8f1d3a2b4c"
BOOT_ID = "b3c0e5f2-1d2e-4f5a-8b9c-0d1e2f3a4b5c"


def test_identity_from_root(root: Path) -> None:
    write(root, "/etc/machine-id", MACHINE_ID + "\n")
    write(root, "/proc/sys/kernel/random/boot_id", BOOT_ID + "\n")
    write(root, "/oem/oem-release", "ID=qemu\nVERSION_ID=0.1.2\nNAME='QEMU'\n")
    ident = load_identity(load_config(root), arch="aarch64")
    assert ident == NodeIdentity(
        version="4459.2.1",
        board="amd64-usr",
        machine_id=MACHINE_ID,
        boot_id=BOOT_ID,
        oem_id="qemu",
        oem_version="0.1.2",
        arch="aarch64",
    )
    # /usr/share/oem wins over /oem.
    write(root, "/usr/share/oem/oem-release", "ID=azure\nVERSION_ID=2\n")
    assert load_identity(load_config(root)).oem_id == "azure"


def test_identity_without_oem_and_broken_oem(root: Path) -> None:
    write(root, "/etc/machine-id", MACHINE_ID)
    write(root, "/proc/sys/kernel/random/boot_id", BOOT_ID)
    ident = load_identity(AgentConfig(version="1.0.0", root=root))
    assert (ident.oem_id, ident.oem_version, ident.version) == ("", "", "1.0.0")
    write(root, "/oem/oem-release", 'ID="broken\n')
    assert load_identity(AgentConfig(root=root)).oem_id == ""


@pytest.mark.parametrize(
    ("machine_id", "boot_id", "path"),
    [
        (None, BOOT_ID, "/etc/machine-id"),
        ("uninitialized", BOOT_ID, "/etc/machine-id"),
        (MACHINE_ID, None, "/proc/sys/kernel/random/boot_id"),
        (MACHINE_ID, "not-a-uuid", "/proc/sys/kernel/random/boot_id"),
    ],
)
def test_identity_requires_machine_and_boot_id(
    tmp_path: Path, machine_id: str | None, boot_id: str | None, path: str
) -> None:
    if machine_id is not None:
        write(tmp_path, "/etc/machine-id", machine_id)
    if boot_id is not None:
        write(tmp_path, "/proc/sys/kernel/random/boot_id", boot_id)
    with pytest.raises(ConfigError) as info:
        load_identity(AgentConfig(root=tmp_path))
    assert info.value.path == path


def test_channel_key(root: Path) -> None:
    assert load_config(root).channel is None  # worked out from GROUP and the release
    write(root, "/etc/wellcar/update.conf", "GROUP=stable\nCHANNEL=edge\n")
    assert load_config(root).channel == "edge"
    write(root, "/etc/wellcar/update.conf", "CHANNEL=Edge Builds\n")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert "CHANNEL" in str(info.value) and "channel name" in str(info.value)
