"""Parsing, validation and translation: a corpus with expected verdicts, the v3 chain and
the v2 translation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellcar.ignition import ConfigInvalidError, UnsupportedVersionError, check_config, parse_config
from wellcar.ignition.codec import encode
from wellcar.ignition.report import Severity

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_verdict(name: str) -> None:
    verdict = EXPECTED[name]
    report = check_config((CORPUS / name).read_bytes(), name)
    errors = [e.path for e in report.errors]
    warnings = [e.path for e in report.warnings]
    if verdict == "ok":
        assert errors == [] and warnings == [], str(report)
    elif verdict.startswith("warn:"):
        assert errors == [], str(report)
        assert verdict[len("warn:") :] in warnings
    else:
        assert verdict[len("error:") :] in errors, str(report)


def test_every_corpus_file_has_a_verdict() -> None:
    assert {p.name for p in CORPUS.glob("*.ign")} == set(EXPECTED)


@pytest.mark.parametrize("version", ["3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"])
def test_every_v3_version_translates_to_latest(version: str) -> None:
    data = {
        "ignition": {"version": version},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": "data:,hi"}}]},
    }
    parsed = parse_config(json.dumps(data).encode())
    assert parsed.config.ignition.version == "3.5.0"
    assert parsed.source_version == version
    assert parsed.config.storage.files[0].contents.source == "data:,hi"


def test_key_added_in_later_spec_only_warns_in_older() -> None:
    data = {
        "ignition": {"version": "3.1.0"},
        "passwd": {"users": [{"name": "a", "shouldExist": True}]},
    }
    report = check_config(json.dumps(data).encode())
    assert [e.path for e in report.warnings] == ["$.passwd.users[0].shouldExist"]
    data["ignition"]["version"] = "3.2.0"  # type: ignore[index]
    assert check_config(json.dumps(data).encode()).entries == []


def test_errors_are_fatal_and_name_path_and_origin() -> None:
    bad = b'{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": 3}]}}'
    with pytest.raises(ConfigInvalidError) as info:
        parse_config(bad, origin="user.ign")
    assert "user.ign" in str(info.value)
    assert "$.storage.files[0].path" in str(info.value)
    assert info.value.report.errors[0].severity is Severity.ERROR


def test_unknown_version_is_its_own_error() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"3\.9\.0"):
        parse_config(b'{"ignition": {"version": "3.9.0"}}')


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(ConfigInvalidError, match="line 2 column"):
        parse_config(b'{"ignition":\n {"version": "3.4.0"},}')


def test_v2_translation() -> None:
    data = {
        "ignition": {
            "version": "2.2.0",
            "config": {"append": [{"source": "http://127.0.0.1/x.ign"}]},
        },
        "storage": {
            "disks": [
                {"device": "/dev/vdb", "partitions": [{"number": 1, "start": 2048, "size": 409600}]}
            ],
            "filesystems": [
                {"name": "data", "mount": {"device": "/dev/vdb1", "format": "ext4",
                                           "create": {"force": True, "options": ["-m0"]}}}
            ],
            "files": [
                {"filesystem": "root", "path": "/etc/a", "contents": {"source": "data:,a"}},
                {"filesystem": "oem", "path": "/grub.cfg", "contents": {"source": "data:,x"}},
                {"filesystem": "root", "path": "/etc/b", "append": True,
                 "contents": {"source": "data:,b"}},
            ],
        },
        "networkd": {"units": [{"name": "00-eth0.network", "contents": "[Match]\nName=eth0\n"}]},
        "systemd": {"units": [{"name": "a.service", "enable": True}]},
        "passwd": {"users": [{"name": "ops", "create": {"uid": 1500}}]},
    }  # fmt: skip
    config = parse_config(json.dumps(data).encode()).config
    assert config.ignition.config.merge[0].source == "http://127.0.0.1/x.ign"
    part = config.storage.disks[0].partitions[0]
    assert (part.start_mib, part.size_mib) == (1, 200)
    fs = config.storage.filesystems[0]
    assert (fs.device, fs.wipe_filesystem, fs.options) == ("/dev/vdb1", True, ("-m0",))
    files = {f.path: f for f in config.storage.files}
    assert files["/etc/a"].overwrite is True  # v2 always replaced files
    assert files["/oem/grub.cfg"].contents.source == "data:,x"
    assert files["/etc/b"].append[0].source == "data:,b"
    assert files["/etc/b"].contents.source is None
    network = files["/etc/systemd/network/00-eth0.network"]
    assert network.contents.source == "data:,%5BMatch%5D%0AName=eth0%0A"
    assert config.systemd.units[0].enabled is True
    assert config.passwd.users[0].uid == 1500


def test_encode_round_trips_through_parse() -> None:
    data = (CORPUS / "v34-reference-example.ign").read_bytes()
    config = parse_config(data).config
    again = parse_config(json.dumps(encode(config)).encode()).config
    assert again == config
