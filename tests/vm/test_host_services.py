"""Host services as a guest sees them: one fixed guest address, the same port, the
node's update.conf written through the Ignition config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellcar.ignition.dataurl import decode_data_url
from wellcar.ignition.parse import LATEST, parse_config
from wellcar.vm import GuestForward, VmError
from wellcar.vm.host_services import (
    HOST_SERVICES_ADDRESS,
    UPDATE_CONF_PATH,
    host_service,
    ignition_with_update_conf,
    update_server_service,
)


def test_a_server_on_loopback_is_the_fixed_address_on_the_same_port() -> None:
    service = update_server_service("http://127.0.0.1:8000")
    assert service.guest_url == f"http://{HOST_SERVICES_ADDRESS}:8000/v1/update/"
    assert service.forward == GuestForward(HOST_SERVICES_ADDRESS, 8000, 8000)
    kept = update_server_service("http://127.0.0.1:9000/v1/update/secret")
    assert kept.guest_url.endswith(":9000/v1/update/secret")
    assert host_service("http://127.0.0.1:8080/").guest_url.endswith(":8080/")


@pytest.mark.parametrize(
    "url",
    ["http://10.1.1.1:8000/", "https://127.0.0.1:8000/", "http://127.0.0.1/",
     "http://localhost:8000/", "http://127.0.0.1:99999/"],
)  # fmt: skip
def test_anything_but_http_on_loopback_with_a_port_is_refused(url: str) -> None:
    with pytest.raises(VmError):
        update_server_service(url)


def update_conf(config: bytes) -> str:
    files = json.loads(config)["storage"]["files"]
    [entry] = [f for f in files if f["path"] == UPDATE_CONF_PATH]
    return decode_data_url(entry["contents"]["source"]).decode()


def test_update_conf_joins_the_users_config_of_any_spec(tmp_path: Path) -> None:
    v2 = tmp_path / "v2.ign"
    v2.write_text(json.dumps({
        "ignition": {"version": "2.3.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA k"]}]},
    }))  # fmt: skip
    values = {"SERVER": "http://10.0.2.100:8000/v1/update/"}
    config = ignition_with_update_conf(v2, values)
    assert json.loads(config)["ignition"]["version"] == LATEST
    assert update_conf(config) == "SERVER=http://10.0.2.100:8000/v1/update/\n"
    parsed = parse_config(config).config  # still a valid config, the user's part kept
    assert parsed.passwd.users[0].name == "core"
    assert update_conf(ignition_with_update_conf(None, values)).startswith("SERVER=")


def test_a_config_that_writes_update_conf_itself_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.ign"
    config.write_text(json.dumps({
        "ignition": {"version": "3.4.0"},
        "storage": {"files": [{"path": UPDATE_CONF_PATH, "contents": {"source": "data:,x"}}]},
    }))  # fmt: skip
    with pytest.raises(VmError, match="already writes"):
        ignition_with_update_conf(config, {"SERVER": "x"})
    bad = tmp_path / "bad.ign"
    bad.write_text("{")
    with pytest.raises(VmError, match="not a valid Ignition config"):
        ignition_with_update_conf(bad, {"SERVER": "x"})
