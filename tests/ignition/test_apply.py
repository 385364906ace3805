"""Applying configs into a temporary root: files, directories, links, units, users; and
bad configs that must leave the root exactly as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wellcar.ignition.apply import apply_config
from wellcar.ignition.errors import ConflictError, FetchError, UnsafePathError
from wellcar.ignition.fetch import Fetcher

from .conftest import SHADOW_GID, config_of, sha512, snapshot

AS_ROOT = os.geteuid() == 0


def apply(root: Path, data: dict[str, object]) -> None:
    apply_config(config_of(data), root, Fetcher(attempts=1), change_owner=AS_ROOT)


def v34(**sections: object) -> dict[str, object]:
    return {"ignition": {"version": "3.4.0"}, **sections}


def test_files_mode_overwrite_append_and_parents(root: Path) -> None:
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    apply(
        root,
        v34(storage={"files": [
            {"path": "/etc/flatcar/update.conf", "mode": 384, "overwrite": True,
             "contents": {"source": "data:,GROUP%3Dbeta%0A"}},
            {"path": "/etc/hosts", "append": [{"source": "data:,10.0.0.1%20db%0A"}]},
            {"path": "/opt/empty"},
        ]}),
    )  # fmt: skip
    conf = root / "etc/flatcar/update.conf"
    assert conf.read_text() == "GROUP=beta\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "etc/flatcar").stat().st_mode) == 0o755
    assert (root / "etc/hosts").read_text() == "127.0.0.1 localhost\n10.0.0.1 db\n"
    assert (root / "opt/empty").read_bytes() == b""
    assert stat.S_IMODE((root / "opt/empty").stat().st_mode) == 0o644


def test_directories_and_links(root: Path) -> None:
    (root / "usr/share/zoneinfo").mkdir(parents=True)
    (root / "usr/share/zoneinfo/UTC").write_text("tz")
    apply(
        root,
        v34(storage={
            "directories": [{"path": "/var/lib/app", "mode": 448}],
            "files": [{"path": "/var/lib/app/a", "contents": {"source": "data:,a"}}],
            "links": [
                {"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"},
                {"path": "/var/lib/app/b", "target": "/var/lib/app/a", "hard": True},
            ],
        }),
    )  # fmt: skip
    assert stat.S_IMODE((root / "var/lib/app").stat().st_mode) == 0o700
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert (root / "var/lib/app/b").stat().st_ino == (root / "var/lib/app/a").stat().st_ino


def test_paths_follow_symlinks_inside_the_root(root: Path) -> None:
    (root / "etc/wellcar").mkdir()
    os.symlink("/etc/wellcar", root / "etc/flatcar")  # the image's compatibility link
    apply(root, v34(storage={"files": [{"path": "/etc/flatcar/update.conf",
                                        "contents": {"source": "data:,x"}}]}))  # fmt: skip
    assert (root / "etc/wellcar/update.conf").read_text() == "x"


def test_users_groups_and_ssh_keys(root: Path) -> None:
    (root / "home/core/.ssh").mkdir()
    (root / "home/core/.ssh/authorized_keys").write_text("ssh-ed25519 OLD old@host\n")
    apply(
        root,
        v34(passwd={
            "groups": [{"name": "ops", "gid": 2000}],
            "users": [
                {"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 NEW me@host"],
                 "groups": ["wheel"]},
                {"name": "alice", "uid": 1001, "passwordHash": "$6$salt$hash", "groups": ["ops"],
                 "gecos": "Alice", "shell": "/bin/sh"},
            ],
        }),
    )  # fmt: skip
    etc = root / "etc"
    assert "alice:x:1001:1001:Alice:/home/alice:/bin/sh" in etc.joinpath("passwd").read_text()
    assert "core:x:500:500:Core:/home/core:/bin/bash" in etc.joinpath("passwd").read_text()
    groups = etc.joinpath("group").read_text().splitlines()
    assert "alice:x:1001:" in groups
    assert "ops:x:2000:alice" in groups
    assert "wheel:x:10:core" in groups
    shadow = etc.joinpath("shadow").read_text()
    assert shadow.count("alice:$6$salt$hash:") == 1
    # Debian's: unix_chkpwd, chage and screen lockers read them through the shadow group.
    for name in ("shadow", "gshadow"):
        st = etc.joinpath(name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, SHADOW_GID, 0o640), name
    # Rootless containers: the new user has subordinate ids; core (a system-range uid in
    # Debian's login.defs) gets none from useradd, as on a Debian machine.
    assert etc.joinpath("subuid").read_text() == "alice:100000:65536\n"
    assert etc.joinpath("subgid").read_text() == "alice:100000:65536\n"
    ssh = root / "home/core/.ssh"
    assert (ssh / "authorized_keys.d/ignition").read_text() == "ssh-ed25519 NEW me@host\n"
    assert (ssh / "authorized_keys").read_text() == (
        "ssh-ed25519 OLD old@host\nssh-ed25519 NEW me@host\n"
    )
    assert stat.S_IMODE((ssh / "authorized_keys.d/ignition").stat().st_mode) == 0o600
    home = root / "home/alice"
    assert (home / ".profile").read_text() == "# skel\n"  # useradd filled it from /etc/skel
    assert (home.stat().st_uid, (home / ".profile").stat().st_uid) == (1001, 1001)
    assert (ssh / "authorized_keys").stat().st_uid == 500


def test_new_users_get_ids_as_useradd_picks_them(root: Path) -> None:
    apply(root, v34(passwd={"users": [{"name": "bob"}, {"name": "carol", "system": True},
                                      {"name": "dave", "passwordHash": ""}]}))  # fmt: skip
    passwd = (root / "etc/passwd").read_text()
    assert "bob:x:1000:1000:" in passwd and "dave:x:1001:1001:" in passwd
    carol = next(line for line in passwd.splitlines() if line.startswith("carol:"))
    assert int(carol.split(":")[2]) < 1000
    shadow = dict(line.split(":", 2)[:2] for line in (root / "etc/shadow").read_text().split())
    assert shadow["bob"] == shadow["dave"] == "*"  # Ignition's: no password login
    subuid = (root / "etc/subuid").read_text()
    assert "bob:100000:65536" in subuid and "dave:165536:65536" in subuid
    assert "carol" not in subuid


def test_file_owner_by_name_resolves_to_new_user(root: Path) -> None:
    apply(
        root,
        v34(passwd={"users": [{"name": "svc"}]},
            storage={"files": [{"path": "/etc/svc.conf", "user": {"name": "svc"},
                                "group": {"name": "wheel"}}],
                     "directories": [{"path": "/var/lib/svc", "user": {"name": "svc"},
                                      "group": {"name": "svc"}}]}),
    )  # fmt: skip
    st = (root / "etc/svc.conf").stat()
    assert (st.st_uid, st.st_gid) == (1000, 10)  # the uid useradd picked, not a guess
    st = (root / "var/lib/svc").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        pytest.param(
            v34(passwd={"users": [{"name": "core", "uid": 1000}]}),
            ConflictError,
            r"\$.passwd.users\[0\]: user 'core' already exists with uid 500",
            id="user-exists-differently",
        ),
        pytest.param(
            v34(passwd={"groups": [{"name": "wheel", "gid": 11}]}),
            ConflictError,
            r"group 'wheel' already exists with gid 10",
            id="group-exists-differently",
        ),
        pytest.param(
            v34(
                storage={
                    "files": [
                        {"path": "/etc/good", "contents": {"source": "data:,x"}},
                        {
                            "path": "/etc/bad",
                            "contents": {
                                "source": "data:,x",
                                "verification": {"hash": sha512(b"y")},
                            },
                        },
                    ]
                }
            ),
            FetchError,
            r"\$.storage.files\[1\].contents: sha512 mismatch",
            id="bad-hash",
        ),
        pytest.param(
            v34(
                passwd={"users": [{"name": "new"}]},
                storage={
                    "files": [{"path": "/etc/u", "contents": {"source": "http://127.0.0.1:9/u"}}]
                },
            ),
            FetchError,
            r"\$.storage.files\[0\].contents: http://127.0.0.1:9/u: unreachable",
            id="unreachable-url",
        ),
        pytest.param(
            v34(storage={"files": [{"path": "/etc/passwd", "contents": {"source": "data:,x"}}]}),
            ConflictError,
            r"/etc/passwd already exists; set overwrite: true",
            id="exists-without-overwrite",
        ),
        pytest.param(
            v34(storage={"files": [{"path": "/escape/pwned", "contents": {"source": "data:,x"}}]}),
            UnsafePathError,
            r"\$.storage.files\[0\].path: .*leads outside the root",
            id="symlink-escapes-root",
        ),
        pytest.param(
            v34(storage={"links": [{"path": "/etc/l", "target": "../../../../tmp/x"}]}),
            UnsafePathError,
            r"\$.storage.links\[0\].target: .*leads outside the root",
            id="link-target-escapes-root",
        ),
        pytest.param(
            v34(passwd={"users": [{"name": "x", "primaryGroup": "nogroup"}]}),
            ConflictError,
            r"primaryGroup: group 'nogroup' does not exist",
            id="missing-primary-group",
        ),
    ],
)
def test_bad_configs_change_nothing(
    root: Path, data: dict[str, object], error: type[Exception], message: str
) -> None:
    os.symlink("../../../../../../../../..", root / "escape")
    outside = root.parent / "outside-marker"
    before = snapshot(root.parent)
    with pytest.raises(error, match=message):
        apply(root, data)
    assert snapshot(root.parent) == before
    assert not outside.exists()


def test_dotdot_is_refused_by_the_resolver(root: Path) -> None:
    from wellcar.ignition.rootfs import TargetRoot

    with pytest.raises(UnsafePathError, match=r"without '\.\.'"):
        TargetRoot(root).resolve("/etc/../../x")
