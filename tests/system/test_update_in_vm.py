"""The proof, in QEMU: a Wellcar node updates itself and falls back by itself.

One VM runs the whole story on the real images N and N+1 (tests/system/builds.py, built
with the development key set, so they ship its payload key and TUF root), with
`wellcar serve` and the release tree (TUF-signed by `wellcar.release`) served on 127.0.0.1
and reached through guestfwd only; every payload the node installs is admitted by TUF:

1. N boots, provisioned by an Ignition config over fw_cfg (Flatcar's key): ssh keys and
   the groups of Flatcar's docs for the built-in `core`, a file, a unit that runs a
   container built on the machine. /usr is erofs on dm-verity; the agent checks in. As
   on Flatcar: `core` has passwordless sudo and docker, there is no apt.
2. N+1 is published. QEMU is killed (power loss) while the agent writes the other slot;
   the node boots N again, and its next check completes the update: it reboots into N+1
   from slot B and reports 3/2, the server shows the instance complete.
3. A broken N+2 is published (correctly signed, but its /usr root hash is wrong, so its
   kernel cannot mount /usr). The node installs it, reboots, the initrd fails, systemd-boot's
   boot counting falls back to N+1, and the server sees errorcode 44.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest

from wellcar.cli.api_client import ApiClient
from wellcar.disk import USR_A_UUID, USR_B_UUID, UsrVerity
from wellcar.image.dev_keys import DevKeys
from wellcar.omaha.model import FLATCAR_APP_ID
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import load_signing_key
from wellcar.release.build_dir import REQUIRED, SUMS, parse_version_txt, sha256_file
from wellcar.release.create import ReleaseInputs, create_release
from wellcar.release.publish import publish_release
from wellcar.server.api.models import AppCreate, ChannelCreate, GroupCreate
from wellcar.server.fleet_codes import InstanceStatus
from wellcar.trust.keys import Keyring
from wellcar.vm import Firmware, FwCfgEntry, GuestForward, Vm, VmConfig, free_loopback_port

from ..server.server_processes import serve_processes
from .builds import VERSION_N, VERSION_N1, OsBuilds
from .mirror import Mirror, serve_mirror

VERSION_N2 = "4893.0.2"
TOKEN = "vm-admin-token"
GUEST_SERVER = "10.0.2.100"  # where the guest reaches the test's servers (guestfwd)
SERVER_PORT, MIRROR_PORT = 8000, 8080
CHANNEL = "alpha"  # the release channel of 4893.0.x (MINOR 0)
BOOT_TIMEOUT = 900.0  # TCG on a loaded two-core machine
STEP_TIMEOUT = 1200.0
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- what the node is given -------------------------------------------------------------


def data_url(text: str) -> str:
    return "data:," + urllib.parse.quote(text)


HELLO_UNIT = """[Unit]
Description=Run a container built on this machine
Requires=docker.service
After=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre=/bin/cp /usr/bin/busybox /var/lib/hello/busybox
ExecStartPre=/usr/bin/docker build -q -t local/hello /var/lib/hello
ExecStart=/usr/bin/docker run --rm --network none local/hello echo hello from a container

[Install]
WantedBy=multi-user.target
"""


KERNEL_ARGUMENT = "wellcar.test-argument=kept"


# What a Flatcar user's config does (issue 23): a new user, a unit written through
# storage.files and enabled by name, a drop-in for Flatcar's sshd.service (Debian's
# ssh.service has that alias), and /etc/hostname without overwrite.
NODE_NAME = "wellcar-vm-node"
OPS_USER = "ops"
MARKER_UNIT = """[Unit]
Description=Leave a marker that a unit written by storage.files ran

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'hostname > /var/lib/provision-marker'

