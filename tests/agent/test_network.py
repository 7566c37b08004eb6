"""The network collector through replays: ports joined from sysfs, ip, ethtool and BOOTIF;
bonds and VLANs as data; LLDP frames from a capture; the findings; the schema."""

from __future__ import annotations

import json

from bee.findings import Finding
from bee.packets import ETH_P_LLDP
from bee.tools import lspci, network
from bee.tools.network import device_path_pci_address
from conftest import FIXTURES, assert_section_valid, probe_over, write_capture

NET = "/sys/class/net"
LLDP_FRAMES = FIXTURES / "lldp" / "netns-veth-lldpd-1.0.16-ifname.txt"


def test_pci_address_from_the_device_path():
    assert device_path_pci_address("../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0") == (
        "0000:00:03.0"
    )
    assert device_path_pci_address(
        "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/ens1f0"
    ) == ("0000:3b:00.0")  # the NIC, not the root port above it
    assert device_path_pci_address("../../devices/virtual/net/lo") is None
    assert device_path_pci_address(None) is None


def port_files(name: str, **values: str) -> dict[str, str]:
    defaults = {
        "address": "3c:fd:fe:00:00:01",
        "type": "1",
        "operstate": "up",
        "carrier": "1",
        "mtu": "9000",
        "speed": "10000",
        "duplex": "full",
    }
    return {f"{NET}/{name}/{key}": f"{value}\n" for key, value in {**defaults, **values}.items()}


IP_JSON = json.dumps(
    [
        {"ifindex": 1, "ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00"},
        {
            "ifindex": 2,
            "ifname": "ens1f0",
            "flags": ["UP", "LOWER_UP", "SLAVE"],
            "mtu": 9000,
            "master": "bond0",
            "address": "3c:fd:fe:00:00:01",
            "link_type": "ether",
            "linkinfo": {"info_slave_kind": "bond"},
        },
        {
            "ifindex": 3,
            "ifname": "ens1f1",
            "mtu": 1500,
            "operstate": "DOWN",
            "address": "3c:fd:fe:00:00:01",
            "permaddr": "3c:fd:fe:00:00:02",
            "link_type": "ether",
            "master": "bond0",
            "linkinfo": {"info_slave_kind": "bond"},
        },
        {
            "ifindex": 4,
            "ifname": "bond0",
            "address": "3c:fd:fe:00:00:01",
            "linkinfo": {"info_kind": "bond"},
            "addr_info": [
                {
                    "family": "inet",
                    "local": "10.1.2.3",
                    "prefixlen": 24,
                    "scope": "global",
                    "dynamic": True,
                }
            ],
        },
        {
            "ifindex": 5,
            "ifname": "bond0.100",
            "link": "bond0",
            "linkinfo": {"info_kind": "vlan", "info_data": {"id": 100}},
        },
    ]
)
ETHTOOL_I = (
    "driver: i40e\nversion: 6.1.0-28-amd64\n"
    "firmware-version: 9.20 0x8000d8c5 1.3429.0\nbus-info: {}\n"
)
ETHTOOL_SETTINGS = (
    "Settings for X:\n\tSupported link modes:   10000baseSR/Full\n"
    "\t                        25000baseSR/Full\n"
    "\tSpeed: 10000Mb/s\n\tDuplex: Full\n\tPort: FIBRE\n\tLink detected: yes\n"
)


def server_capture(tmp_path, *, with_frames: bool, priv_flag_rc: int = 0):
    files = {
        **port_files("ens1f0"),
        **port_files("ens1f1", operstate="down", speed="-1", duplex="unknown", flags="0x1002"),
        "/proc/cmdline": "BOOT_IMAGE=/vmlinuz boot=live BOOTIF=01-3c-fd-fe-00-00-02\n",
    }
    del files[f"{NET}/ens1f1/carrier"]  # reading carrier fails while the port is down
    links = {
        f"{NET}/ens1f0": "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/ens1f0",
        f"{NET}/ens1f1": "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1/net/ens1f1",
        f"{NET}/ens1f0/device": "../../../0000:3b:00.0",
        f"{NET}/ens1f1/device": "../../../0000:3b:00.1",
        f"{NET}/ens1f0/device/driver": "../../../../bus/pci/drivers/i40e",
        f"{NET}/ens1f1/device/driver": "../../../../bus/pci/drivers/i40e",
        f"{NET}/bond0": "../../devices/virtual/net/bond0",
        f"{NET}/bond0.100": "../../devices/virtual/net/bond0.100",
        f"{NET}/lo": "../../devices/virtual/net/lo",
    }
    commands = [(list(network.IP_ARGV), 0, IP_JSON)]
    for name, bdf, perm in (("ens1f0", "0000:3b:00.0", "01"), ("ens1f1", "0000:3b:00.1", "02")):
        commands += [
            (["ethtool", "--set-priv-flags", name, "disable-fw-lldp", "on"], priv_flag_rc, ""),
            (["ethtool", "-i", name], 0, ETHTOOL_I.format(bdf)),
            (["ethtool", "-P", name], 0, f"Permanent address: 3c:fd:fe:00:00:{perm}\n"),
            (["ethtool", name], 0, ETHTOOL_SETTINGS),
        ]
    capture = write_capture(
        tmp_path,
        commands,
        files=files,
        dirs={NET: ["bond0", "bond0.100", "ens1f0", "ens1f1", "lo"]},
        links=links,
    )
    if with_frames:
        manifest = json.loads((capture / "manifest.json").read_text())
        (capture / "receives").mkdir()
        frames = LLDP_FRAMES.read_text().replace("n0 ", "ens1f0 ")
        (capture / "receives" / "000.txt").write_text(frames)
        manifest["receives"] = [
            {
                "interfaces": ["ens1f0"],
                "ethertype": ETH_P_LLDP,
                "seconds": 31.0,
                "duration_s": 31.0,
                "errors": [],
                "listened": ["ens1f0"],
                "frames": "receives/000.txt",
            }
        ]
        (capture / "manifest.json").write_text(json.dumps(manifest))
    return capture


