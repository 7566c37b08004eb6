"""The fleet VM test's pure parts: each guest's hardware, and the upload's guestfwd."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

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
    relay = Path("/r/relay,1.py")
    forwarded = fleet_test.with_guestfwd(argv, 8099, relay)
    changed = [new for old, new in zip(argv, forwarded, strict=True) if old != new]
    assert changed == [
        "user,id=net0,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:2222-:22,"
        f"guestfwd=tcp:10.0.2.100:8080-cmd:{sys.executable} /r/relay,,1.py 8099"
    ]
    with pytest.raises(fleet_test.VmTestError):
        fleet_test.with_guestfwd(["-netdev", "hubport,id=net0,hubid=0"], 8099, relay)


def test_the_relay_carries_a_connection_both_ways(tmp_path):
    """What QEMU runs per guest connection: stdin to the server, the server's answer out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        data = b""
        while not data.endswith(b"\n"):
            data += conn.recv(100)
        conn.sendall(data.upper())
        conn.close()

    server = threading.Thread(target=answer)
    server.start()
    relay = tmp_path / "relay.py"
    relay.write_text(fleet_test.RELAY)
    result = subprocess.run(
        [sys.executable, str(relay), str(listener.getsockname()[1])],
        input=b"put me\n", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    server.join()
    listener.close()
    assert (result.returncode, result.stdout) == (0, b"PUT ME\n")
