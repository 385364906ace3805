"""The same disk.img on a BIOS machine (QEMU's SeaBIOS): GRUB boots it, with A/B fallback.

The scenario of test_update_in_vm.py, on the session's shared builds, without its power
loss and its first boot's kernel-argument reboot (the UEFI test covers both): N boots from
slot A, updates to N+1 in slot B and reboots into it, then a broken N+2 falls back to
N+1 by itself and the server sees errorcode 44. GRUB says which entry it boots on the
serial console; the whole story must read a, b, a, b there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from wellcar.vm import Firmware

from .builds import OsBuilds
from .test_update_in_vm import (
    booted_node,
    broken_n2_falls_back,
    check_in_on_n,
    update_to_n1,
    wait_until,
)

# The SeaBIOS scenario takes about 11 minutes of TCG boots, over the 6 the CI budget gives
# it (docs/bios.md): it runs when WELLCAR_BIOS_VM=1 until it is folded into fewer boots.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        os.environ.get("WELLCAR_BIOS_VM") != "1",
        reason="the SeaBIOS VM scenario runs with WELLCAR_BIOS_VM=1 (over the CI budget)",
    ),
]


def grub_boots(serial_log: Path) -> list[str]:
    """The entries GRUB booted, in order, from the serial console."""
    text = serial_log.read_text(encoding="utf-8", errors="replace")
    return re.findall(r"wellcar: GRUB boots wellcar-([ab])", text)


def test_a_bios_node_updates_and_falls_back_with_grub(os_builds: OsBuilds, tmp_path: Path) -> None:
    serial_log = tmp_path / "serial.log"
    with booted_node(os_builds, tmp_path, firmware=Firmware.BIOS, kernel_arguments=False) as (
        node,
        fleet,
    ):
        assert grub_boots(serial_log) == ["a"]
        # The agent knows the firmware: no EFI runtime here.
        assert node.ssh("test -d /sys/firmware/efi && echo uefi || echo bios").strip() == "bios"
        instance_id = check_in_on_n(node, fleet)

        update_to_n1(node, fleet, os_builds, power_loss=False)
        assert grub_boots(serial_log) == ["a", "b"]

        # Blessed after its health checks: GRUB's counter for B is gone, as is the +N of
        # its entry (update_to_n1 checked the entry names).
        def blessed() -> bool:
            return "tries_left_b" not in node.ssh("cat /boot/grub/grubenv")

        wait_until("the agent to bless slot B in grubenv", blessed, 300)

        broken_n2_falls_back(node, fleet, os_builds, tmp_path, instance_id)
        # N+2 in slot A had one try: GRUB used it, then passed over A and booted B.
        assert grub_boots(serial_log) == ["a", "b", "a", "b"]
        grubenv = node.ssh("cat /boot/grub/grubenv")
        assert "tries_left_a" not in grubenv  # the agent removed the failed entry and counter
        assert node.ssh("ls /boot/loader/entries").split() == ["wellcar-b.conf"]
