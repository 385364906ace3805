"""Butane YAML to Ignition JSON (variant flatcar 1.0/1.1, wellcar 1.0)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wellcar.ignition.butane import transpile
from wellcar.ignition.dataurl import decode_data_url
from wellcar.ignition.errors import ConfigInvalidError

REFERENCE = """\
variant: flatcar
version: 1.1.0
passwd:
  users: [{ name: core, ssh_authorized_keys: ["ssh-ed25519 AAAA... me@host"] }]
storage:
  files:
    - { path: /etc/flatcar/update.conf, overwrite: true, mode: 0644,
        contents: { inline: "GROUP=stable\\n" } }
systemd:
  units:
    - name: hello.service
      enabled: true
      contents: |
        [Service]
        Type=oneshot
        ExecStart=/usr/bin/echo hi
        [Install]
        WantedBy=multi-user.target
"""


def test_reference_example() -> None:
    out = transpile(REFERENCE).config
    assert out["ignition"] == {"version": "3.4.0"}
    assert out["passwd"]["users"][0]["sshAuthorizedKeys"] == ["ssh-ed25519 AAAA... me@host"]
    file = out["storage"]["files"][0]
    assert file["mode"] == 420
    assert decode_data_url(file["contents"]["source"]) == b"GROUP=stable\n"
    assert out["systemd"]["units"][0]["contents"].endswith("WantedBy=multi-user.target\n")


@pytest.mark.parametrize(
    ("variant", "spec"),
    [("flatcar\nversion: 1.0.0", "3.3.0"), ("wellcar\nversion: 1.0.0", "3.4.0")],
)
def test_variants_emit_their_spec(variant: str, spec: str) -> None:
    assert transpile(f"variant: {variant}\n").config["ignition"]["version"] == spec


def test_large_repetitive_contents_are_gzipped() -> None:
    text = "line\n" * 2000
    out = transpile(
        "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n"
        f"    - path: /a\n      contents: {{inline: {json.dumps(text)}}}\n"
    )
    contents = out.config["storage"]["files"][0]["contents"]
    assert contents["compression"] == "gzip"
    assert gzip.decompress(decode_data_url(contents["source"])).decode() == text


def test_local_files_trees_and_local_shortcuts(tmp_path: Path) -> None:
    (tmp_path / "keys.pub").write_text("ssh-ed25519 K1 a\nssh-ed25519 K2 b\n")
    (tmp_path / "unit.service").write_text("[Service]\nExecStart=/bin/true\n")
    tree = tmp_path / "tree" / "bin"
    tree.mkdir(parents=True)
    (tree / "tool").write_text("#!/bin/sh\n")
    os.chmod(tree / "tool", 0o755)
    (tmp_path / "tree" / "conf").write_text("c")
    yaml_text = """\
variant: flatcar
version: 1.1.0
passwd:
  users: [{name: core, ssh_authorized_keys_local: [keys.pub]}]
systemd:
  units: [{name: a.service, contents_local: unit.service}]
storage:
  files: [{path: /etc/k, contents: {local: keys.pub}}]
  trees: [{local: tree, path: /opt}]
"""
    out = transpile(yaml_text, files_dir=tmp_path).config
    assert out["passwd"]["users"][0]["sshAuthorizedKeys"] == [
        "ssh-ed25519 K1 a",
        "ssh-ed25519 K2 b",
    ]
    assert out["systemd"]["units"][0]["contents"] == "[Service]\nExecStart=/bin/true\n"
    files = {f["path"]: f for f in out["storage"]["files"]}
    assert files["/opt/bin/tool"]["mode"] == 0o755
    assert files["/opt/conf"]["mode"] == 0o644
    assert decode_data_url(files["/etc/k"]["contents"]["source"]).startswith(b"ssh-ed25519 K1")


def test_local_file_may_not_escape_files_dir(tmp_path: Path) -> None:
    text = (
        "variant: flatcar\nversion: 1.1.0\nstorage:\n"
        "  files: [{path: /a, contents: {local: ../x}}]\n"
    )
    with pytest.raises(ConfigInvalidError, match=r"\$.storage.files\[0\].contents.local"):
        transpile(text, files_dir=tmp_path)


def test_local_needs_files_dir() -> None:
    text = (
        "variant: flatcar\nversion: 1.1.0\nstorage:\n  files: [{path: /a, contents: {local: x}}]\n"
    )
    with pytest.raises(ConfigInvalidError, match="--files-dir"):
        transpile(text)


def test_unknown_keys_warn_and_strict_fails() -> None:
    text = "variant: flatcar\nversion: 1.1.0\nstorage:\n  files: [{path: /a, colour: red}]\n"
    assert [e.path for e in transpile(text).report.warnings] == ["$.storage.files[0].colour"]
    with pytest.raises(ConfigInvalidError):
        transpile(text, strict=True)


def test_with_mount_unit() -> None:
    text = """\
variant: flatcar
version: 1.1.0
storage:
  filesystems:
    - {device: /dev/disk/by-label/DATA, format: ext4, path: /var/lib/my-data, with_mount_unit: true}
