"""The VM side of the metadata tests: a guest network in which 169.254.169.254 can be
forwarded to a loopback emulator, and nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.vm import GuestForward, VmConfig, VmError
from wellcar.vm.config import LINK_LOCAL_NET, netdev_argument


def test_link_local_network_forwards_the_metadata_address(tmp_path: Path) -> None:
    forward = GuestForward("169.254.169.254", 80, 18080)
    config = VmConfig(image=tmp_path / "d.img", guest_network=LINK_LOCAL_NET,
                      guest_forwards=(forward,))  # fmt: skip
    netdev = netdev_argument(config, python="/venv/bin/python")
    assert netdev.startswith("user,id=net0,restrict=on,net=169.254.0.0/16,")
    assert "guestfwd=tcp:169.254.169.254:80-cmd:/venv/bin/python -m wellcar.vm.relay " in netdev
    assert "net=" not in netdev_argument(VmConfig(image=tmp_path / "d.img"), python="p")


def test_forwards_must_lie_in_the_guest_network(tmp_path: Path) -> None:
    with pytest.raises(VmError, match="outside the guest network"):
        VmConfig(image=tmp_path / "d.img",
                 guest_forwards=(GuestForward("169.254.169.254", 80, 18080),))  # fmt: skip
    with pytest.raises(VmError, match="must be a free address"):
        GuestForward("169.254.0.2", 80, 18080)  # QEMU's gateway in that network
    with pytest.raises(VmError, match="must be a free address"):
        GuestForward("192.168.1.1", 80, 18080)
