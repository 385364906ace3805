"""The metadata agent against emulated services on loopback: each platform's protocol,
and a service that hangs, fails or answers garbage (bounded, then a clear refusal)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from wellcar.ignition.platform_config import platform_config
from wellcar.image.platforms import PLATFORMS
from wellcar.metadata.__main__ import main
from wellcar.metadata.errors import BadMetadataError, ServiceUnavailableError
from wellcar.metadata.node import ATTRIBUTES_FILE, NodeFiles, apply_hostname, apply_ssh_keys
from wellcar.metadata.providers import PROVIDERS, BootCheckIn, ProviderSettings, provider_for
from wellcar.metadata.providers.openstack import META_DATA, USER_DATA
from wellcar.metadata.service import RetryPolicy

from .emulators import (
    AZURE_CONTAINER,
    AZURE_INCARNATION,
    AZURE_INSTANCE,
    Behaviour,
    Service,
    azure_goal_state,
    azure_imds,
    azure_wireserver,
    ec2_service,
    gce_service,
    openstack_meta_data,
    openstack_service,
    serve,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyFromTheCloud cloud@test"
CONFIG = b'{"ignition": {"version": "3.4.0"}}'
FAST = RetryPolicy(attempts=3, first_backoff_s=0.05, max_backoff_s=0.1, timeout_s=0.5,
                   deadline_s=5.0)  # fmt: skip


def settings(url: str, **extra: object) -> ProviderSettings:
    return ProviderSettings(base_url=url, policy=FAST, **extra)  # type: ignore[arg-type]


def test_table_and_providers_agree() -> None:
    for platform in PLATFORMS:
        provider = provider_for(platform.platform_id.ignition)
        assert (provider.name if provider else None) == platform.metadata_provider, platform.name


def test_ec2_imdsv2_uses_the_session_token() -> None:
    service = ec2_service("ip-172-31-5-6.eu-west-1.compute.internal", KEY, CONFIG)
    with serve(service) as url:
        provider = provider_for("aws", settings(url))
        assert provider is not None
        meta = provider.metadata()
        assert provider.user_data() == CONFIG
    assert meta.hostname == "ip-172-31-5-6.eu-west-1.compute.internal"
    assert meta.ssh_keys == (KEY,)
    assert meta.attributes["COREOS_EC2_IPV4_LOCAL"] == "172.31.5.6"
    assert meta.attributes["COREOS_EC2_REGION"] == "eu-west-1"
    assert service.requests[0] == ("PUT", "latest/api/token")
    assert [m for m, _ in service.requests].count("PUT") == 1  # one session for all reads


def test_gce_sends_and_checks_the_flavor_header() -> None:
    with serve(gce_service("node-1.c.project.internal", KEY, CONFIG)) as url:
        provider = provider_for("gcp", settings(url))
        assert provider is not None
        meta = provider.metadata()
        assert provider.user_data() == CONFIG
    assert meta.hostname == "node-1.c.project.internal"
    assert meta.ssh_keys == (KEY, "ssh-ed25519 AAAAproject alice")
    assert meta.attributes["COREOS_GCE_IP_LOCAL_0"] == "10.128.0.5"


def test_gce_impostor_without_the_flavor_header_is_refused() -> None:
    plain = Service({"computeMetadata/v1/instance/hostname": b"evil"})
    with serve(plain) as url, pytest.raises(BadMetadataError, match="Metadata-Flavor"):
        provider_for("gcp", settings(url)).metadata()  # type: ignore[union-attr]


def test_openstack_config_drive_comes_before_the_service(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    (drive / "openstack/latest").mkdir(parents=True)
    (drive / META_DATA).write_bytes(openstack_meta_data("from-drive", KEY))
    (drive / USER_DATA).write_bytes(CONFIG)
    service = openstack_service("from-service", KEY, b"{}")
    with serve(service) as url:
        provider = provider_for("openstack", settings(url, config_drive=drive))
        assert provider is not None
        assert provider.metadata().hostname == "from-drive"
        assert provider.user_data() == CONFIG
        assert service.requests == []
        no_drive = provider_for("openstack", settings(url, config_drive=tmp_path / "none"))
        assert no_drive is not None  # a drive directory without the files: no metadata
        assert no_drive.metadata().hostname is None


def test_openstack_metadata_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from wellcar.metadata.providers import openstack

    monkeypatch.setattr(openstack, "find_config_drive", lambda by_label=None: None)
    with serve(openstack_service("from-service", KEY, CONFIG)) as url:
        provider = provider_for("openstack", settings(url))
        assert provider is not None
        meta = provider.metadata()
        assert provider.user_data() == CONFIG
    assert meta.hostname == "from-service" and meta.ssh_keys == (KEY,)
    assert meta.attributes["COREOS_OPENSTACK_IPV4_LOCAL"] == "192.168.0.9"


@pytest.mark.parametrize("behaviour", [Behaviour.ERROR, Behaviour.HANG])
def test_a_failing_service_costs_a_bounded_wait(behaviour: Behaviour) -> None:
    service = ec2_service("h", KEY, CONFIG)
    service.behaviour = behaviour
    with serve(service) as url:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="gave up after 3 tries"):
            provider_for("aws", settings(url)).metadata()  # type: ignore[union-attr]
        # Bounded by the policy's deadline, not by the service.
        assert time.monotonic() - started < FAST.deadline_s + FAST.timeout_s + 1
    assert len(service.requests) <= FAST.attempts


def test_garbage_is_refused_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from wellcar.metadata.providers import openstack

    monkeypatch.setattr(openstack, "find_config_drive", lambda by_label=None: None)
    service = openstack_service("h", KEY, CONFIG)
    service.behaviour = Behaviour.GARBAGE
    with serve(service) as url, pytest.raises(BadMetadataError, match="not JSON"):
        provider_for("openstack", settings(url)).metadata()  # type: ignore[union-attr]


def test_absent_service_gives_up(tmp_path: Path) -> None:
    with serve(Service({})) as url:
        pass  # closed: nothing listens on that port any more
    with pytest.raises(ServiceUnavailableError):
        provider_for("hetzner", settings(url)).metadata()  # type: ignore[union-attr]


def test_ignition_takes_the_platform_user_data() -> None:
    line = "root=x ignition.platform.id=aws"
    with serve(ec2_service("h", KEY, CONFIG)) as url:
        found = platform_config(line, settings(url))
    assert found is not None and found.data == CONFIG and found.origin == "aws user data"
    with serve(ec2_service("h", KEY, None)) as url:
        none = platform_config(line, settings(url))
    assert none is not None and none.data is None and "none given" in none.origin
    with serve(ec2_service("h", KEY, b"#cloud-config\nhostname: x\n")) as url:
        cloud = platform_config(line, settings(url))
    assert cloud is not None and cloud.data is None and "cloud-config" in cloud.origin
    broken = ec2_service("h", KEY, CONFIG)
    broken.behaviour = Behaviour.ERROR
    with serve(broken) as url:
        down = platform_config(line, settings(url))
    assert down is not None and down.data is None and "unavailable" in down.origin
    assert platform_config("root=x ignition.platform.id=qemu") is None  # fw_cfg, as before
    assert platform_config("root=x") is None


def test_node_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("core:x:500:500:Core:/home/core:/bin/bash\n")
    (tmp_path / "etc/hostname").write_text("localhost\n")
    files = NodeFiles(root=tmp_path, set_kernel_hostname=False)
    assert apply_hostname(files, "cloud-host") == "cloud-host"
    assert (tmp_path / "etc/hostname").read_text() == "cloud-host\n"
    assert apply_hostname(files, "another") is None  # the node has its own now
    keys = tmp_path / "home/core/.ssh/authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("ssh-ed25519 AAAAmine me\n")
    apply_ssh_keys(files, ("ssh-ed25519 AAAAold old",))
    apply_ssh_keys(files, (KEY,))  # the platform dropped the old key
    assert keys.read_text() == f"ssh-ed25519 AAAAmine me\n{KEY}\n"


def test_agent_command_writes_attributes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("core:x:500:500:Core:/home/core:/bin/bash\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=x flatcar.oem.id=ec2\n")
    with serve(ec2_service("cloud-host", KEY, CONFIG)) as url:
        status = main(["run", "--root", str(tmp_path), "--cmdline", str(cmdline),
                       "--base-url", url])  # fmt: skip
    assert status == 0
    attributes = (tmp_path / ATTRIBUTES_FILE.lstrip("/")).read_text().splitlines()
    assert "COREOS_EC2_HOSTNAME=cloud-host" in attributes
    assert (tmp_path / "run/metadata/coreos").resolve() == (tmp_path / "run/metadata/flatcar")
    assert (tmp_path / "etc/hostname").read_text() == "cloud-host\n"
    assert "aws (ec2): 7 attributes" in capsys.readouterr().err


def test_agent_says_why_and_boots_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("ignition.platform.id=digitalocean\n")
    service = Service({"metadata/v1.json": b"not json"})
    with serve(service) as url:
        status = main(["run", "--root", str(tmp_path), "--cmdline", str(cmdline),
                       "--base-url", url])  # fmt: skip
    assert status == 0
    err = capsys.readouterr().err
    assert "not JSON" in err and "booting without platform metadata" in err
    assert not (tmp_path / ATTRIBUTES_FILE.lstrip("/")).exists()
    assert json.dumps(sorted(PROVIDERS))  # every provider is reachable by name


def test_malformed_user_data_stops_the_boot_with_the_usual_message() -> None:
    from wellcar.ignition.errors import IgnitionError
    from wellcar.ignition.parse import parse_config

    with serve(ec2_service("h", KEY, b'{"ignition": {"version": "3.4.0"')) as url:
        found = platform_config("ignition.platform.id=aws", settings(url))
    assert found is not None and found.data is not None
    with pytest.raises(IgnitionError):
        parse_config(found.data, origin=found.origin)


def test_omaha_reports_the_platform_images_oem(tmp_path: Path) -> None:
    """The agent's Omaha oem/oemversion come from the oem-release a platform image ships."""
    from wellcar.agent.config import AgentConfig
    from wellcar.agent.node_identity import load_identity
    from wellcar.image.platforms import OEM_RELEASE, platform_named, render_oem_release

    (tmp_path / "oem").mkdir()
    release = render_oem_release(platform_named("aws"), "4893.0.0")
    (tmp_path / "oem" / OEM_RELEASE).write_text(release)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "proc/sys/kernel/random").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/random/boot_id").write_text(
        "01234567-89ab-cdef-0123-456789abcdef\n"
    )
    identity = load_identity(AgentConfig(), tmp_path)
    assert (identity.oem_id, identity.oem_version) == ("ami", "4893.0.0")