"""
    out = transpile(text).config
    unit = out["systemd"]["units"][0]
    assert unit["name"] == "var-lib-my\\x2ddata.mount"
    assert "Where=/var/lib/my-data\n" in unit["contents"]
    assert "withMountUnit" not in out["storage"]["filesystems"][0]


@pytest.mark.parametrize(
    "text",
    ["variant: fcos\nversion: 1.4.0\n", "variant: flatcar\nversion: 1.2.0-experimental\n",
     "variant: flatcar\nversion: 1.1.0\nstorage: [\n", "- a list\n"],
)  # fmt: skip
def test_bad_butane_is_an_error(text: str) -> None:
    with pytest.raises(ConfigInvalidError):
        transpile(text)


def test_yaml_is_typed_by_spec_field_as_go_yaml_does() -> None:
    out = transpile(
        "variant: flatcar\nversion: 1.1.0\n"
        "storage:\n  files:\n"
        "    - {path: /etc/a, mode: 0644, contents: {inline: no}}\n"
        "    - {path: /etc/b, mode: 0o600, overwrite: yes, contents: {inline: 1.10}}\n"
        "    - {path: /etc/c, mode: 420, contents: {inline: on}}\n"
        "    - {path: /etc/d, contents: {inline: 0x1F}}\n"
        "    - {path: /etc/e, contents: {inline: null}}\n"
        "passwd:\n  users: [{name: 007, uid: 1000, gecos: 2024-01-01}]\n"
    ).config
    files = out["storage"]["files"]
    assert [f["mode"] for f in files[:3]] == [420, 384, 420]
    assert files[1]["overwrite"] is True  # yes into a boolean field
    texts = [decode_data_url(f["contents"]["source"]) for f in files]
    assert texts == [b"no", b"1.10", b"on", b"0x1F", b""]
    assert out["passwd"]["users"][0] == {"name": "007", "uid": 1000, "gecos": "2024-01-01"}


def test_yaml_keys_are_strings_and_duplicates_are_refused() -> None:
    with pytest.raises(ConfigInvalidError) as caught:
        transpile("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n"
                  "    - {path: /a, on: 1}\n", strict=True)  # fmt: skip
    assert [w.path for w in caught.value.report.warnings] == ["$.storage.files[0].on"]
    with pytest.raises(ConfigInvalidError, match=r"\$.storage.files\[0\].path: is given twice"):
        transpile("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n"
                  "    - {path: /a, path: /b}\n")  # fmt: skip


def test_a_quoted_mode_is_an_error_not_a_guess() -> None:
    with pytest.raises(ConfigInvalidError, match=r"mode: must be an integer, not a string"):
        transpile(
            'variant: flatcar\nversion: 1.1.0\nstorage:\n  files: [{path: /a, mode: "0644"}]\n'
        )


@pytest.mark.parametrize(
    "path",
    ["/var/lib/my dir", "/var/lib/data-1", "/srv/.hidden/x", "/mnt/über", "/a//b/", "/",
     "/var/lib/a:b_c.d", "/opt/x\\y", "/.dot"],
)  # fmt: skip
def test_mount_units_are_named_as_systemd_escape_names_them(path: str) -> None:
    from wellcar.ignition.unit_names import escape_path_python

    tool = shutil.which("systemd-escape")
    if tool is None:
        pytest.skip("needs systemd-escape")
    done = subprocess.run([tool, "--path", "--suffix=mount", "--", path],
                          capture_output=True, text=True, check=True)  # fmt: skip
    expected = done.stdout.strip()
    assert f"{escape_path_python(path)}.mount" == expected
    text = (f"variant: flatcar\nversion: 1.1.0\nstorage:\n  filesystems:\n"
            f"    - {{device: /dev/vdb, format: ext4, path: {json.dumps(path)}, "
            "with_mount_unit: true}\n")  # fmt: skip
    if path in ("/", "/a//b/"):
        # A mount on / is refused elsewhere, and Ignition refuses a path that is not
        # canonical (ErrDirtyPath); the unit's name is what matters here.
        return
    (unit,) = transpile(text).config["systemd"]["units"]
    assert unit["name"] == expected
    assert f"Where={path}" in unit["contents"]


# --- modes written in decimal (Butane's ErrDecimalMode verdicts) ------------------------------


@pytest.mark.parametrize(
    ("kind", "mode", "refused"),
    [
        ("files", "0644", False),
        ("files", "644", True),  # 0o1204: sticky, owner -w-
        ("files", "600", True),
        ("files", "755", True),
        ("files", "0", False),  # no permissions is reasonable
        ("files", "420", False),  # 0o644 written in decimal on purpose
        ("files", "888", False),  # no octal reading: not this mistake
        ("directories", "0755", False),
        ("directories", "755", True),
        ("directories", "1777", True),  # 0o3361 (-wx owner); 0o1777 is /tmp's mode
        ("directories", "01777", False),
    ],
)  # fmt: skip
def test_a_mode_written_in_decimal_is_refused(kind: str, mode: str, refused: bool) -> None:
    text = (
        f"variant: flatcar\nversion: 1.0.0\nstorage:\n  {kind}:\n    - path: /x\n"
        f"      mode: {mode}\n"
    )
    if not refused:
        transpile(text)
        return
    with pytest.raises(ConfigInvalidError, match="remember to add a leading zero") as raised:
        transpile(text)
    assert f"$.storage.{kind}.0.mode" in str(raised.value)
