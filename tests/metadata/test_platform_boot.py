"""The proof, in QEMU: platform images of the session's build boot against their cloud.

1. ``aws``: the build's disk with AWS's OEM content and command line
   (wellcar.image.platform_image.make_platform_raw), against an IMDSv2 emulator on
   loopback that the guest reaches at 169.254.169.254:80 (guestfwd). The emulator's
   user data is an Ignition config and its ssh key and hostname are nowhere in the
   image; the node comes up with that hostname, lets that key in as ``core``, and has
   applied that config.
2. ``openstack``: the same disk with OpenStack's OEM content and command line and a
   config drive (a second disk labelled config-2, no metadata service at all).
3. ``gce``: GCE's OEM content and command line against a metadata server emulator that
   answers only requests carrying ``Metadata-Flavor: Google``; the ssh key comes from the
   instance's ``ssh-keys`` attribute (``user:key`` lines), the config from ``user-data``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from wellcar.image.platform_image import make_platform_raw, read_build_info
from wellcar.image.platforms import platform_named
from wellcar.metadata.providers.openstack import META_DATA, USER_DATA
from wellcar.vm import GuestForward, Vm, VmConfig, free_loopback_port
from wellcar.vm.config import LINK_LOCAL_NET

from ..system.builds import OsBuilds
from .emulators import Service, ec2_service, gce_service, openstack_meta_data, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "mkfs.vfat", "mcopy")
BOOT_TIMEOUT = 900.0  # TCG on a loaded two-core machine
T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float = 3.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@pytest.fixture
def cloud_key(tmp_path: Path) -> tuple[Path, str]:
    """A key pair made for this test: the image cannot know it."""
    key = tmp_path / "cloud_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cloud@test", "-f",
                    str(key)], check=True)  # fmt: skip
    return key, key.with_suffix(".pub").read_text().strip()


def user_data(marker: str) -> bytes:
    config = {
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": "/etc/provisioned-by", "mode": 0o644, "overwrite": True,
                               "contents": {"source": "data:," + urllib.parse.quote(marker)}}]},
    }  # fmt: skip
    return json.dumps(config).encode()


def platform_disk(builds: OsBuilds, name: str, tmp_path: Path) -> Path:
    raw = tmp_path / f"{name}.raw"
    build = builds.n.output
    make_platform_raw(build, platform_named(name), raw, info=read_build_info(build))
    return raw


REPORT = (
    "hostname; echo ---; cat /etc/provisioned-by; echo ---; cat /run/metadata/flatcar; "
    "echo ---; cat /proc/cmdline; echo ---; cat /oem/oem-release; echo ---; "
    "systemctl is-active coreos-metadata.service"
)


def node_report(vm: Vm, key: Path) -> list[list[str]]:
    """What the node says about itself, read in one ssh round trip (each costs seconds
    under TCG) as ``core`` with the cloud's key: hostname, the config's file, the
    attributes, the command line, oem-release, the metadata unit's state."""

    def attempt() -> str | None:
        done = vm.ssh(REPORT, user="core", key=key, timeout=120)
        # The unit writes the keys last; "active" once it has also exited.
        finished = done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "active"
        return done.stdout if finished else None

    text = wait_until("ssh as core with the cloud's key", attempt, BOOT_TIMEOUT)
    return [part.strip().splitlines() for part in text.split("---")]


