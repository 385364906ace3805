"""Spec 1 configs (`"ignitionVersion": 1`) and 2.x filesystems of any name, as Flatcar's
Ignition reads them."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from wellcar.ignition.parse import check_config, parse_config
from wellcar.ignition.v2_x import NAMED_FILESYSTEMS_DIR

CORPUS = Path(__file__).parent / "corpus"


def test_a_kola_style_spec_1_config_translates_to_what_it_declares() -> None:
    parsed = parse_config((CORPUS / "v1-kola.ign").read_bytes(), "v1-kola.ign")
    assert parsed.source_version == "1"
    config = parsed.config
    (motd,) = config.storage.files
    assert motd.path == "/etc/motd.d/kola.conf"  # on ROOT: the node's own root
    assert motd.mode == 0o644 and (motd.user.id, motd.group.id) == (0, 0)
    assert motd.contents.source is not None
    assert unquote(motd.contents.source.removeprefix("data:,")) == "spec 1 was here\n"
    assert not config.storage.filesystems  # ROOT is not re-made
    (unit,) = config.systemd.units
    assert (unit.name, unit.enabled) == ("kola-v1.service", True)
    tester = next(u for u in config.passwd.users if u.name == "tester")
    assert (tester.groups, tester.shell) == (("docker",), "/bin/bash")


def test_a_spec_1_filesystem_elsewhere_is_made_and_written_through_a_mount() -> None:
    document = {
        "ignitionVersion": 1,
        "storage": {
            "filesystems": [
                {
                    "device": "/dev/vdb",
                    "format": "ext4",
                    "create": {"force": True, "options": ["-L", "DATA"]},
                    "files": [{"path": "/hello", "contents": "hi", "mode": 384, "uid": 500}],
                }
            ]
        },
    }
    config = parse_config(json.dumps(document).encode()).config
    (fs,) = config.storage.filesystems
    mount = f"{NAMED_FILESYSTEMS_DIR}/_translate-filesystem-0"
    assert (fs.device, fs.format, fs.path, fs.wipe_filesystem) == ("/dev/vdb", "ext4", mount, True)
    assert fs.options == ("-L", "DATA")
    (hello,) = config.storage.files
    assert (hello.path, hello.mode, hello.user.id) == (f"{mount}/hello", 0o600, 500)


def test_2x_filesystems_of_any_name_and_none() -> None:
    document = {
        "ignition": {"version": "2.2.0"},
        "storage": {
            "filesystems": [
                {"name": "data", "mount": {"device": "/dev/vdb", "format": "xfs"}},
                {"mount": {"device": "/dev/vdc", "format": "ext4"}},  # made, never referred to
            ],
            "files": [{"filesystem": "data", "path": "/etc/x", "contents": {"source": "data:,x"}}],
        },
    }
    config = parse_config(json.dumps(document).encode()).config
    data, nameless = config.storage.filesystems
    assert data.path == f"{NAMED_FILESYSTEMS_DIR}/data" and nameless.path is None
    assert config.storage.files[0].path == f"{NAMED_FILESYSTEMS_DIR}/data/etc/x"


def test_a_2x_filesystem_name_that_cannot_be_a_mount_point_is_refused() -> None:
    document = {
        "ignition": {"version": "2.2.0"},
        "storage": {"filesystems": [{"name": "../x", "mount": {"device": "/dev/vdb",
                                                               "format": "xfs"}}]},
    }  # fmt: skip
    report = check_config(json.dumps(document).encode())
    assert any("$.storage.filesystems[0].name" in str(e) for e in report.errors), str(report)