[Install]
WantedBy=multi-user.target
"""
SSHD_DROPIN = "[Service]\nEnvironment=WELLCAR_DROPIN=1\n"


def file_entry(path: str, text: str) -> dict[str, object]:
    return {"path": path, "mode": 0o644, "overwrite": True,
            "contents": {"source": data_url(text)}}  # fmt: skip


def ignition_config(public_key: str) -> dict[str, object]:
    update_conf = (
        f"SERVER=http://{GUEST_SERVER}:{SERVER_PORT}/v1/update/\nGROUP=stable\n"
        "CHECK_INITIAL_DELAY=10s\nCHECK_INTERVAL=15s\nCHECK_FUZZ=2s\nMAX_BACKOFF=30s\n"
        "BOOT_ASSESSMENT_GRACE=10s\n"
        # The image ships a TUF root: only releases of this tree are installed.
        f"RELEASE_REPOSITORY=http://{GUEST_SERVER}:{MIRROR_PORT}/\n"
    )
    dockerfile = 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n'
    return {
        "ignition": {"version": "3.4.0"},
        "passwd": {
            "users": [
                {"name": "root", "sshAuthorizedKeys": [public_key]},
                # core exists in the image: the config adds to it, as on Flatcar, with
                # the groups of Flatcar's docs.
                {
                    "name": "core",
                    "sshAuthorizedKeys": [public_key],
                    "groups": ["sudo", "docker", "wheel"],
                },
                {"name": OPS_USER, "groups": ["docker"], "sshAuthorizedKeys": [public_key]},
            ]
        },
        "storage": {
            "files": [
                file_entry("/etc/wellcar/update.conf", update_conf),
                file_entry("/etc/provisioned-by", "ignition\n"),
                file_entry("/var/lib/hello/Dockerfile", dockerfile),
                file_entry("/etc/systemd/system/provision-marker.service", MARKER_UNIT),
                # No overwrite, as Flatcar's docs write it: the first-boot /etc has none.
                {
                    "path": "/etc/hostname",
                    "mode": 0o644,
                    "contents": {"source": data_url(f"{NODE_NAME}\n")},
                },
            ]
        },
        "systemd": {
            "units": [
                {"name": "hello.service", "enabled": True, "contents": HELLO_UNIT},
                {"name": "provision-marker.service", "enabled": True},
                {
                    "name": "sshd.service",
                    "dropins": [{"name": "10-test.conf", "contents": SSHD_DROPIN}],
                },
            ]
        },
        # Set in both slots' entries by the first boot, which then reboots once; the agent
        # carries them into N+1's entry.
        "kernelArguments": {"shouldExist": [KERNEL_ARGUMENT]},
    }


# --- the update server side -------------------------------------------------------------


@dataclass
class Fleet:
    api: ApiClient
    app: str
    channel: str
    group: str
    mirror: Mirror

    tree: Path  # the release tree the mirror serves (its TUF metadata included)
    inputs: ReleaseInputs

    def publish(self, version: str, payload: Path, like: Path, *, delta: bool = False) -> None:
        """Release ``payload`` as ``version`` into the tree (DIGESTS and TUF targets signed
        with the development keys), with the manifest of the build in ``like``, and point
        the server's channel at it. The release is made from the few files it needs, not
        the build's GB-sized disk images."""
        build_dir = self.tree.parent / f"release-{version}"
        build_dir.mkdir()
        for name in REQUIRED:
            if name == "update.payload":
                (build_dir / name).hardlink_to(payload)
            elif name == "version.txt":
                text = (like / name).read_text()
                built = str(parse_version_txt(text))
                (build_dir / name).write_text(text.replace(built, version))
            else:
                (build_dir / name).hardlink_to(like / name)
        sums = "".join(f"{sha256_file(build_dir / n)}  {n}\n" for n in REQUIRED)
        (build_dir / SUMS).write_text(sums)
        # The broken N+2 is a delta on top of N+1, the only /usr this node runs then.
        inputs = replace(self.inputs, allow_delta_payload=delta)
        create_release(self.tree, build_dir, CHANNEL, inputs)
        publish_release(
            self.api, self.tree, version, app=self.app,
            base_url=f"http://{GUEST_SERVER}:{MIRROR_PORT}/", channel_name="stable",
        )  # fmt: skip

    def instance(self) -> tuple[str, str, InstanceStatus | None] | None:
        """(id, version, update status) of the one instance, once it has checked in; the
        status is None while the instance never had an update."""
        page = self.api.list_instances(self.app, self.group, perpage=10)
        for item in page.instances:
            if item.application is not None:
                raw = item.application.status
                status = InstanceStatus(raw) if raw is not None else None
                return item.id, item.application.version, status
        return None

    def error_codes(self, instance_id: str, version: str) -> set[str]:
        history = self.api.status_history(self.app, self.group, instance_id, limit=50)
        return {e.error_code for e in history if e.version == version and e.error_code}


