"""The fleet VM test's pure parts: each guest's hardware, and the upload's guestfwd."""

from __future__ import annotations

import pytest

from buildtools.vm import fleet_test, qemu


def test_guests_differ_in_serial_and_the_second_lacks_a_dimm():
    hw = qemu.load_hardware()
    first, second = fleet_test.guest_hardware(hw, 1), fleet_test.guest_hardware(hw, 2)
    assert first.system["serial"] == hw.system["serial"] + "-1"
    assert second.system["serial"] == hw.system["serial"] + "-2"
    assert first.dimm_sizes_mib == hw.dimm_sizes_mib
    assert second.dimm_sizes_mib == hw.dimm_sizes_mib[:-1]


def test_the_upload_is_forwarded_on_the_first_nic_only():
    hw = qemu.load_hardware()
    argv = qemu.nic_args(hw, ssh_port=2222)
    forwarded = fleet_test.with_guestfwd(argv, 8099)
    changed = [new for old, new in zip(argv, forwarded, strict=True) if old != new]
    assert changed == [
        "user,id=net0,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:2222-:22,"
        "guestfwd=tcp:10.0.2.100:8080-tcp:127.0.0.1:8099"
    ]
    with pytest.raises(fleet_test.VmTestError):
        fleet_test.with_guestfwd(["-netdev", "hubport,id=net0,hubid=0"], 8099)