def test_a_bonded_server_with_a_vlan_a_down_port_and_bootif(tmp_path):
    probe, recorder = probe_over(server_capture(tmp_path, with_frames=True), "network")
    section = network.collect(probe, lldp_seconds=31.0)
    assert_section_valid("network", section)
    assert [i.name for i in section.interfaces] == ["ens1f0", "ens1f1"]  # no bond, vlan, lo
    up, down = section.interfaces
    assert (up.pci_address, up.driver, up.firmware_version) == (
        "0000:3b:00.0",
        "i40e",
        "9.20 0x8000d8c5 1.3429.0",
    )
    assert (up.master, up.master_kind, up.speed_mbps, up.supported_max_speed_mbps) == (
        "bond0",
        "bond",
        10000,
        25000,
    )
    assert [(v.name, v.vlan_id, v.on) for v in up.vlans] == [("bond0.100", 100, "bond0")]
    # The bond gave both ports one MAC; the second's own is its permanent one, which BOOTIF names.
    assert (down.mac_address, down.permanent_mac_address) == (
        "3c:fd:fe:00:00:01",
        "3c:fd:fe:00:00:02",
    )
    assert (down.boot_interface, up.boot_interface, section.boot_mac_address) == (
        True,
        False,
        "3c:fd:fe:00:00:02",
    )
    assert (down.carrier, down.speed_mbps, down.duplex) == (None, 10000, "full")  # from ethtool
    # LLDP: only the port that is up (IFF_UP); the i40e firmware agent was turned off first.
    lldp = section.lldp
    assert lldp.listened == ["ens1f0"] and lldp.firmware_agent_disabled == ["ens1f0"]
    assert [(p.interface, p.reason) for p in lldp.not_listened] == [("ens1f1", "down")]
    assert [(n.interface, n.system_name, n.port_id) for n in lldp.neighbors] == [
        ("ens1f0", "leaf-07.rack12", "swp7")
    ]
    ran = [r.argv for r in recorder.results]
    assert ("ethtool", "--set-priv-flags", "ens1f1", "disable-fw-lldp", "on") not in ran
    assert probe.errors == [] and probe.notes == []


def test_a_capture_that_never_listened_says_lldp_is_unknown(tmp_path):
    probe, _ = probe_over(server_capture(tmp_path, with_frames=False), "network")
    section = network.collect(probe, lldp_seconds=31.0)
    assert section.lldp is None
    assert probe.notes == [
        "LLDP: not in the capture: this capture did not listen on these interfaces"
    ]


def test_lldp_off_listens_to_nothing_and_disables_nothing(tmp_path):
    probe, recorder = probe_over(server_capture(tmp_path, with_frames=True), "network")
    section = network.collect(probe, lldp_seconds=0)
    assert section.lldp is None
    assert not any("--set-priv-flags" in r.argv for r in recorder.results)


def test_without_ethtool_sysfs_still_gives_the_port(tmp_path):
    capture = write_capture(
        tmp_path,
        [],
        files=port_files("eno1"),
        dirs={NET: ["eno1"]},
        links={
            f"{NET}/eno1/device": "../../../0000:19:00.0",
            f"{NET}/eno1/device/driver": "../../../../bus/pci/drivers/igb",
        },
    )
    probe, _ = probe_over(capture, "network")
    (port,) = network.collect(probe, lldp_seconds=0).interfaces
    assert (port.driver, port.mac_address, port.speed_mbps, port.firmware_version) == (
        "igb",
        "3c:fd:fe:00:00:01",
        10000,
        None,
    )
    assert "ethtool is not installed" in probe.notes


def test_no_sys_class_net_means_no_section(tmp_path):
    probe, _ = probe_over(write_capture(tmp_path, []), "network")
    assert network.collect(probe, lldp_seconds=0) is None


