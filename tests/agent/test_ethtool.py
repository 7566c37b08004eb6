"""ethtool -i, -P and plain settings: this machine's virtio NIC, the realworld set, damage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.macaddr import normalize_mac
from bee.tools.ethtool import (
    link_mode_speed_mbps,
    parse_driver_info,
    parse_permanent_address,
    parse_settings,
)
from conftest import FIXTURES, REALWORLD, mangle

CASE = "firecracker-virtio-net.txt"
FIXTURE_FILES = sorted(
    p
    for tool in ("ethtool", "ethtool-i", "ethtool-permaddr")
    for p in (FIXTURES / tool).glob("*.txt")
    if ".expected." not in p.name
)
REALWORLD_FILES = sorted((REALWORLD / "ethtool").glob("*.txt"))
PARSERS = (parse_driver_info, parse_permanent_address, parse_settings)
BOUNDED = timedelta(seconds=20)  # generous: catches a hang or a quadratic blow-up, not jitter


def test_this_machines_virtio_nic():
    info = parse_driver_info((FIXTURES / "ethtool-i" / CASE).read_text())
    assert (info.driver, info.driver_version, info.bus_info) == (
        "virtio_net",
        "1.0.0",
        "0000:00:03.0",
    )
    assert info.firmware_version is None and info.firmware_psid is None
    permanent = parse_permanent_address((FIXTURES / "ethtool-permaddr" / CASE).read_text())
    assert permanent == "02:fc:00:00:00:01"
    link = parse_settings((FIXTURES / "ethtool" / CASE).read_text())
    # "Speed: Unknown!", "Duplex: Unknown! (255)", "Supported link modes:   Not reported"
    assert (link.speed_mbps, link.duplex, link.supported_max_speed_mbps) == (None, None, None)
    assert link.supported_link_modes == [] and link.link_detected is True
    assert link.port == "Other" and link.auto_negotiation is False


def test_link_modes_continue_on_lines_without_a_colon():
    text = (
        "Settings for enp1s0:\n"
        "\tSupported link modes:   1000baseT/Full\n"
        "\t                        25000baseSR/Full 100000baseSR4/Full\n"
        "\tSupported pause frame use: Symmetric\n"
        "\tAdvertised link modes:  25000baseSR/Full\n"
        "\tSpeed: 25000Mb/s\n"
        "\tDuplex: Full\n"
        "\tPort: FIBRE\n"
        "\tLink detected: yes\n"
    )
    link = parse_settings(text)
    assert link.supported_link_modes == ["1000baseT/Full", "25000baseSR/Full", "100000baseSR4/Full"]
    assert (link.supported_max_speed_mbps, link.speed_mbps, link.duplex) == (100000, 25000, "full")
    assert link.advertised_link_modes == ["25000baseSR/Full"] and link.port == "FIBRE"


def test_mellanox_firmware_carries_the_psid():
    info = parse_driver_info("driver: mlx5_core\nfirmware-version: 28.39.1002 (MT_0000000838)\n")
    assert (info.firmware_version, info.firmware_psid) == (
        "28.39.1002 (MT_0000000838)",
        "MT_0000000838",
    )


@pytest.mark.parametrize(
    ("mode", "speed"),
    [
        ("10baseT/Half", 10),
        ("2500baseX/Full", 2500),
        ("400000baseCR4/Full", 400000),
        ("Not", None),
        ("base/Full", None),
        ("99999999baseT/Full", None),
        ("²baseT", None),
    ],
)
def test_link_mode_speed(mode, speed):
    assert link_mode_speed_mbps(mode) == speed


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("52:54:00:BE:E0:01", "52:54:00:be:e0:01"),
        ("52-54-00-be-e0-01", "52:54:00:be:e0:01"),
        ("00:00:00:00:00:00", None),
        ("52:54:00:be:e0", None),
        ("zz:54:00:be:e0:01", None),
        (
            "80:00:02:08:fe:80:00:00:00:00:00:00:0c:42:a1:03:00:65:a0:e4",
            "80:00:02:08:fe:80:00:00:00:00:00:00:0c:42:a1:03:00:65:a0:e4",
        ),
        ("", None),
    ],
)
def test_mac_normal_form(text, mac):
    assert normalize_mac(text) == mac


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/ethtool is absent")
def test_realworld_outputs_parse_and_say_what_a_person_reads_in_them():
    """Every file through every parser; each kind of output yields its fields."""
    drivers, macs, firmware, speeds = {}, {}, {}, {}
    for path in REALWORLD_FILES:
        text = path.read_text(errors="replace")
        for parser in PARSERS:
            parser(text)
        info, link = parse_driver_info(text), parse_settings(text)
        drivers[path.name] = info.driver
        firmware[path.name] = info.firmware_version
        macs[path.name] = parse_permanent_address(text)
        speeds[path.name] = link.speed_mbps
    driver_files = [n for n in drivers if "-i" in n or "driver" in n]
    assert len(driver_files) == 6 and all(drivers[n] for n in driver_files)
    assert [macs[n] for n in macs if "_-P_" in n] == ["52:54:00:e2:28:a3"]
    assert firmware["unknown_index-53326109341__ethtool-i-enp1s0f0np0-hpe-cx4lx.txt"] == (
        "14.32.1010 (HP_2420110034)"
    )
    assert speeds["kellyjonbrazil_jc__ethtool--default2.txt"] == 40000
    assert (
        parse_settings(
            (REALWORLD / "ethtool" / "kellyjonbrazil_jc__ethtool--default2.txt").read_text()
        ).supported_max_speed_mbps
        == 56000
    )


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=BOUNDED)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    for parser in PARSERS:
        parser(text)


@settings(
    max_examples=30, deadline=BOUNDED, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(path, data):
    text = mangle(data, path.read_text())
    for parser in PARSERS:
        parser(text)


@settings(max_examples=10, deadline=BOUNDED, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["1000baseT/Full ", "x", ":", " : ", "Supported link modes: ", "\t"]),
    st.integers(20_000, 60_000),
)
def test_adversarial_input_is_bounded_in_time(piece, repeat):
    """Long runs of continuation lines, colons or link modes: one pass, no quadratic joins."""
    for text in (
        piece * repeat,
        (piece + "\n") * repeat,
        "Supported link modes: a\n" + (piece + "\n") * repeat,
    ):
        for parser in PARSERS:
            parser(text)
