"""ip -j addr show: this machine, a netns with a bridge and a veth pair, the QEMU guest."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.tools.ip import parse
from conftest import FIXTURES, REALWORLD, REPO, mangle

FIXTURE_FILES = sorted(
    p for p in (FIXTURES / "ip-addr").glob("*.json") if ".expected." not in p.name
)
GUEST = REPO / "tests" / "vm" / "qemu-q35" / "ip-j-addr-second-nic-no-dhcp.json"
REALWORLD_FILES = sorted((REALWORLD / "ip-json").glob("*"))
BOUNDED = timedelta(seconds=20)


def by_name(text: str):
    return {link.name: link for link in parse(text)}


def test_this_machine_with_d():
    links = by_name((FIXTURES / "ip-addr" / "firecracker-virtio-net-d.json").read_text())
    eth0 = links["eth0"]
    assert (eth0.address, eth0.mtu, eth0.operstate, eth0.link_type) == (
        "02:fc:00:00:00:01",
        1400,
        "UP",
        "ether",
    )
    assert (eth0.kind, eth0.parent_bus, eth0.parent_device) == (None, "virtio", "virtio2")
    assert [(a.family, a.address, a.prefix_length, a.scope) for a in eth0.addresses] == [
        ("inet", "192.0.2.2", 24, "global"),
        ("inet6", "fd00::2", 64, "global"),
        ("inet6", "fe80::fc:ff:fe00:1", 64, "link"),
    ]
    assert links["ifb0"].kind == "ifb" and links["lo"].address is None  # all-zero MAC


def test_bridge_and_veth_ports_in_a_namespace():
    links = by_name((FIXTURES / "ip-addr" / "netns-veth-bridge-d.json").read_text())
    assert links["br0"].kind == "bridge"
    assert links["br0"].addresses[0].address == "198.51.100.7"
    assert links["n0"].kind == "veth" and links["n0"].master is None


def test_the_qemu_guest_without_d():
    links = by_name(GUEST.read_text())
    assert links["enp3s0"].address == "52:54:00:be:e0:01"
    assert links["enp4s0"].address == "52:54:00:be:e0:02"
    assert links["enp3s0"].addresses[0].dynamic is True  # the DHCP lease
    assert links["enp3s0"].kind is None and links["enp3s0"].parent_bus is None


def test_vlan_and_bond_port_fields():
    text = json.dumps(
        [
            {
                "ifname": "eno1",
                "master": "bond0",
                "permaddr": "3C:FD:FE:00:00:01",
                "address": "3c:fd:fe:00:00:02",
                "linkinfo": {"info_slave_kind": "bond"},
            },
            {
                "ifname": "bond0.100",
                "link": "bond0",
                "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100}},
            },
            {"ifname": "eno1"},
        ]
    )
    links = parse(text)
    assert [link.name for link in links] == ["eno1", "bond0.100"]  # a repeated name once
    eno1, vlan = links
    assert (eno1.master, eno1.port_kind, eno1.permanent_address) == (
        "bond0",
        "bond",
        "3c:fd:fe:00:00:01",
    )
    assert (vlan.kind, vlan.link, vlan.vlan_id) == ("vlan", "bond0", 100)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{}",
        "[1, null, []]",
        "[" * 100_000,
        '[{"ifname": "x", "mtu": "' + "9" * 5000 + '"}]',
    ],
)
def test_anything_else_gives_no_links_or_no_values(text):
    links = parse(text)
    assert all(link.mtu is None for link in links)


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/ip-json is absent")
def test_realworld_json_outputs():
    json_files = [p for p in REALWORLD_FILES if p.suffix == ".json"]
    results = {p.name: parse(p.read_text(errors="replace")) for p in REALWORLD_FILES}
    assert all(results[p.name] for p in json_files if p.read_text().lstrip().startswith("["))
    assert all(results[p.name] == [] for p in REALWORLD_FILES if p.suffix == ".txt")  # text form


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=BOUNDED)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    parse(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "ifname",
                    "mtu",
                    "address",
                    "addr_info",
                    "linkinfo",
                    "info_kind",
                    "info_data",
                    "id",
                    "family",
                    "local",
                    "flags",
                    "master",
                    "permaddr",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=BOUNDED)
@given(st.lists(JSONISH, max_size=5))
def test_never_raises_on_json_of_any_shape(value):
    parse(json.dumps(value))


@settings(
    max_examples=30, deadline=BOUNDED, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", [*FIXTURE_FILES, GUEST], ids=lambda p: p.name)
def test_never_raises_on_real_outputs_with_lines_dropped_duplicated_or_cut(path, data):
    pretty = json.dumps(json.loads(path.read_text()), indent=1)  # one value per line to damage
    parse(mangle(data, pretty))