@contextmanager
def update_server(tmp_path: Path, keys: DevKeys) -> Iterator[tuple[Fleet, int]]:
    env = {**os.environ, "WELLCAR_ADMIN_TOKEN": TOKEN, "WELLCAR_READ_TOKEN": TOKEN}
    tree = tmp_path / "release-tree"  # a copy: the session's set stays as the builds made it
    shutil.copytree(keys.release_tree, tree)
    inputs = ReleaseInputs([load_signing_key(keys.signing_key)], Keyring.load([keys.tuf_keys_dir]))
    with (
        serve_processes(tmp_path / "server", 1, extra_env=env) as (url,),
        serve_mirror(tree) as mirror,
    ):
        api = ApiClient(url, TOKEN)
        app = api.create_app(AppCreate(id=FLATCAR_APP_ID, name="wellcar", description="vm")).id
        channel = api.create_channel(app, ChannelCreate(name="stable", color="#000", arch=1)).id
        group = api.create_group(
            app,
            GroupCreate(
                name="Stable", track="stable", channel_id=channel, description="vm",
                policy_updates_enabled=True, policy_safe_mode=False, policy_office_hours=False,
                policy_timezone="UTC", policy_period_interval="1 minute",
                policy_max_updates_per_period=10, policy_update_timeout="60 minutes",
            ),
        ).id  # fmt: skip
        yield Fleet(api, app, channel, group, mirror, tree, inputs), int(url.rsplit(":", 1)[1])


# --- the node ---------------------------------------------------------------------------


@dataclass
class Node:
    vm: Vm
    key: Path

    def ssh(self, command: str, user: str = "root", check: bool = True) -> str:
        done = self.vm.ssh(command, user=user, key=self.key, timeout=180)
        if check:
            assert done.returncode == 0, f"{command!r} failed: {done.stderr[-2000:]}"
        return done.stdout

    def wait_for_ssh(self) -> None:
        def answers() -> bool:
            return self.vm.ssh("true", user="root", key=self.key, timeout=60).returncode == 0

        wait_until("ssh", answers, 300, every=3)

    def boot(self, slot_uuid: str) -> None:
        """Follow one boot on the console: the initrd mounts that slot's /usr, then a login
        prompt; then ssh answers."""
        self.vm.wait_for_line(f"wellcar: /usr is PARTUUID={slot_uuid}", BOOT_TIMEOUT)
        self.vm.wait_for_line(r"login:", BOOT_TIMEOUT)
        self.wait_for_ssh()

    def agent_status(self) -> dict[str, object]:
        text = self.ssh("cat /var/lib/wellcar/status.json", check=False)
        try:
            loaded: dict[str, object] = json.loads(text)
            return loaded
        except ValueError:
            return {}

    def running(self) -> tuple[str, str]:
        """(slot letter from the kernel command line, VERSION_ID of the mounted /usr)."""
        out = self.ssh("cat /proc/cmdline; . /usr/lib/os-release; echo $VERSION_ID")
        cmdline, version = out.strip().splitlines()[-2:]
        words = dict(w.partition("=")[::2] for w in cmdline.split())
        return words.get("wellcar.slot", "?"), version


def check_flatcar_user_model(node: Node) -> None:
    """core, as on Flatcar: in sudo, docker and wheel (the config named them; the image
    already had them), passwordless sudo, docker without root."""
    groups = node.ssh("id -nG core").split()
    assert {"sudo", "docker", "wheel", "systemd-journal", "adm"} <= set(groups), groups
    assert node.ssh("id -u core").strip() == "500"
    assert node.ssh("sudo -n true && sudo -n id -u", user="core").strip() == "0"
    assert "Server Version" in node.ssh("docker info", user="core")
    assert node.ssh("passwd -S core").split()[1] == "L"  # locked: ssh keys only