# --- Azure: IMDS for metadata, the wireserver for the boot check-in ----------------------


def test_azure_reads_imds_and_reports_ready_to_the_wireserver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("core:x:500:500:Core:/home/core:/bin/bash\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("ignition.platform.id=azure flatcar.oem.id=azure\n")
    wireserver = azure_wireserver()
    with serve(azure_imds("az-node", KEY, CONFIG)) as imds, serve(wireserver) as fabric:
        status = main(["run", "--root", str(tmp_path), "--cmdline", str(cmdline),
                       "--base-url", imds, "--wireserver-url", fabric])  # fmt: skip
    assert status == 0
    assert (tmp_path / "etc/hostname").read_text() == "az-node\n"
    attributes = (tmp_path / ATTRIBUTES_FILE.lstrip("/")).read_text().splitlines()
    assert "COREOS_AZURE_IPV4_DYNAMIC=10.0.0.4" in attributes
    # The goal state first, then one health report naming what it said, marked Ready.
    assert [m for m, _ in wireserver.requests] == ["GET", "POST"]
    [(path, body, headers)] = wireserver.posted
    assert path == "machine/?comp=health"
    assert headers["x-ms-version"] == "2012-11-30"
    assert headers["content-type"].startswith("text/xml")
    report = ElementTree.fromstring(body)
    assert report.findtext("GoalStateIncarnation") == AZURE_INCARNATION
    assert report.findtext("Container/ContainerId") == AZURE_CONTAINER
    role = report.find("Container/RoleInstanceList/Role")
    assert role is not None and role.findtext("InstanceId") == AZURE_INSTANCE
    assert role.findtext("Health/State") == "Ready"
    assert f"reported Ready to the wireserver (incarnation {AZURE_INCARNATION})" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("goal_state", "message"),
    [
        (b"<GoalState><Incarnation>1", "not XML"),
        (azure_goal_state().replace(b"<ContainerId>", b"<Other>").replace(
            b"</ContainerId>", b"</Other>"), "lacks Incarnation, ContainerId or InstanceId"),
    ],
    ids=["not-xml", "no-container"],
)  # fmt: skip
def test_azure_bad_goal_state_is_refused_and_nothing_is_reported(
    goal_state: bytes, message: str
) -> None:
    wireserver = azure_wireserver(goal_state)
    with serve(wireserver) as fabric:
        provider = provider_for("azure", settings("http://127.0.0.1:9", wireserver_url=fabric))
        assert isinstance(provider, BootCheckIn)
        with pytest.raises(BadMetadataError, match=message):
            provider.check_in()
    assert wireserver.posted == []


def test_azure_wireserver_down_costs_a_bounded_wait_and_the_boot_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("ignition.platform.id=azure\n")
    wireserver = azure_wireserver()
    wireserver.behaviour = Behaviour.ERROR
    started = time.monotonic()
    with serve(azure_imds("az-node", KEY, None)) as imds, serve(wireserver) as fabric:
        provider = provider_for("azure", settings(imds, wireserver_url=fabric))
        assert isinstance(provider, BootCheckIn)
        with pytest.raises(ServiceUnavailableError, match="HTTP 500"):
            provider.check_in()
    assert time.monotonic() - started < FAST.deadline_s + 2
    assert wireserver.posted == []


def test_only_azure_checks_in() -> None:
    checking = sorted(name for name in PROVIDERS
                      if isinstance(provider_for(name, settings("http://127.0.0.1:9")),
                                    BootCheckIn))  # fmt: skip
    assert checking == ["azure"]
