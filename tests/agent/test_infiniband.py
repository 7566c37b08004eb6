"""/sys/class/infiniband: value parsers, a tree on disk read through the real runner, the
realworld trees (a gpud H100 node, a Prometheus ttar archive), and the IB findings."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee.probe import Probe
from bee.runner import SystemRunner
from bee.tools import infiniband, network
from bee.tools.infiniband import parse_number, parse_rate_gbps, parse_state, port_guid_from_gid
from conftest import REALWORLD

GPUD_TREE = REALWORLD / "infiniband" / "leptonai_gpud__sys-class-infiniband-h100.0"
TTAR = REALWORLD / "infiniband" / "prometheus_node_exporter__sys.ttar-class-infiniband.ttar"
BOUNDED = timedelta(seconds=20)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("4: ACTIVE", "ACTIVE"),
        ("1: DOWN", "DOWN"),
        ("5: LinkUp", "LinkUp"),
        ("ACTIVE", "ACTIVE"),
        ("", None),
        ("3:", None),
        (None, None),
    ],
)
def test_state(text, state):
    assert parse_state(text) == state


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("400 Gb/sec (4X NDR)", 400.0),
        ("2.5 Gb/sec (1X SDR)", 2.5),
        ("100 Gb/sec (2X HDR)", 100.0),
        ("N/A", None),
        ("nan Gb/sec", None),
        ("inf Gb/sec", None),
        ("-1 Gb/sec", None),
        (None, None),
    ],
)
def test_rate(text, rate):
    assert parse_rate_gbps(text) == rate


def test_lid_and_guid():
    assert (parse_number("0x12"), parse_number("7"), parse_number("0xzz"), parse_number("")) == (
        18,
        7,
        None,
        None,
    )
    assert port_guid_from_gid("fe80:0000:0000:0000:0c42:a103:0065:a0e4") == "0c42:a103:0065:a0e4"
    assert port_guid_from_gid("fe80:0000:0000:0000:0000:0000:0000:0000") is None
    assert port_guid_from_gid("fe80::1") is None


def write_tree(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    for name, target in (links or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)
    return root


def test_an_ib_port_and_a_roce_port_read_through_the_real_runner(tmp_path):
    root = write_tree(
        tmp_path,
        {
            "mlx5_0/hca_type": "MT4129",
            "mlx5_0/fw_ver": "28.39.1002",
            "mlx5_0/board_id": "MT_0000000838",
            "mlx5_0/node_guid": "0c42:a103:0065:a0e4",
            "mlx5_0/sys_image_guid": "0c42:a103:0065:a0e4",
            "mlx5_0/ports/1/state": "4: ACTIVE",
            "mlx5_0/ports/1/phys_state": "5: LinkUp",
            "mlx5_0/ports/1/rate": "400 Gb/sec (4X NDR)",
            "mlx5_0/ports/1/link_layer": "InfiniBand",
            "mlx5_0/ports/1/lid": "0x1a",
            "mlx5_0/ports/1/sm_lid": "0x1",
            "mlx5_0/ports/1/gids/0": "fe80:0000:0000:0000:0c42:a103:0065:a0e4",
            "mlx5_1/hca_type": "MT4125",
            "mlx5_1/node_guid": "0000:0000:0000:0000",
            "mlx5_1/ports/1/state": "1: DOWN",
            "mlx5_1/ports/1/phys_state": "3: Disabled",
            "mlx5_1/ports/1/link_layer": "Ethernet",
            "mlx5_1/ports/1/gid_attrs/ndevs/0": "enp59s0f1np1",
        },
        {"mlx5_0/device": "../../../0000:3b:00.0", "mlx5_1/device": "../../../0000:3b:00.1"},
    )
    devices = infiniband.read_devices(Probe(SystemRunner(), "network"), str(root))
    ib, roce = devices
    assert (ib.name, ib.hca_type, ib.firmware_version, ib.board_id, ib.pci_address) == (
        "mlx5_0",
        "MT4129",
        "28.39.1002",
        "MT_0000000838",
        "0000:3b:00.0",
    )
    (port,) = ib.ports
    assert (port.state, port.physical_state, port.rate_gbps, port.lid, port.sm_lid) == (
        "ACTIVE",
        "LinkUp",
        400.0,
        26,
        1,
    )
    assert port.port_guid == "0c42:a103:0065:a0e4" and ib.node_guid == "0c42:a103:0065:a0e4"
    assert roce.node_guid is None and roce.ports[0].netdev == "enp59s0f1np1"
    # Findings: only the InfiniBand port that is not Active; a RoCE port is its netdev's.
    down = replace(port, state="INIT", physical_state="LinkUp")
    network_section = network.Network(
        interfaces=[],
        interface_count=0,
        boot_mac_address=None,
        lldp=None,
        infiniband=[ib, roce, replace(ib, name="mlx5_2", ports=[down])],
    )
    sections = {"network": network_section}
    (finding,) = network.findings(sections)
    assert (finding.subject, finding.source) == ("mlx5_2/1", "network")
    assert "INIT" in finding.message and "LinkUp" in finding.message


def test_no_rdma_driver_means_none(tmp_path):
    assert (
        infiniband.read_devices(Probe(SystemRunner(), "network"), str(tmp_path / "absent")) is None
    )


def unpack_ttar(archive: Path, into: Path) -> Path:
    """Prometheus' ttar text archive: `Directory: X`, `Path: X` + `Lines: N` + N lines."""
    lines = archive.read_text(errors="replace").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("Directory: "):
            (into / line[11:]).mkdir(parents=True, exist_ok=True)
        elif line.startswith("Path: ") and lines[index + 1].startswith("Lines: "):
            count = int(lines[index + 1][7:])
            path = into / line[6:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines[index + 2 : index + 2 + count]) + "\n")
            index += 1 + count
        index += 1
    return into


@pytest.mark.skipif(not GPUD_TREE.is_dir(), reason="../shared/realworld/infiniband is absent")
def test_realworld_trees(tmp_path):
    probe = Probe(SystemRunner(), "network")
    gpud = infiniband.read_devices(probe, str(GPUD_TREE))
    assert len(gpud) == 9 and all(d.firmware_version for d in gpud)
    hca = {d.name: d for d in gpud}["mlx5_4"]
    assert (hca.hca_type, hca.board_id) == ("MT4129", "MT_0000000838")
    assert (hca.ports[0].state, hca.ports[0].rate_gbps, hca.ports[0].link_layer) == (
        "ACTIVE",
        400.0,
        "InfiniBand",
    )
    ttar = infiniband.read_devices(probe, str(unpack_ttar(TTAR, tmp_path) / "sys/class/infiniband"))
    assert {d.name for d in ttar} == {"i40iw0", "mlx4_0"}
    assert [p.number for p in {d.name: d for d in ttar}["mlx4_0"].ports] == [1, 2]
    every = gpud + ttar
    firmware = sum(1 for d in every if d.firmware_version)
    guids = sum(1 for d in every for p in d.ports if p.port_guid) + sum(
        1 for d in every if d.node_guid
    )
    print(f"realworld infiniband: {len(every)} devices, {firmware} with firmware, {guids} GUIDs")


@settings(max_examples=300, deadline=BOUNDED)
@given(st.text(max_size=200) | st.none())
def test_value_parsers_never_raise(text):
    parse_state(text)
    parse_rate_gbps(text)
    parse_number(text)
    port_guid_from_gid(text)
