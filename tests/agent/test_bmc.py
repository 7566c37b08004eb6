"""The bmc section: ipmitool mc info, lan print, sel elist, sdr elist, and what they find."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.tools import bmc, ipmitool_lan, ipmitool_mc, ipmitool_sdr, ipmitool_sel
from conftest import FIXTURES, REALWORLD, assert_section_valid, mangle, probe_over, write_capture

PARSERS = {
    "ipmitool-lan": ipmitool_lan.parse,
    "ipmitool-mc-info": ipmitool_mc.parse,
    "ipmitool-sel": ipmitool_sel.parse,
    "ipmitool-sdr": ipmitool_sdr.parse,
}


def files(root, tool: str) -> list:
    return sorted(p for p in (root / tool).glob("*.txt") if ".expected." not in p.name)


FIXTURE_CASES = [(tool, path) for tool in PARSERS for path in files(FIXTURES, tool)]
REALWORLD_CASES = [(tool, path) for tool in PARSERS for path in files(REALWORLD, tool)]
QEMU_SEL = FIXTURES / "ipmitool-sel" / "qemu-bmc-sim-events-and-watchdog.txt"
QEMU_SDR = FIXTURES / "ipmitool-sdr" / "qemu-bmc-sim-ps2-failed.txt"
QEMU_MC = FIXTURES / "ipmitool-mc-info" / "qemu-bmc-sim-supermicro.txt"
QEMU_LAN = FIXTURES / "ipmitool-lan" / "qemu-bmc-sim-no-lan-parameters.txt"
ADVERSARIAL = [
    "|" * 50_000,
    " " * 50_000 + "x",
    ":" * 50_000,
    "1 |" + " |" * 20_000,
    "Link 0:" * 10_000,
    ("a" * 5000 + " | ") * 40,
    "\n".join(
        ["   1 | 01/01/2020 | 00:00:00 | Memory #0x1 | Uncorrectable ECC | Asserted"] * 20_000
    ),
]


# -- mc info ---------------------------------------------------------------------------------


def test_mc_info_of_the_qemu_bmc_names_supermicro_and_its_firmware():
    identity = ipmitool_mc.parse(QEMU_MC.read_text())
    assert identity.error is None
    assert (identity.manufacturer_id, identity.firmware_revision) == (10876, "1.74")
    assert (identity.device_id, identity.product_id, identity.ipmi_version) == (32, 6929, "2.0")
    assert identity.manufacturer_name == "Super Micro Computer Inc."  # ipmitool's IANA list
    assert identity.product_name == "X11SCH-LN4F"  # ipmitool's own table for 10876/0x1b11
    assert "SEL Device" in identity.additional_device_support


@pytest.mark.skipif(not (REALWORLD / "ipmitool-mc-info").is_dir(), reason="no ../shared/realworld")
def test_mc_info_from_other_vendors_and_the_no_device_error():
    folder = REALWORLD / "ipmitool-mc-info"
    dell = ipmitool_mc.parse(
        (folder / "unknown_index-40640276154__mtcAgent_bmc_info-dell-r730.txt").read_text()
    )
    assert (dell.manufacturer_name, dell.firmware_revision, dell.product_id) == (
        "DELL Inc",
        "2.70",
        256,
    )
    assert dell.product_name is None and dell.placeholders == {"product_name": "Unknown (0x100)"}
    assert dell.aux_firmware_revision == ["0x00", "0x2d", "0x46", "0x46"]
    none = ipmitool_mc.parse(
        (folder / "canonical_hotsos__vault-ipmitool_mc_info-no-device.txt").read_text()
    )
    assert none.error.startswith("Could not open device") and none.device_id is None


# -- lan print -------------------------------------------------------------------------------


def test_lan_print_without_lan_parameters_is_an_error_not_an_address():
    channel = ipmitool_lan.parse(QEMU_LAN.read_text(), channel=1)
    assert channel.error and channel.mac_address is None and channel.ip_address is None


@pytest.mark.skipif(not (REALWORLD / "ipmitool-lan").is_dir(), reason="no ../shared/realworld")
def test_lan_print_mac_address_source_gateway_vlan():
    folder = REALWORLD / "ipmitool-lan"
    lan = ipmitool_lan.parse((folder / "Solvik_netbox-agent__ipmi-py-docstring.txt").read_text())
    assert (lan.mac_address, lan.ip_address, lan.subnet_mask) == (
        "98:f2:b3:f0:ee:1e",
        "10.192.2.1",
        "255.255.240.0",
    )
    assert (lan.ip_address_source, lan.default_gateway_ip) == ("DHCP Address", "10.192.2.254")
    assert (lan.vlan_enabled, lan.vlan_id, lan.cipher_suites) == (False, None, [0, 1, 2, 3])
    unset = ipmitool_lan.parse((folder / "glpi-project_glpi-agent__sample1.txt").read_text())
    assert unset.ip_address is None and unset.placeholders["ip_address"] == "0.0.0.0"
    assert unset.default_gateway_mac is None  # all zeros
    assert "Callback" in unset.fields["Auth Type Enable"]


def test_lan_print_static_address_and_vlan():
    text = (FIXTURES / "ipmitool-lan" / "handwritten-static-vlan-ipmitool-1.8.19.txt").read_text()
    lan = ipmitool_lan.parse(text, channel=1)
    assert (lan.mac_address, lan.ip_address, lan.ip_address_source) == (
        "3c:ec:ef:12:34:56",
        "10.20.30.41",
        "Static Address",
    )
    assert (lan.vlan_enabled, lan.vlan_id, lan.default_gateway_mac) == (True, 120, None)
    assert lan.placeholders == {
        "default_gateway_mac": "00:00:00:00:00:00",
        "backup_gateway_ip": "0.0.0.0",
    }
    assert lan.cipher_suites[-1] == 17 and lan.error is None


# -- sel -------------------------------------------------------------------------------------


def test_qemu_sel_holds_the_events_the_guest_logged_and_the_failed_supply():
    sel = ipmitool_sel.parse(QEMU_SEL.read_text())
    assert sel.unparsed == [] and sel.entry_count >= 8
    by_event = {(e.sensor, e.event, e.direction): e for e in sel.entries}
    ps2 = by_event[("Power Supply PS2 Status", "Failure detected", "asserted")]
    assert (ps2.sensor_type, ps2.severity) == ("Power Supply", "critical")
    assert ps2.timestamp and ps2.timestamp[:2] == "20"
    assert by_event[("Memory DIMM Status", "Uncorrectable ECC", "asserted")].severity == "critical"
    assert (
        by_event[("Power Supply PS1 Status", "Power Supply AC lost", "deasserted")].severity is None
    )
    findings = {f.subject: f for f in ipmitool_sel.findings(sel)}
    assert findings["Power Supply PS2 Status"].severity == "critical"
    assert findings["Power Supply PS1 Status"].severity == "info"  # AC came back
    assert findings["Fan FAN Redundancy"].message.startswith("SEL: Redundancy Lost")
    assert {f.persistence for f in findings.values()} == {"persistent"}
    assert all(f.raw and "|" in f.raw for f in findings.values())


def test_sel_variants_pre_init_hex_ids_zone_reading_field_and_pipe_in_the_event():
    text = "\n".join(
        [
            "   1 |  Pre-Init  |0000000049| Processor CPU0_Status | Presence detected | Asserted",
            "  3a | 12/14/22 | 11:09:44 PM CET | Memory #0x88 | Correctable ECC (CPU0_G1) "
            "| Asserted",
            "  fe3c | 01/02/2020 | 01:02:03 | Temperature CPU1 | Upper Critical going high "
            "| Asserted | Reading 96 > Threshold 95 degrees C",
            "  40 | 03/04/2021 | 05:06:07 | Memory "
            "| Uncorrectable ECC (UnCorrectable ECC |  DIMMD7)"
            " | Asserted",
            "  41 | Linux kernel panic: Fatal machi",
        ]
    )
    pre, ecc, temp, dimm, oem = ipmitool_sel.parse(text).entries
    assert (pre.pre_init, pre.pre_init_seconds, pre.timestamp) == (True, 49, None)
    assert (ecc.record_id, ecc.timestamp, ecc.severity) == ("3a", "2022-12-14T23:09:44", "warning")
    assert (temp.extra, temp.severity, temp.sensor_type) == (
        "Reading 96 > Threshold 95 degrees C",
        "critical",
        "Temperature",
    )
    assert dimm.event == "Uncorrectable ECC (UnCorrectable ECC | DIMMD7)"
    assert dimm.severity == "critical" and dimm.direction == "asserted"
    assert oem.event == "Linux kernel panic: Fatal machi" and oem.severity is None


def test_sel_csv_and_empty():
    csv = ipmitool_sel.parse(
        "5,05/27/2014,21:23:24,Power Supply #0x51,Power Supply AC lost,Asserted"
    )
    [entry] = csv.entries
    assert (entry.sensor_type, entry.severity, entry.timestamp) == (
        "Power Supply",
        "critical",
        "2014-05-27T21:23:24",
    )
    empty = ipmitool_sel.parse("SEL has no entries\n")
    assert empty.empty and empty.entries == []


@pytest.mark.parametrize(
    ("sensor_type", "event", "severity"),
    [
        ("Power Supply", "Failure detected ()", "critical"),
        ("Power Unit", "Redundancy Lost", "critical"),
        ("Memory", "Correctable ECC logging limit reached", "warning"),
        ("Processor", "IERR", "critical"),
        ("Processor", "Presence detected", None),
        ("Drive Slot / Bay", "Drive Fault", "critical"),
        ("Fan", "Lower Non-critical going low", "warning"),
        ("Fan", "Lower Critical going low", "critical"),
        ("System Boot Initiated", "Initiated by warm reset", None),
    ],
)
def test_event_classification(sensor_type, event, severity):
    assert ipmitool_sel.classify_event(sensor_type, event) == severity


# -- sdr -------------------------------------------------------------------------------------


def test_qemu_sdr_shows_ps2_failed_and_the_absent_temperature_reading():
    sensors = {s.name: s for s in ipmitool_sdr.parse(QEMU_SDR.read_text()).sensors}
    ps2 = sensors["PS2 Status"]
    assert (ps2.kind, ps2.entity_id, ps2.sensor_number) == ("power_supply", 10, 0)
    assert "Failure detected" in ps2.states and ps2.severity == "critical"
    assert sensors["PS1 Status"].severity is None
    temp = sensors["CPU1 Temp"]
    assert (temp.kind, temp.readable, temp.severity) == ("temperature", False, None)
    [finding] = ipmitool_sdr.findings(ipmitool_sdr.parse(QEMU_SDR.read_text()))
    assert (finding.subject, finding.severity, finding.persistence) == (
        "PS2 Status",
        "critical",
        "current",
    )


def test_sdr_threshold_states_and_the_three_and_ten_column_layouts():
    text = "\n".join(
        [
            "FAN2             | 42h | cr  | 29.2 | 300 RPM",
            "Inlet Temp       | 04h | nc  |  7.1 | 41 degrees C",
            "DIMMB1 Temp      | B4h | ns  | 32.68 | No Reading",
            "Temp 1           | 20 degrees C      | ok",
            "PS 12V           | 12.152     | Volts      | ok    | 10.602    | 10.850    | 11.160 "
            "   | 12.834    | 13.144    | 13.392",
        ]
    )
    fan, inlet, dimm, temp1, volts = ipmitool_sdr.parse(text).sensors
    assert (fan.kind, fan.reading, fan.severity) == ("fan", 300.0, "critical")
    assert (inlet.kind, inlet.severity, inlet.sensor_number) == ("temperature", "warning", 4)
    assert (dimm.readable, dimm.severity, dimm.entity_instance) == (False, None, 68)
    assert (temp1.reading, temp1.unit) == (20.0, "degrees C")
    assert (volts.kind, volts.reading, volts.status) == ("voltage", 12.152, "ok")


# -- every parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "path"), FIXTURE_CASES, ids=lambda v: getattr(v, "name", v))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(tool, path, data):
    PARSERS[tool](mangle(data, path.read_text()))


@pytest.mark.parametrize("tool", sorted(PARSERS))
@settings(max_examples=100)
@given(text=st.text(max_size=600))
def test_never_raises_on_arbitrary_text(tool, text):
    PARSERS[tool](text)


@pytest.mark.parametrize("tool", sorted(PARSERS))
@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_long_lines_parse(tool, text):
    # Linear-time parsing (no regular expressions at all here); `nox -s bench` times them.
    PARSERS[tool](text)


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="no ../shared/realworld")
@pytest.mark.parametrize(("tool", "path"), REALWORLD_CASES, ids=lambda v: getattr(v, "name", v))
def test_realworld_outputs_parse(tool, path):
    result = PARSERS[tool](path.read_text(errors="replace"))
    if tool == "ipmitool-sel":
        assert result.entries or result.empty
    elif tool == "ipmitool-sdr":
        assert result.sensors and not result.unparsed
    elif tool == "ipmitool-lan":
        assert result.mac_address and result.error is None
    elif "no-device" not in path.name:
        assert result.firmware_revision and result.manufacturer_id


# -- the collector ---------------------------------------------------------------------------


def capture_with_bmc(tmp_path, *, lan: str, sel: str, sdr: str, mc: str):
    commands = [
        (list(bmc.MC_INFO_ARGV), 0, mc),
        (["ipmitool", "lan", "print", "1"], 0, lan),
        (["ipmitool", "lan", "print", "2"], 1, "", "Invalid channel 2\n"),
        (["ipmitool", "lan", "print", "3"], 1, "", "Invalid channel 3\n"),
        (["ipmitool", "lan", "print", "8"], 1, "", "Invalid channel 8\n"),
        (list(bmc.SEL_ARGV), 0, sel),
        (list(bmc.SDR_ARGV), 0, sdr),
    ]
    return write_capture(tmp_path / "cap", commands, dirs={"/dev": ["ipmi0", "null"]})


@pytest.mark.skipif(not (REALWORLD / "ipmitool-lan").is_dir(), reason="no ../shared/realworld")
def test_collect_replays_every_command_and_finds_the_failures(tmp_path):
    lan = (REALWORLD / "ipmitool-lan" / "criteo_hwbench__1818-stdout.txt").read_text()
    capture = capture_with_bmc(
        tmp_path,
        lan=lan,
        sel=QEMU_SEL.read_text(),
        sdr=QEMU_SDR.read_text(),
        mc=QEMU_MC.read_text(),
    )
    probe, _ = probe_over(capture, "bmc")
    section = bmc.collect(probe)
    assert probe.errors == []
    assert [c.channel for c in section.lan_channels] == [1]
    assert section.lan_channels[0].mac_address == "6c:3c:8c:73:4c:6e"
    assert section.identity.firmware_revision == "1.74"
    assert_section_valid("bmc", section)
    found = bmc.findings({"bmc": section})
    critical = {f.subject for f in found if f.severity == "critical"}
    assert {"PS2 Status", "Power Supply PS2 Status", "Memory DIMM Status"} <= critical
    from bee.serialize import to_jsonable

    line = bmc.summary_line(to_jsonable(section))
    assert line == (
        "BMC: Super Micro Computer Inc. firmware 1.74; 10.168.97.137 6c:3c:8c:73:4c:6e; "
        "SEL 9 entries; 8 sensors, 1 failing"
    )


def test_without_an_ipmi_device_the_section_is_null_and_nothing_runs(tmp_path):
    capture = write_capture(tmp_path / "cap", [], dirs={"/dev": ["null"]})
    probe, recorder = probe_over(capture, "bmc")
    assert bmc.collect(probe) is None
    assert recorder.results == [] and probe.errors == []


def test_a_sel_that_cannot_be_read_is_an_error_not_an_empty_log(tmp_path):
    commands = [
        (list(bmc.MC_INFO_ARGV), 1, "", "Get Device ID command failed\n"),
        (list(bmc.SEL_ARGV), 1, "", "Get SEL Info command failed\n"),
        (list(bmc.SDR_ARGV), 0, QEMU_SDR.read_text()),
    ]
    capture = write_capture(tmp_path / "cap", commands, dirs={"/dev": ["ipmi0"]})
    probe, _ = probe_over(capture, "bmc")
    section = bmc.collect(probe)
    assert section.sel is None and section.identity is None
    assert any("sel elist" in e for e in probe.errors)
    assert any("mc info" in e for e in probe.errors)


@pytest.mark.parametrize("shape", [None, 3, "x", [], {"identity": 5, "sel": [], "sensors": "no"}])
def test_summary_line_never_raises_on_any_shape(shape):
    bmc.summary_line(shape)