def check_provisioning(node: Node) -> None:
    """What the config asked, as Flatcar would have it: Debian's shadow ownership, the new
    user's subordinate ids, a unit from storage.files enabled and run, Flatcar's
    sshd.service name with its drop-in, the config's hostname."""
    for name in ("shadow", "gshadow"):
        assert node.ssh(f"stat -c '%U:%G %a' /etc/{name}").split() == ["root:shadow", "640"]
    for name in ("subuid", "subgid"):
        start, count = node.ssh(f"grep '^{OPS_USER}:' /etc/{name}").strip().split(":")[1:]
        assert int(start) >= 100000 and int(count) == 65536, name
    assert node.ssh("id -un", user=OPS_USER).strip() == OPS_USER
    assert "docker" in node.ssh(f"id -nG {OPS_USER}").split()
    assert node.ssh("systemctl is-enabled provision-marker.service").strip() == "enabled"
    wait_until(
        "provision-marker.service to run",
        lambda: node.ssh("cat /var/lib/provision-marker", check=False).strip(),
        300,
    )
    assert node.ssh("systemctl show -p Result --value provision-marker").strip() == "success"
    status = node.ssh("systemctl status --no-pager sshd")  # exit 0: active
    assert "ssh.service" in status and "10-test.conf" in status, status
    assert "WELLCAR_DROPIN=1" in node.ssh("systemctl show -p Environment --value sshd")
    assert f"Static hostname: {NODE_NAME}" in node.ssh("hostnamectl status")
    assert node.ssh("hostname").strip() == NODE_NAME
    assert node.ssh("cat /var/lib/provision-marker").strip() == NODE_NAME
    # The factory defaults filled the gaps after provisioning.
    assert node.ssh("test -s /etc/ssh/sshd_config && test -s /etc/motd && echo ok").strip() == "ok"


def check_no_package_manager(node: Node) -> None:
    assert node.ssh("command -v apt apt-get; true").strip() == ""
    timers = node.ssh("systemctl list-timers --all --no-pager")
    assert "apt-daily" not in timers, timers
    assert "openssh-server" in node.ssh("dpkg-query -W -f='${Package}\\n'")  # the SBOM stays


def check_node_commands(node: Node) -> None:
    """The node's CLI and Flatcar's commands, as core (read-only) and as root."""
    status = node.ssh("wellcar agent status", user="core")
    keys = [line.split("=", 1)[0] for line in status.splitlines()]
    assert keys[:5] == ["LAST_CHECKED_TIME", "PROGRESS", "CURRENT_OP", "NEW_VERSION", "NEW_SIZE"]
    assert "DAEMON=running pid=" in status and "Traceback" not in status
    assert "BOOT=" in node.ssh("wellcar agent status")  # root: the live daemon's view
    ue = node.ssh("update_engine_client -status", user="core").splitlines()
    assert [line.split("=", 1)[0] for line in ue] == keys[:5], ue
    assert ue[2] == "CURRENT_OP=UPDATE_STATUS_IDLE"
    lock = node.ssh("locksmithctl status", user="core").splitlines()
    assert lock[:2] == ["Available: 1", "Max: 1"], lock


