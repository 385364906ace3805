"""Verdicts that must be Ignition's: configs it accepts and we refused, configs it refuses
and we accepted (rules from coreos/ignition's config/v3_* types and their tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wellcar.ignition.parse import check_config

SHA = "sha256-" + "0" * 64


def report_of(storage: dict[str, Any], systemd: dict[str, Any] | None = None) -> list[str]:
    document: dict[str, Any] = {"ignition": {"version": "3.4.0"}, "storage": storage}
    if systemd is not None:
        document["systemd"] = systemd
    return [str(e) for e in check_config(json.dumps(document).encode()).errors]


def test_an_empty_source_is_no_source() -> None:
    files = [{"path": "/etc/empty", "contents": {"source": ""}}]
    assert report_of({"files": files}) == []


@pytest.mark.parametrize(
    ("storage", "systemd", "path", "words"),
    [
        ({"files": [{"path": "/etc/x/"}]}, None, "$.storage.files[0].path", "not canonical"),
        ({"directories": [{"path": "/a//b"}]}, None, "$.storage.directories[0].path",
         "not canonical"),
        ({"links": [{"path": "/etc/l", "target": "/var/x"}],
          "files": [{"path": "/etc/l/f"}]}, None, "$.storage.files[0].path", "a link"),
        ({"links": [{"path": "/etc/l", "target": "/var/x"},
                    {"path": "/etc/l/m", "target": "/x"}]}, None, "$.storage.links[1].path",
         "a link"),
        ({"directories": [{"path": "/srv/d"}],
          "links": [{"path": "/srv/h", "target": "/srv/d", "hard": True}]}, None,
         "$.storage.links[0].target", "directory"),
        ({"filesystems": [{"device": "/dev/vdb", "label": "DATA"}]}, None,
         "$.storage.filesystems[0].label", "needs a format"),
        ({"files": [{"path": "/etc/v", "contents": {"verification": {"hash": SHA}}}]},
         None, "$.storage.files[0].contents.verification.hash", "needs a source"),
        ({"files": [{"path": "/etc/systemd/system/a.service",
                     "contents": {"source": "data:,x"}}]},
         {"units": [{"name": "a.service", "contents": "[Service]\nExecStart=/bin/true\n"}]},
         "$.storage.files[0].path", "systemd.units"),
        ({"files": [{"path": "/etc/systemd/system/b.service.d/x.conf"}]},
         {"units": [{"name": "b.service",
                     "dropins": [{"name": "x.conf", "contents": "[Unit]\n"}]}]},
         "$.storage.files[0].path", "systemd.units"),
    ],
)  # fmt: skip
def test_what_ignition_refuses_is_refused(
    storage: dict[str, Any], systemd: dict[str, Any] | None, path: str, words: str
) -> None:
    errors = report_of(storage, systemd)
    assert any(path in e and words in e for e in errors), errors


def test_a_unit_path_without_contents_is_no_conflict() -> None:
    """Only units and drop-ins that the config writes own their path (Ignition's rule)."""
    files = [{"path": "/etc/systemd/system/c.service", "contents": {"source": "data:,x"}}]
    assert report_of({"files": files}, {"units": [{"name": "c.service", "enabled": True}]}) == []


def test_an_enabled_unit_without_install_is_warned_about() -> None:
    document = {
        "ignition": {"version": "3.4.0"},
        "systemd": {"units": [
            {"name": "a.service", "enabled": True, "contents": "[Service]\nExecStart=/bin/true\n"},
            {"name": "b.service", "enabled": True,
             "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"},
        ]},
    }  # fmt: skip
    report = check_config(json.dumps(document).encode())
    assert not report.errors
    warned = [str(w) for w in report.warnings]
    assert any("units[0]" in w and "no [Install]" in w for w in warned), warned
    assert not any("units[1]" in w for w in warned), warned