def skip_without_qemu() -> None:
    missing = [t for t in QEMU_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def boot_against_service(
    os_builds: OsBuilds, tmp_path: Path, platform: str, service: Service, key: Path
) -> list[list[str]]:
    """Boot ``platform``'s image with ``service`` at 169.254.169.254:80; the node's report
    once it has provisioned from the service's user data."""
    disk = platform_disk(os_builds, platform, tmp_path)
    ignition_id = platform_named(platform).platform_id.ignition
    port = free_loopback_port()
    with serve(service, port):
        config = VmConfig(
            image=disk,
            ssh_port=free_loopback_port(),
            guest_network=LINK_LOCAL_NET,
            guest_forwards=(GuestForward("169.254.169.254", 80, port),),
            serial_log=tmp_path / f"{platform}-serial.log",
        )
        with Vm(config) as vm:
            vm.wait_for_line(rf"provisioned from {ignition_id} user data", BOOT_TIMEOUT)
            return node_report(vm, key)


def test_aws_image_takes_hostname_key_and_config_from_imdsv2(
    os_builds: OsBuilds, tmp_path: Path, cloud_key: tuple[Path, str]
) -> None:
    skip_without_qemu()
    key, public = cloud_key
    hostname = "ip-172-31-5-6.imds-test.internal"
    service = ec2_service(hostname, public, user_data("imds user data\n"))
    report = boot_against_service(os_builds, tmp_path, "aws", service, key)
    name, provisioned, attributes, cmdline, oem, unit = report
    assert name == [hostname]
    assert provisioned == ["imds user data"]
    assert "COREOS_EC2_IPV4_LOCAL=172.31.5.6" in attributes
    assert f"COREOS_EC2_HOSTNAME={hostname}" in attributes
    assert {"ignition.platform.id=aws", "flatcar.oem.id=ec2"} <= set(cmdline[0].split())
    assert oem[0] == "ID=ami" and unit == ["active"]
    # IMDSv2: a session token first, and every read carried it (the emulator refuses others).
    assert service.requests[0] == ("PUT", "latest/api/token")
    assert ("GET", "2019-10-01/user-data") in service.requests


def make_config_drive(tmp_path: Path, hostname: str, public: str, data: bytes) -> Path:
    tree = tmp_path / "drive-tree"
    (tree / "openstack/latest").mkdir(parents=True)
    (tree / META_DATA).write_bytes(openstack_meta_data(hostname, public))
    (tree / USER_DATA).write_bytes(data)
    drive = tmp_path / "config-drive.img"
    with drive.open("wb") as out:
        out.truncate(8 << 20)
    subprocess.run(["mkfs.vfat", "-n", "config-2", str(drive)], check=True, capture_output=True)
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(["mcopy", "-s", "-i", str(drive), str(tree / "openstack"), "::/"],
                   check=True, env=env)  # fmt: skip
    return drive


def test_openstack_image_reads_its_config_drive(
    os_builds: OsBuilds, tmp_path: Path, cloud_key: tuple[Path, str]
) -> None:
    skip_without_qemu()
    key, public = cloud_key
    hostname = "drive-node"
    drive = make_config_drive(tmp_path, hostname, public, user_data("config drive\n"))
    disk = platform_disk(os_builds, "openstack", tmp_path)
    config = VmConfig(
        image=disk,
        ssh_port=free_loopback_port(),
        serial_log=tmp_path / "openstack-serial.log",
        extra_args=("-drive", f"if=virtio,format=raw,readonly=on,file={drive}"),
    )
    with Vm(config) as vm:
        vm.wait_for_line(r"provisioned from openstack user data", BOOT_TIMEOUT)
        name, provisioned, attributes, cmdline, oem, _ = node_report(vm, key)
    assert name == [hostname]
    assert provisioned == ["config drive"]
    assert f"COREOS_OPENSTACK_HOSTNAME={hostname}" in attributes
    assert "ignition.platform.id=openstack" in cmdline[0].split()
    assert oem[0] == "ID=openstack"


def test_gce_image_reads_the_metadata_server_with_its_flavor_header(
    os_builds: OsBuilds, tmp_path: Path, cloud_key: tuple[Path, str]
) -> None:
    skip_without_qemu()
    key, public = cloud_key
    hostname = "gce-node.c.wellcar-test.internal"
    service = gce_service(hostname, public, user_data("gce user data\n"))
    report = boot_against_service(os_builds, tmp_path, "gce", service, key)
    name, provisioned, attributes, cmdline, oem, unit = report
    assert name == [hostname]
    assert provisioned == ["gce user data"]
    assert f"COREOS_GCE_HOSTNAME={hostname}" in attributes
    assert "COREOS_GCE_IP_LOCAL_0=10.128.0.5" in attributes
    assert {"ignition.platform.id=gcp", "flatcar.oem.id=gce"} <= set(cmdline[0].split())
    assert oem[0] == "ID=gce" and unit == ["active"]
    # The emulator answers 403 without the flavor header: every read carried it.
    assert ("GET", "computeMetadata/v1/instance/attributes/user-data") in service.requests