def agent_journal(node: Node, *options: str) -> list[dict[str, str]]:
    out = node.ssh(f"journalctl -u wellcar-agent -o json --no-pager {' '.join(options)}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def check_agent_journal(node: Node) -> None:
    """The agent's lines reach the journal as entries with their fields and priority."""
    entries = [e for e in agent_journal(node) if e.get("SYSLOG_IDENTIFIER") == "wellcar-agent"]
    started = [e for e in entries if 'msg="agent started"' in e["MESSAGE"]]
    assert started, [e["MESSAGE"] for e in entries][:20]
    assert started[-1]["PRIORITY"] == "6" and started[-1]["WELLCAR_VERSION"] == VERSION_N
    assert all(int(e["PRIORITY"]) <= 4 for e in agent_journal(node, "-p", "warning"))


def agent_restarts(node: Node) -> int:
    out = node.ssh("systemctl show -p NRestarts --value wellcar-agent.service")
    return int(out.strip())


def skip_unless_vm_tools() -> None:
    missing = [tool for tool in QEMU_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def broken_payload(builds: OsBuilds, out: Path) -> Path:
    """N+2: a correctly signed update whose /usr root hash is wrong, so the initrd's
    dm-verity refuses it (a delta against N+1: small, and quick to apply)."""
    n1 = builds.n1
    good = n1.result.root_hash
    wrong = ("0" if good[0] != "0" else "1") + good[1:]
    offset = int(n1.version_txt["WELLCAR_USR_HASH_OFFSET"])
    generate_payload(
        PayloadInputs(
            new_usr=n1.file("usr.img"), old_usr=n1.file("usr.img"), kernel=n1.file("vmlinuz"),
            initrd=n1.file("initrd.img"), usr_verity=UsrVerity(wrong, offset),
        ),
        out, [load_signing_key(builds.signing_key)], GenerateOptions(zstd_level=3),
    )  # fmt: skip
    return out


@contextmanager
def booted_node(
    os_builds: OsBuilds, tmp_path: Path, *, firmware: Firmware, kernel_arguments: bool
) -> Iterator[tuple[Node, Fleet]]:
    """The update server at N and a VM of N's disk.img, provisioned by its Ignition config
    (the kernel argument, when asked for, costs the first boot's one reboot); yielded once
    N runs from slot A and answers ssh."""
    skip_unless_vm_tools()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    document = ignition_config(key.with_suffix(".pub").read_text().strip())
    if not kernel_arguments:
        del document["kernelArguments"]
    config = tmp_path / "config.ign"
    config.write_text(json.dumps(document))
    with update_server(tmp_path, os_builds.dev_keys) as (fleet, server_port):
        fleet.publish(VERSION_N, os_builds.n.file("update.payload"), os_builds.n.output)
        vm_config = VmConfig(
            image=os_builds.n.file("disk.img"),
            memory_mib=2048,
            cpus=2,
            ssh_port=free_loopback_port(),
            guest_forwards=(
                GuestForward(GUEST_SERVER, SERVER_PORT, server_port),
                GuestForward(GUEST_SERVER, MIRROR_PORT, fleet.mirror.port),
            ),
            fw_cfg=(FwCfgEntry("opt/org.flatcar-linux/config", config),),
            serial_log=tmp_path / "serial.log",
            disk_size=8 << 30,  # larger than the image: ROOT grows on first boot
            firmware=firmware,
        )
        started = time.monotonic()
        with Vm(vm_config) as vm:
            node = Node(vm, key)  # started by the with statement
            if kernel_arguments:
                vm.wait_for_line(f"wellcar: /usr is PARTUUID={USR_A_UUID}", BOOT_TIMEOUT)
                vm.wait_for_line("rebooting once so the kernel arguments take effect",
                                 BOOT_TIMEOUT)  # fmt: skip
            node.boot(str(USR_A_UUID))
            print(f"\nfirst boot to ssh ({firmware}): {time.monotonic() - started:.1f} s")
            assert node.running() == ("a", VERSION_N)
            yield node, fleet
            vm.stop()


def check_in_on_n(node: Node, fleet: Fleet) -> str:
    """The agent checks in with N; the instance's id."""
    instance = wait_until("the agent's check-in", fleet.instance, 300)
    assert instance[1] == VERSION_N
    return instance[0]


def update_to_n1(node: Node, fleet: Fleet, os_builds: OsBuilds, *, power_loss: bool) -> None:
    """N+1 published; the node installs it into slot B, reboots into it, the server sees
    it complete. ``power_loss``: QEMU is killed while the slot is being written first, and
    the node boots N again before its next check completes the update."""
    n1 = os_builds.n1
    fleet.publish(VERSION_N1, n1.file("update.payload"), n1.output)
    if power_loss:

        def writing_the_slot() -> bool:
            return node.agent_status().get("state") == "UPDATE_STATUS_FINALIZING"

        wait_until("the agent to write slot B", writing_the_slot, STEP_TIMEOUT, every=1)
        time.sleep(3)
        found = fleet.instance()
        assert found is not None and found[2] is not InstanceStatus.COMPLETE
        node.vm.kill()
        node.vm.start()
        node.boot(str(USR_A_UUID))  # still N, from slot A
        assert node.running() == ("a", VERSION_N)
        # The ESP (FAT, no journal) was checked before it was mounted after the power cut.
        fsck = node.ssh("systemd-escape --path --template=systemd-fsck@.service "
                        "/dev/disk/by-partlabel/EFI-SYSTEM").strip()  # fmt: skip
        assert node.ssh(f"systemctl show -p Result --value '{fsck}'").strip() == "success"
        assert node.ssh(f"systemctl is-active '{fsck}'", check=False).strip() == "active"
    # The (next) check completes the update: reboot into N+1 from slot B.
    node.boot(str(USR_B_UUID))
    assert node.running() == ("b", VERSION_N1)

    def complete_on_n1() -> bool:
        found = fleet.instance()
        return found is not None and found[1:] == (VERSION_N1, InstanceStatus.COMPLETE)

    wait_until("the server to see N+1 complete", complete_on_n1, 300)
    # Installed through TUF: the node read the tree's metadata, not only Omaha.
    assert any(p.startswith("/metadata/timestamp.json") for p in fleet.mirror.served)
    assert node.ssh("ls /boot/loader/entries").split() == ["wellcar-a.conf", "wellcar-b.conf"]


def broken_n2_falls_back(
    node: Node, fleet: Fleet, os_builds: OsBuilds, tmp_path: Path, instance_id: str
) -> None:
    """A broken N+2: its kernel cannot mount /usr; boot counting falls back to N+1 by
    itself and the server sees errorcode 44."""
    fleet.publish(VERSION_N2, broken_payload(os_builds, tmp_path / "n2.payload"),
                  os_builds.n1.output, delta=True)  # fmt: skip
    node.vm.wait_for_line(r"wellcar: (dm-verity cannot open|cannot mount) /usr", STEP_TIMEOUT)
    node.boot(str(USR_B_UUID))
    assert node.running() == ("b", VERSION_N1)
    wait_until(
        "errorcode 44 for N+2 on the server",
        lambda: "44" in fleet.error_codes(instance_id, VERSION_N2),
        300,
    )
    status = node.agent_status()
    assert status.get("rolled_back_version") == VERSION_N2
    found = fleet.instance()
    assert found is not None and found[1] == VERSION_N1


def test_node_updates_itself_survives_power_loss_and_falls_back(
    os_builds: OsBuilds, tmp_path: Path
) -> None:
    with booted_node(os_builds, tmp_path, firmware=Firmware.UEFI, kernel_arguments=True) as (
        node,
        fleet,
    ):
        vm = node.vm
        print(node.ssh("systemd-analyze; systemd-analyze blame --no-pager | head -8",
                       check=False))  # fmt: skip

        # --- 1. N, provisioned; /usr read-only on dm-verity; containers run.
        assert KERNEL_ARGUMENT in node.ssh("cat /proc/cmdline").split()
        table = node.ssh("dmsetup table usr")
        assert " verity " in table and os_builds.n.result.root_hash in table
        fstype, options = node.ssh("findmnt -n -o FSTYPE,OPTIONS /usr").split()
        assert fstype == "erofs" and options.split(",")[0] == "ro"
        assert "Read-only file system" in vm.ssh("touch /usr/x", user="root", key=node.key).stderr
        assert node.ssh("id -un", user="core").strip() == "core"
        check_flatcar_user_model(node)
        check_no_package_manager(node)
        check_node_commands(node)
        check_agent_journal(node)
        root_size = int(node.ssh("df --output=size -B1 / | tail -1"))
        assert root_size > 2 << 30, f"ROOT did not grow: {root_size} bytes"
        assert node.ssh("cat /etc/provisioned-by") == "ignition\n"
        assert not node.ssh("ls -a /etc").count(".wellcar-first-boot")
        wait_until(
            "hello.service to run its container",
            lambda: (
                "hello from a container"
                in node.ssh("journalctl -u hello.service --no-pager", check=False)
            ),
            300,
        )
        assert node.ssh("systemctl is-active hello.service").strip() == "active"
        instance_id = check_in_on_n(node, fleet)
        assert node.ssh("test -s /usr/share/wellcar/trust/root.json && echo shipped") != ""
        assert agent_restarts(node) == 0

        # --- 2. N+1 published; power loss while the slot is being written.
        update_to_n1(node, fleet, os_builds, power_loss=True)
        assert KERNEL_ARGUMENT in node.ssh("cat /proc/cmdline").split()  # kept by the update

        # --- 3. A broken N+2: its kernel cannot mount /usr; boot counting falls back.
        broken_n2_falls_back(node, fleet, os_builds, tmp_path, instance_id)
        # journalctl -p warning shows the rollback, as a warning with its fields.
        rolled = [e for e in agent_journal(node, "-b", "-p", "warning")
                  if 'msg="rolled back"' in e["MESSAGE"]]  # fmt: skip
        assert rolled and rolled[0]["PRIORITY"] == "4" and rolled[0]["WELLCAR_SLOT"] in "AB"
        assert agent_restarts(node) == 0  # in this boot, after the fallback