def test_findings_speed_and_pcie_width_joined(tmp_path):
    probe, _ = probe_over(server_capture(tmp_path, with_frames=False), "network")
    section = network.collect(probe, lldp_seconds=0)
    device = lspci.PciDevice(
        **{
            f: None
            for f in lspci.PciDevice.__slots__
            if f not in ("address", "kernel_modules", "extra")
        },
        address="0000:3b:00.0",
        kernel_modules=[],
        extra={},
    )
    narrow = device.__class__(
        **{
            **{f: getattr(device, f) for f in device.__slots__},
            "current_link_width": 4,
            "max_link_width": 8,
        }
    )
    pcie = lspci.Pcie(devices=[narrow], device_count=1, source="lspci")
    found = network.findings({"network": section, "pcie": pcie})
    assert found == [
        Finding(
            source="network",
            severity="warning",
            subject="ens1f0",
            message="link runs at 10000 Mb/s of the 25000 Mb/s the port supports",
        ),
        Finding(
            source="network",
            severity="warning",
            subject="ens1f0",
            message="NIC on a PCIe link of x4 of x8 (0000:3b:00.0): it cannot reach its line rate",
        ),
    ]
    # The document's JSON form reads the same, and odd shapes never raise.
    from bee.serialize import to_jsonable

    assert network.findings({"network": to_jsonable(section), "pcie": to_jsonable(pcie)}) == found
    for odd in (
        None,
        [],
        "x",
        {"interfaces": "x"},
        {"interfaces": [None, 1]},
        {"infiniband": [{"ports": 5}]},
    ):
        assert network.findings({"network": odd, "pcie": odd}) == []


def test_summary_line(tmp_path):
    from bee.serialize import to_jsonable

    probe, _ = probe_over(server_capture(tmp_path, with_frames=True), "network")
    section = to_jsonable(network.collect(probe, lldp_seconds=31.0))
    assert network.summary_line(section) == (
        "Network: 2 ports (1 link up), booted from ens1f1; LLDP: 1 neighbour"
    )
    for odd in (None, [], "x", {"interfaces": "x", "lldp": 3}, {"infiniband": [{"ports": [1]}]}):
        line = network.summary_line(odd)
        assert line is None or line.startswith("Network: 0 ports")


def test_firmware_without_the_lldp_flag_is_a_note_not_an_error(tmp_path):
    probe, _ = probe_over(server_capture(tmp_path, with_frames=True, priv_flag_rc=1), "network")
    section = network.collect(probe, lldp_seconds=31.0)
    assert section.lldp.firmware_agent_disabled == [] and probe.errors == []
    (note,) = probe.notes
    assert note.startswith("ens1f0: i40e firmware LLDP agent not turned off: ethtool")


# -- the QEMU guest of vm_test's hardware (fixtures/capture-qemu-network.py) ------------------

GUEST = FIXTURES / "captures" / "qemu-q35-network-bee-audit"


def test_the_qemu_guest_two_e1000e_by_the_macs_of_hardware_toml_and_bootif():
    from bee.capture import ReplayRunner
    from bee.probe import Probe
    from buildtools.vm import qemu

    hw = qemu.load_hardware()
    probe = Probe(ReplayRunner(GUEST), "network")
    section = network.collect(probe)
    assert_section_valid("network", section)
    ports = {p.mac_address: p for p in section.interfaces}
    assert sorted(ports) == sorted(n.mac for n in hw.nics)
    first = ports[hw.nics[0].mac]
    assert first.boot_interface and section.boot_mac_address == hw.nics[0].mac
    for port in ports.values():
        assert (port.driver, port.firmware_version, port.permanent_mac_address) == (
            "e1000e",
            "2.1-0",
            port.mac_address,
        )
        assert (port.carrier, port.speed_mbps, port.supported_max_speed_mbps) == (True, 1000, 1000)
        assert port.pci_address in ("0000:01:00.0", "0000:02:00.0")
    # LLDP listened on both (QEMU's network sends none); the capture's frames replay at once.
    assert sorted(section.lldp.listened) == sorted(p.name for p in ports.values())
    assert section.lldp.neighbors == [] and section.lldp.window_s == 3.0
    # That guest's `ip` was busybox's applet (a capture-script slip, fixed since): recorded as
    # an error, and the ports are still there from sysfs and ethtool.
    assert probe.errors and probe.errors[0].startswith("ip -d -j addr show: exit 1")
    assert network.findings({"network": section}) == []


def test_check_network_on_the_guest(validate_document):
    from bee.audit import run_audit
    from bee.capture import ReplayRunner
    from buildtools.vm import checks, qemu

    hw = qemu.load_hardware()
    document = json.loads(json.dumps(run_audit(ReplayRunner(GUEST), mode="replay")))
    validate_document(document)
    pcie_nics = [
        d
        for d in document["pcie"]["devices"]
        if (d["vendor_id"], d["device_id"]) == ("8086", "10d3")
    ]
    assert len(pcie_nics) == 2  # the join: pcie lists the two e1000e functions
    results = checks.check_network(document, hw)
    assert [r for r in results if not r[1]] == [] and len(results) == 1 + 3 * len(hw.nics)
    port = document["network"]["interfaces"][1]
    port["mac_address"] = port["permanent_mac_address"] = "52:54:00:00:00:99"
    failed = [r[0] for r in checks.check_network(document, hw) if not r[1]]
    assert failed == [f"network port {hw.nics[1].mac}"]
