"""smartctl -j: identity, health counters, the exit-status bit mask, RAID-reached disks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.probe import Probe
from bee.serialize import to_jsonable
from bee.tools import smartctl
from bee.tools.smartctl import ScannedDevice, decode_exit_status, parse, parse_scan
from conftest import FIXTURES, REALWORLD, is_json_object, mangle

FIXTURE_FILES = sorted(
    p for p in (FIXTURES / "smartctl").glob("*.json") if ".expected." not in p.name
)
SCAN_FIXTURES = sorted(
    p for p in (FIXTURES / "smartctl-scan").glob("*.json") if ".expected." not in p.name
)
REALWORLD_FILES = sorted((REALWORLD / "smartctl-json").glob("*.json"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def write_capture(root: Path, commands: list[tuple[list[str], int, str]]) -> Path:
    """A bee-capture/1 directory that answers the given commands (argv, exit status, stdout)."""
    (root / "commands").mkdir(parents=True)
    entries = []
    for number, (argv, returncode, stdout) in enumerate(commands):
        for stream, text in (("stdout", stdout), ("stderr", "")):
            (root / f"commands/{number:03d}.{stream}").write_text(text)
        entries.append(
            {
                "argv": argv,
                "returncode": returncode,
                "stdout": f"commands/{number:03d}.stdout",
                "stderr": f"commands/{number:03d}.stderr",
                "duration_s": 0.2,
            }
        )
    manifest = {"format": "bee-capture/1", "commands": entries, "files": {}, "dirs": {}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0, []),
        (1, ["command_line_error"]),
        (2, ["device_open_failed"]),
        (4, ["smart_command_failed"]),
        (0x48, ["disk_failing", "error_log_has_errors"]),
        (0xFF, [name for _, name in smartctl.EXIT_FLAGS]),
        (-1, []),
        (None, []),
    ],
)
def test_exit_status_bits_are_named(status, flags):
    assert decode_exit_status(status) == flags


def test_firecracker_virtio_disk_cannot_be_typed():
    report = parse((FIXTURES / "smartctl" / "firecracker-vm-virtio-unknown-type.json").read_text())
    assert report.exit_status == 1 and report.exit_flags == ["command_line_error"]
    assert report.messages == ["/dev/vda: Unable to detect device type"]
    assert report.smartctl_version == "7.3" and report.json_format_version == "1.0"
    assert not report.has_data and report.serial is None


def test_qemu_guest_disks():
    sata = parse((FIXTURES / "smartctl" / "qemu-q35-ide-hd-sat.json").read_text())
    assert (sata.protocol, sata.device_type, sata.model, sata.serial) == (
        "ATA",
        "sat",
        "INTEL SSDSC2KB480G8",
        "PHYF0413016T480BGN",
    )
    assert sata.smart_passed is True and sata.capacity_bytes == 480103981056
    assert sata.exit_flags == [] and sata.reallocated_sectors == 0
    extended = parse((FIXTURES / "smartctl" / "qemu-q35-ide-hd-sat-x.json").read_text())
    assert extended.exit_flags == ["smart_command_failed"] and extended.smart_passed is True
    scsi = parse((FIXTURES / "smartctl" / "qemu-q35-scsi-hd-no-smart.json").read_text())
    assert scsi.smart_available is False and scsi.serial == "WFK2B1EX"
    assert scsi.vendor == "SEAGATE" and scsi.temperature_c is None and not scsi.has_health
    nvme = parse((FIXTURES / "smartctl" / "qemu-q35-nvme.json").read_text())
    assert nvme.protocol == "NVMe" and nvme.nvme_critical_warning == 0
    assert nvme.serial == "S5XANA0R300417" and nvme.temperature_c == 50
    scan = parse_scan((FIXTURES / "smartctl-scan" / "qemu-q35-scsi-sata-nvme.json").read_text())
    assert [(d.name, d.type) for d in scan.devices] == [
        ("/dev/sda", "scsi"),
        ("/dev/sdb", "sat"),
        ("/dev/nvme0", "nvme"),
    ]


@pytest.mark.parametrize("raw", SCAN_FIXTURES, ids=lambda p: p.name)
def test_scan_fixtures_parse_to_their_expected_documents(raw):
    # fixtures/smartctl-scan is not a `bee parse` tool, so test_fixtures.py does not cover it.
    expected = raw.with_name(raw.name.removesuffix(".json") + ".expected.json")
    actual = to_jsonable(parse_scan(raw.read_text()))
    if os.environ.get("BEE_REGEN_FIXTURES") == "1":
        expected.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert actual == json.loads(expected.read_text())


def test_scan_of_a_machine_without_smart_devices_is_empty():
    scan = parse_scan((FIXTURES / "smartctl-scan" / "firecracker-vm-none.json").read_text())
    assert scan.devices == [] and scan.errors == []


def test_scan_lists_raid_reached_disks_with_their_type():
    text = json.dumps(
        {
            "devices": [
                {"name": "/dev/sda", "info_name": "/dev/sda", "type": "scsi", "protocol": "SCSI"},
                {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_08]",
                 "type": "megaraid,8", "protocol": "SCSI"},
                {"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
                {"type": "sat"},
            ]
        }
    )  # fmt: skip
    scan = parse_scan(text)
    assert [(d.name, d.type) for d in scan.devices] == [
        ("/dev/sda", "scsi"),
        ("/dev/bus/0", "megaraid,8"),
        ("/dev/nvme0", "nvme"),
    ]
    assert smartctl.device_argv(scan.devices[1]) == (
        "smartctl", "-j", "-a", "-d", "megaraid,8", "/dev/bus/0",
    )  # fmt: skip


def test_attribute_raw_counts_come_from_the_raw_string_first():
    text = json.dumps(
        {
            "smart_status": {"passed": True},
            "ata_smart_attributes": {
                "table": [
                    {"id": 5, "name": "Reallocated_Sector_Ct", "when_failed": "",
                     "raw": {"value": 8, "string": "8"}},
                    {"id": 197, "name": "Current_Pending_Sector", "when_failed": "past",
                     "raw": {"value": 4295032833, "string": "1 (Average 1)"}},
                    {"id": 1, "name": "Raw_Read_Error_Rate", "when_failed": "now",
                     "raw": {"value": 0, "string": "0"}},
                ]
            },
        }
    )  # fmt: skip
    report = parse(text)
    assert report.reallocated_sectors == 8 and report.pending_sectors == 1
    assert report.failing_attributes == ["1 Raw_Read_Error_Rate"]
    assert report.past_failing_attributes == ["197 Current_Pending_Sector"]


@pytest.mark.parametrize("text", ["", "garbage", "[1, 2]", "null", '"x"'])
def test_bad_input_gives_an_empty_report_with_an_error(text):
    report = parse(text)
    assert report.errors and report.serial is None and not report.has_data


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    report, scan = parse(text), parse_scan(text)
    if not is_json_object(text):  # not smartctl's JSON: errors, and no health to trust
        assert report.errors and not report.has_health and scan.devices == []


@settings(max_examples=100, deadline=10_000)
@given(json_values)
def test_never_raises_on_any_json_value(value):
    for wrapped in (
        value,
        {"smartctl": value},
        {"ata_smart_attributes": {"table": [value]}},
        {"wwn": value, "device": value, "temperature": value, "user_capacity": value},
        {"ata_smart_self_test_log": {"standard": {"table": [value]}}, "scsi_self_test_0": value},
        {"devices": [value]},
    ):
        parse(json.dumps(wrapped))
        parse_scan(json.dumps(wrapped))


@pytest.mark.skipif(not FIXTURE_FILES, reason="no smartctl fixtures")
@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_raises_on_fixtures_with_lines_dropped_duplicated_or_cut(data):
    text = mangle(data, data.draw(st.sampled_from(FIXTURE_FILES)).read_text())
    parse(text)


def test_collector_keeps_the_report_when_only_health_bits_are_set(tmp_path):
    device = ScannedDevice(name="/dev/sdb", type="sat", protocol="ATA", info_name=None)
    body = {
        "smartctl": {"version": [7, 3], "exit_status": 8},
        "device": {"name": "/dev/sdb", "type": "sat", "protocol": "ATA"},
        "serial_number": "WD-WCC4N1234567",
        "smart_status": {"passed": False},
    }
    capture = write_capture(tmp_path, [(list(smartctl.device_argv(device)), 8, json.dumps(body))])
    probe = Probe(ReplayRunner(capture), "storage")
    report = smartctl.collect_device(probe, device)
    assert report is not None and report.serial == "WD-WCC4N1234567"
    assert report.exit_flags == ["disk_failing"] and report.smart_passed is False
    assert probe.errors == []


def test_collector_records_an_open_failure_and_a_bit_2_note(tmp_path):
    failing = ScannedDevice(name="/dev/sdc", type="sat", protocol="ATA", info_name=None)
    sas = ScannedDevice(name="/dev/sdd", type="scsi", protocol="SCSI", info_name=None)
    open_failed = {
        "smartctl": {
            "exit_status": 2,
            "messages": [{"string": "Smartctl open device: /dev/sdc failed: No such device"}],
        }
    }
    healthy_sas = {"smartctl": {"exit_status": 4}, "smart_status": {"passed": True}}
    capture = write_capture(
        tmp_path,
        [
            (list(smartctl.device_argv(failing)), 2, json.dumps(open_failed)),
            (list(smartctl.device_argv(sas)), 4, json.dumps(healthy_sas)),
        ],
    )
    probe = Probe(ReplayRunner(capture), "storage")
    report = smartctl.collect_device(probe, failing)
    assert report is not None and not report.has_data
    assert probe.errors == [
        "smartctl -j -a -d sat /dev/sdc: exit 2 (device_open_failed): "
        "Smartctl open device: /dev/sdc failed: No such device"
    ]
    sas_report = smartctl.collect_device(probe, sas)
    assert sas_report is not None and sas_report.smart_passed is True
    assert len(probe.errors) == 1 and "smart_command_failed" in probe.notes[0]


def test_collector_without_smartctl_is_none(tmp_path):
    probe = Probe(ReplayRunner(write_capture(tmp_path, [])), "storage")
    assert smartctl.collect_scan(probe) is None


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/smartctl-json is absent")
def test_realworld_outputs_parse_and_yield_what_a_person_sees():
    reports = {p.name: parse(p.read_text(errors="replace")) for p in REALWORLD_FILES}
    assert all(not r.errors for r in reports.values())

    failing = reports["AnalogJ_scrutiny__smart-fail2.json"]
    assert failing.smart_passed is False and failing.serial == "MSK423Y20S3HBC"
    assert failing.reallocated_sectors == 1975 and failing.pending_sectors == 8
    assert "disk_failing" in failing.exit_flags
    assert failing.failing_attributes == ["5 Reallocated_Sector_Ct"]

    megaraid = reports["influxdata_telegraf__smartctl-megaraid.json"]
    assert megaraid.device_type == "sat+megaraid,14" and megaraid.serial == "ZAD2C11G"
    assert megaraid.capacity_bytes == 6001175126016

    sas = reports["influxdata_telegraf__smartctl-scsi_extended.json"]
    assert sas.protocol == "SCSI" and sas.sas_grown_defects == 0
    assert sas.temperature_c == 24 and sas.temperature_trip_c == 60
    assert sas.self_test is not None and sas.self_test.passed is True

    ata = reports["AnalogJ_scrutiny__smart-ata-failed-scrutiny.json"]
    assert ata.wwn == "0x50025385500ccc29"  # LU WWN Device Id: 5 002538 5500ccc29
    assert ata.power_on_hours == 19497
    assert ata.udma_crc_errors == 108

    nvme = reports["AnalogJ_scrutiny__smart-nvme-failed.json"]
    assert nvme.protocol == "NVMe" and nvme.nvme_media_errors == 7

    opened = reports["AnalogJ_scrutiny__smart-fail.json"]
    assert opened.exit_flags == ["device_open_failed"] and not opened.has_data
