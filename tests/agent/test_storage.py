"""The storage section: lsblk + smartctl + nvme-cli joined per disk, with a health verdict."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.probe import Probe
from bee.serialize import to_jsonable
from bee.tools import lsblk, nvme, smartctl, storage
from bee.tools.smartctl import SCAN_ARGV, ScannedDevice, parse
from conftest import FIXTURES, REALWORLD, SCHEMA_DIR, assert_section_valid, write_capture

SMART_REALWORLD = REALWORLD / "smartctl-json"
NVME_ID = FIXTURES / "nvme-id-ctrl" / "handwritten-nvmecli1x-spaced-keys.json"
NVME_WARN = FIXTURES / "nvme-smart-log" / "handwritten-nvmecli211-verbose-warning-object.json"
NVME_OK = FIXTURES / "nvme-smart-log" / "handwritten-nvmecli1x-nan-and-floats.json"


def smart(**fields) -> str:
    body = {"smartctl": {"version": [7, 3], "exit_status": fields.pop("exit_status", 0)}}
    body.update(fields)
    return json.dumps(body)


# -- verdicts -----------------------------------------------------------------------------


def test_healthy_ata_disk_is_ok():
    report = parse(smart(serial_number="S1", smart_status={"passed": True}))
    assert storage.smart_health(report) == ("ok", [])


def test_failed_self_assessment_is_failing_and_counters_are_reasons():
    report = parse(
        smart(
            exit_status=0x08,
            serial_number="S2",
            smart_status={"passed": False},
            ata_smart_attributes={
                "table": [{"id": 197, "name": "Current_Pending_Sector", "raw": {"value": 16}}]
            },
        )
    )
    verdict, reasons = storage.smart_health(report)
    assert verdict == "failing"
    assert reasons[0].startswith("SMART overall health self-assessment FAILED")
    assert "16 sectors pending reallocation (unreadable)" in reasons


def test_sas_grown_defects_and_uncorrected_errors_are_a_warning():
    report = parse(
        smart(
            serial_number="S3",
            smart_status={"passed": True},
            scsi_grown_defect_list=12,
            scsi_error_counter_log={"read": {"total_uncorrected_errors": 3}},
        )
    )
    assert storage.smart_health(report) == (
        "warning",
        ["12 grown defects (SAS)", "3 uncorrected read errors (SAS)"],
    )


def test_a_failed_self_test_is_failing():
    report = parse(
        smart(
            serial_number="S4",
            smart_status={"passed": True},
            ata_smart_self_test_log={
                "standard": {
                    "table": [
                        {
                            "type": {"string": "Extended offline"},
                            "status": {"string": "Completed: read failure", "passed": False},
                            "lifetime_hours": 4211,
                        }
                    ]
                }
            },
        )
    )
    assert storage.smart_health(report) == (
        "failing",
        ["the last self-test failed (Completed: read failure)"],
    )


def test_no_data_or_no_health_is_unknown():
    opened = parse(smart(exit_status=2, smartctl={"exit_status": 2}))
    assert storage.smart_health(opened)[0] == "unknown"
    volume = parse(smart(serial_number="Volume1", model_name="Intel Raid 1 Volume"))
    assert storage.smart_health(volume) == (
        "unknown",
        ["smartctl reports no SMART health for this device"],
    )


def test_hot_drive_warns_against_its_own_trip_temperature():
    report = parse(
        smart(
            serial_number="S5",
            smart_status={"passed": True},
            temperature={"current": 58, "drive_trip": 55},
        )
    )
    assert storage.smart_health(report)[0] == "warning"


def test_nvme_verdicts():
    failing = nvme.parse_smart_log(NVME_WARN.read_text())
    verdict, reasons = storage.nvme_health(failing, nvme.parse_id_ctrl(NVME_ID.read_text()))
    assert verdict == "failing"
    assert reasons == [
        "NVMe critical warning: reliability is degraded by media or internal errors: replace",
        "the rated write endurance is used up (103%)",
        "2 media errors (unrecovered data integrity errors)",
    ]
    assert storage.nvme_health(nvme.parse_smart_log(NVME_OK.read_text()), None) == ("ok", [])
    assert storage.nvme_health(None, None)[0] == "unknown"
    low_spare = nvme.parse_smart_log(json.dumps({"avail_spare": 3, "spare_thresh": 10}))
    assert storage.nvme_health(low_spare, None)[0] == "failing"


numbers = st.none() | st.integers(-5, 2**70) | st.text(max_size=5) | st.booleans()


@settings(max_examples=150, deadline=10_000)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "smart_status": st.fixed_dictionaries({}, optional={"passed": numbers}),
            "smartctl": st.fixed_dictionaries({}, optional={"exit_status": numbers}),
            "scsi_grown_defect_list": numbers,
            "temperature": st.fixed_dictionaries({"current": numbers, "drive_trip": numbers}),
            "nvme_smart_health_information_log": st.dictionaries(
                st.sampled_from(["critical_warning", "percentage_used", "media_errors"]), numbers
            ),
            "ata_smart_attributes": st.fixed_dictionaries(
                {"table": st.lists(st.fixed_dictionaries(
                    {"id": numbers, "when_failed": numbers, "raw": st.fixed_dictionaries(
                        {"value": numbers, "string": numbers})}), max_size=3)}
            ),
        },
    ),
    st.dictionaries(
        st.sampled_from(["critical_warning", "temperature", "avail_spare", "spare_thresh",
                         "percent_used", "media_errors"]),
        numbers,
    ),
)  # fmt: skip
def test_verdicts_never_raise_and_always_explain_themselves(smart_json, nvme_json):
    for verdict, reasons in (
        storage.smart_health(parse(json.dumps(smart_json))),
        storage.nvme_health(nvme.parse_smart_log(json.dumps(nvme_json)), None),
    ):
        assert verdict in ("ok", "warning", "failing", "unknown")
        assert bool(reasons) == (verdict != "ok")


@pytest.mark.skipif(not SMART_REALWORLD.is_dir(), reason="../shared/realworld is absent")
def test_realworld_verdicts():
    def verdict(name: str) -> str:
        return storage.smart_health(parse((SMART_REALWORLD / name).read_text()))[0]

    assert verdict("AnalogJ_scrutiny__smart-fail2.json") == "failing"
    assert verdict("AnalogJ_scrutiny__smart-megaraid1.json") == "warning"  # 387 reallocated
    assert verdict("AnalogJ_scrutiny__smart-nvme-failed.json") == "warning"  # 7 media errors
    assert verdict("AnalogJ_scrutiny__smart-fail.json") == "unknown"  # open failed
    assert verdict("AnalogJ_scrutiny__smart-raid.json") == "unknown"  # a RAID volume
    assert verdict("influxdata_telegraf__smartctl-scsi_extended.json") == "ok"
    assert verdict("criteo_hwbench__sata-hpe-MB24000GYEVK-smartctl73-x.json") == "ok"


# -- the collector ------------------------------------------------------------------------


def test_firecracker_machine_replay(tmp_path):
    capture = write_capture(
        tmp_path,
        [
            (
                list(lsblk.ARGV),
                0,
                (FIXTURES / "lsblk" / "firecracker-vm-virtio-zram.json").read_text(),
            ),
            (
                list(SCAN_ARGV),
                0,
                (FIXTURES / "smartctl-scan" / "firecracker-vm-none.json").read_text(),
            ),
        ],
    )
    probe = Probe(ReplayRunner(capture), "storage")
    section = storage.collect(probe)
    assert section is not None and section.skipped == ["zram0"]
    [disk] = section.disks
    assert disk.name == "vda" and disk.size_bytes == 274877906944
    assert disk.health.verdict == "unknown" and disk.health.source is None
    assert probe.errors == []
    assert_section_valid("storage", section)


QEMU = {
    "lsblk": FIXTURES / "lsblk" / "qemu-q35-scsi-sata-nvme-live-cd.json",
    "scan": FIXTURES / "smartctl-scan" / "qemu-q35-scsi-sata-nvme.json",
    "sda": FIXTURES / "smartctl" / "qemu-q35-scsi-hd-no-smart.json",
    "sdb": FIXTURES / "smartctl" / "qemu-q35-ide-hd-sat.json",
    "id": FIXTURES / "nvme-id-ctrl" / "qemu-q35-nvme0.json",
    "log": FIXTURES / "nvme-smart-log" / "qemu-q35-nvme0.json",
}


def test_qemu_q35_guest_replay(tmp_path):
    """The outputs the QEMU guest (SCSI, SATA and NVMe disks with serials, the live CD) printed."""
    commands = [
        (list(lsblk.ARGV), 0, QEMU["lsblk"].read_text()),
        (list(SCAN_ARGV), 0, QEMU["scan"].read_text()),
        (["smartctl", "-j", "-a", "-d", "scsi", "/dev/sda"], 4, QEMU["sda"].read_text()),
        (["smartctl", "-j", "-a", "-d", "sat", "/dev/sdb"], 0, QEMU["sdb"].read_text()),
        (["nvme", "id-ctrl", "-o", "json", "/dev/nvme0"], 0, QEMU["id"].read_text()),
        (["nvme", "smart-log", "-o", "json", "/dev/nvme0"], 0, QEMU["log"].read_text()),
    ]
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    section = storage.collect(probe)
    assert section is not None and section.skipped == ["loop0"]
    summary = [
        (d.name, d.serial, d.size_bytes, d.health.verdict, d.health.reasons) for d in section.disks
    ]
    assert summary == [
        ("sda", "WFK2B1EX", 1200243695616, "unknown", ["the device does not support SMART"]),
        ("sdb", "PHYF0413016T480BGN", 480103981056, "ok", []),
        ("sr0", "QM00011", 352321536, "unknown", ["the medium bee booted from; no SMART data"]),
        ("nvme0n1", "S5XANA0R300417", 1920383410176, "ok", []),
    ]
    disks = {d.name: d for d in section.disks}
    assert disks["sr0"].is_boot_medium and not disks["sdb"].is_boot_medium
    assert disks["sdb"].smart.power_on_hours == 1 and disks["sdb"].smart.temperature_c == 31
    assert disks["sda"].smart.temperature_c is None  # SCSI "current": 0 means not reported
    nvme_info = disks["nvme0n1"].nvme
    assert nvme_info.controller == "nvme0" and nvme_info.namespaces == ["nvme0n1"]
    assert nvme_info.identity.model == "QEMU NVMe Ctrl" and nvme_info.identity.firmware == "7.2.22"
    assert nvme_info.health.temperature_c == 50 and nvme_info.health.data_read_bytes == 7 * 512000
    assert disks["nvme0n1"].firmware == "7.2.22"
    assert probe.errors == [] and probe.notes == [
        "smartctl -j -a -d scsi /dev/sda: exit 4 (smart_command_failed)"
    ]
    assert storage.findings({"storage": section}) == []
    assert_section_valid("storage", section)


def test_server_with_sata_sas_raid_and_nvme(tmp_path):
    """lsblk, the scan and each tool answer as on a server with every kind of disk."""
    block = {
        "blockdevices": [
            {"name": "sda", "path": "/dev/sda", "type": "disk", "size": 960197124096,
             "model": "SAMSUNG MZ7L3960", "serial": "S6KLNA0T100001", "tran": "sata",
             "rota": False, "rm": False, "ro": False},
            {"name": "sdb", "path": "/dev/sdb", "type": "disk", "size": 3999688294400,
             "model": "PERC H755 Front", "vendor": "DELL", "tran": None},
            {"name": "nvme0n1", "path": "/dev/nvme0n1", "type": "disk", "size": 1000204886016,
             "model": "HANDWRITTEN NVME 1.x LAYOUT 1TB", "serial": "HANDWRITTEN0001",
             "tran": "nvme"},
            {"name": "sr0", "path": "/dev/sr0", "type": "rom", "size": 912261120, "rm": True,
             "mountpoint": "/run/live/medium"},
            {"name": "loop0", "type": "loop"},
        ]
    }  # fmt: skip
    scan = {
        "devices": [
            {"name": "/dev/sda", "type": "sat", "protocol": "ATA"},
            {"name": "/dev/sdb", "type": "scsi", "protocol": "SCSI"},
            {"name": "/dev/bus/0", "type": "megaraid,0", "protocol": "SCSI"},
            {"name": "/dev/bus/0", "type": "sat+megaraid,1", "protocol": "ATA"},
            {"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
        ]
    }
    dev = {d["type"]: ScannedDevice(name=d["name"], type=d["type"], protocol=None, info_name=None)
           for d in scan["devices"]}  # fmt: skip
    commands = [
        (list(lsblk.ARGV), 0, json.dumps(block)),
        (list(SCAN_ARGV), 0, json.dumps(scan)),
        (
            list(smartctl.device_argv(dev["sat"])),
            0,
            smart(serial_number="S6KLNA0T100001", firmware_version="JXTC604Q",
                  smart_status={"passed": True}, power_on_hours={"hours": 1234}),
        ),
        (list(smartctl.device_argv(dev["scsi"])), 4, smart(exit_status=4, vendor="DELL",
                                                         product="PERC H755 Front")),
        (
            list(smartctl.device_argv(dev["megaraid,0"])),
            0,
            smart(serial_number="WBN0A1B2", scsi_vendor="SEAGATE", scsi_product="ST2400MM0129",
                  user_capacity={"bytes": 2400476553216}, smart_status={"passed": True},
                  scsi_grown_defect_list=40, rotation_rate=10500),
        ),
        (
            list(smartctl.device_argv(dev["sat+megaraid,1"])),
            64,
            smart(exit_status=64, serial_number="ZA1B2C3D", model_name="ST4000NM0035",
                  smart_status={"passed": True}),
        ),
        (["nvme", "id-ctrl", "-o", "json", "/dev/nvme0"], 0, NVME_ID.read_text()),
        (["nvme", "smart-log", "-o", "json", "/dev/nvme0"], 0, NVME_WARN.read_text()),
    ]  # fmt: skip
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["device", "nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    section = storage.collect(probe)
    assert section is not None and section.skipped == ["loop0"]
    disks = {d.name: d for d in section.disks}
    assert list(disks) == ["sda", "sdb", "nvme0n1", "sr0", "bus0-megaraid,0", "bus0-sat+megaraid,1"]

    assert disks["sda"].health.verdict == "ok" and disks["sda"].firmware == "JXTC604Q"
    assert disks["sda"].smartctl_device == "/dev/sda -d sat"
    assert disks["sdb"].health.verdict == "unknown"
    assert "RAID controller's logical drive" in disks["sdb"].health.reasons[-1]
    member = disks["bus0-megaraid,0"]
    assert member.behind_raid_controller and member.serial == "WBN0A1B2"
    assert member.size_bytes == 2400476553216 and member.rotational is True
    assert member.health.verdict == "warning" and member.health.reasons == [
        "40 grown defects (SAS)"
    ]
    assert disks["bus0-sat+megaraid,1"].health.reasons == ["the device error log has entries"]

    nvme_disk = disks["nvme0n1"]
    assert nvme_disk.nvme is not None and nvme_disk.nvme.namespaces == ["nvme0n1"]
    assert nvme_disk.nvme.health.temperature_c == 45
    assert nvme_disk.firmware == "1B2QEXM7" and nvme_disk.health.source == "nvme-cli"
    assert nvme_disk.health.verdict == "failing"

    assert disks["sr0"].is_boot_medium and disks["sr0"].health.verdict == "unknown"
    assert probe.errors == [] and any("smart_command_failed" in n for n in probe.notes)

    found = storage.findings({"storage": section})
    assert [(f.severity, f.subject) for f in found] == [
        ("critical", "nvme0n1"),
        ("warning", "bus0-megaraid,0"),
        ("warning", "bus0-sat+megaraid,1"),
    ]
    assert_section_valid("storage", section)


def test_nvme_without_nvme_cli_falls_back_to_smartctl(tmp_path):
    block = {"blockdevices": [{"name": "nvme0n1", "type": "disk", "size": 512110190592}]}
    scan = {"devices": [{"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"}]}
    report = smart(
        serial_number="S4EWNX0R123456",
        device={"name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
        smart_status={"passed": True},
        nvme_smart_health_information_log={"critical_warning": 0, "percentage_used": 95},
    )
    nvme_dev = ScannedDevice(name="/dev/nvme0", type="nvme", protocol="NVMe", info_name=None)
    commands = [
        (list(lsblk.ARGV), 0, json.dumps(block)),
        (list(SCAN_ARGV), 0, json.dumps(scan)),
        (list(smartctl.device_argv(nvme_dev)), 0, report),
    ]
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    section = storage.collect(probe)
    [disk] = section.disks
    assert disk.serial == "S4EWNX0R123456" and disk.health.source == "smartctl"
    assert disk.health.verdict == "warning"
    assert disk.health.reasons == ["95% of the rated write endurance is used"]
    assert "nvme is not installed" in probe.notes
    assert_section_valid("storage", section)


def test_a_usb_boot_stick_smartctl_cannot_open_is_a_note(tmp_path):
    block = {"blockdevices": [
        {"name": "sdc", "path": "/dev/sdc", "type": "disk", "size": 31042043904, "tran": "usb",
         "rm": True, "children": [{"name": "sdc1", "type": "part",
                                   "mountpoint": "/run/live/medium"}]}]}  # fmt: skip
    scan = {"devices": [{"name": "/dev/sdc", "type": "sat", "protocol": "ATA"}]}
    stick = ScannedDevice(name="/dev/sdc", type="sat", protocol="ATA", info_name=None)
    failed = smart(
        exit_status=2,
        smartctl={"exit_status": 2, "messages": [{"string": "/dev/sdc: Unknown USB bridge"}]},
    )
    commands = [
        (list(lsblk.ARGV), 0, json.dumps(block)),
        (list(SCAN_ARGV), 0, json.dumps(scan)),
        (list(smartctl.device_argv(stick)), 2, failed),
    ]
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    [disk] = storage.collect(probe).disks
    assert disk.is_boot_medium and disk.health.verdict == "unknown"
    assert disk.health.reasons == [
        "smartctl could not read the device (/dev/sdc: Unknown USB bridge)"
    ]
    assert probe.errors == [] and "Unknown USB bridge" in probe.notes[0]


def test_without_lsblk_smartctl_still_lists_the_disks(tmp_path):
    commands = [
        (list(SCAN_ARGV), 0, QEMU["scan"].read_text()),
        (["smartctl", "-j", "-a", "-d", "scsi", "/dev/sda"], 4, QEMU["sda"].read_text()),
        (["smartctl", "-j", "-a", "-d", "sat", "/dev/sdb"], 0, QEMU["sdb"].read_text()),
        (["nvme", "id-ctrl", "-o", "json", "/dev/nvme0"], 0, QEMU["id"].read_text()),
        (["nvme", "smart-log", "-o", "json", "/dev/nvme0"], 0, QEMU["log"].read_text()),
    ]
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    section = storage.collect(probe)
    assert [(d.name, d.path, d.serial, d.size_bytes) for d in section.disks] == [
        ("sda", "/dev/sda", "WFK2B1EX", 1200243695616),
        ("sdb", "/dev/sdb", "PHYF0413016T480BGN", 480103981056),
        # From /sys/class/nvme and nvme-cli (QEMU's tnvmcap is 0: no size known).
        ("nvme0n1", "/dev/nvme0n1", "S5XANA0R300417", None),
    ]
    assert [d.seen_by for d in section.disks] == [["smartctl"], ["smartctl"], ["sysfs"]]
    assert section.disks[2].health.verdict == "ok" and section.disks[2].health.source == "nvme-cli"
    assert "lsblk is not installed" in probe.notes
    assert_section_valid("storage", section)


def test_nothing_installed_is_none(tmp_path):
    probe = Probe(ReplayRunner(write_capture(tmp_path, [])), "storage")
    assert storage.collect(probe) is None


def test_a_broken_lsblk_is_an_error_not_a_crash(tmp_path):
    commands = [(list(lsblk.ARGV), 0, "{not json"), (list(SCAN_ARGV), 0, '{"devices": []}')]
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    section = storage.collect(probe)
    assert section is not None and section.disks == []
    assert probe.errors and probe.errors[0].startswith("lsblk output is not JSON")


def test_schema_describes_every_field_of_every_model():
    schema = json.loads((SCHEMA_DIR / "storage.schema.json").read_text())
    models = [storage.StorageSection, storage.Disk, storage.DiskHealth, storage.NvmeInfo,
              lsblk.BlockChild, smartctl.SmartReport, smartctl.SelfTest, nvme.NvmeController,
              nvme.NvmeHealth]  # fmt: skip
    for cls in models:
        props = (
            schema["properties"]
            if cls is storage.StorageSection
            else schema["$defs"][cls.__name__]["properties"]
        )
        assert set(props) == {f.name for f in dataclasses.fields(cls)}, cls.__name__
        assert all(p.get("description") for p in props.values()), cls.__name__


# -- trust under faults (issue 20): no disk vanishes, no data is not ok, nothing counted twice --


def _qemu_commands(*, lsblk_out: str | None, sdb: str | None = None, log: str | None = None):
    commands = [
        (list(SCAN_ARGV), 0, QEMU["scan"].read_text()),
        (["smartctl", "-j", "-a", "-d", "scsi", "/dev/sda"], 4, QEMU["sda"].read_text()),
        (["smartctl", "-j", "-a", "-d", "sat", "/dev/sdb"], 0, sdb or QEMU["sdb"].read_text()),
        (["nvme", "id-ctrl", "-o", "json", "/dev/nvme0"], 0, QEMU["id"].read_text()),
        (["nvme", "smart-log", "-o", "json", "/dev/nvme0"], 0, log or QEMU["log"].read_text()),
    ]
    if lsblk_out is not None:
        commands.insert(0, (list(lsblk.ARGV), 0, lsblk_out))
    return commands


def _failing_sdb() -> str:
    report = json.loads(QEMU["sdb"].read_text())
    report["smart_status"] = {"passed": False}
    report["smartctl"]["exit_status"] = 8
    return json.dumps(report)


@pytest.mark.parametrize("lsblk_out", ["", "   \n", "{not json", '{"blockdevices": "x"}'])
def test_a_failing_disk_does_not_vanish_when_lsblk_gives_no_list(tmp_path, lsblk_out):
    commands = _qemu_commands(lsblk_out=lsblk_out, sdb=_failing_sdb())
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    section = storage.collect(probe)
    assert [(d.name, d.health.verdict) for d in section.disks] == [
        ("sda", "unknown"),
        ("sdb", "failing"),
        ("nvme0n1", "ok"),
    ]
    assert probe.errors and probe.errors[0].startswith("lsblk")  # the failure is in the document
    found = storage.findings({"storage": section})
    assert [(f.severity, f.subject) for f in found] == [("critical", "sdb")]
    assert storage.summary(to_jsonable(section)).startswith("Disks: 3,")
    assert_section_valid("storage", section)


def test_a_disk_lsblk_misses_is_kept_and_says_so(tmp_path):
    listing = json.loads(QEMU["lsblk"].read_text())
    listing["blockdevices"] = [d for d in listing["blockdevices"] if d["name"] != "sdb"]
    commands = _qemu_commands(lsblk_out=json.dumps(listing), sdb=_failing_sdb())
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    disks = {d.name: d for d in storage.collect(probe).disks}
    assert disks["sdb"].health.verdict == "failing" and disks["sdb"].seen_by == ["smartctl"]
    assert disks["sdb"].health.reasons[-1] == "lsblk does not list this disk"
    assert disks["sda"].seen_by == ["lsblk", "smartctl"]
    assert disks["nvme0n1"].seen_by == ["lsblk", "sysfs"]


@pytest.mark.parametrize("log", ["{}", '{"temperature": 323}', '{"unknown_layout": {"a": 1}}'])
def test_nvme_without_health_data_is_unknown_and_an_error(tmp_path, log):
    commands = _qemu_commands(lsblk_out=QEMU["lsblk"].read_text(), log=log)
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    disks = {d.name: d for d in storage.collect(probe).disks}
    assert disks["nvme0n1"].health.verdict == "unknown", disks["nvme0n1"].health
    assert "nvme smart-log /dev/nvme0: no health fields in the output" in probe.errors


def _raid1_server(tmp_path, *, volume_health: dict | None = None):
    """2 x 4 TB behind a MegaRAID controller as one RAID1 logical drive sda, as smartctl and
    lsblk list such a server (shapes from the scrutiny/telegraf megaraid captures)."""
    block = {"blockdevices": [
        {"name": "sda", "path": "/dev/sda", "type": "disk", "size": 3998614552576,
         "model": "PERC H730P Mini", "vendor": "DELL", "rm": False},
    ]}  # fmt: skip
    scan = {"devices": [
        {"name": "/dev/sda", "type": "scsi", "protocol": "SCSI"},
        {"name": "/dev/bus/0", "type": "sat+megaraid,0", "protocol": "ATA"},
        {"name": "/dev/bus/0", "type": "sat+megaraid,1", "protocol": "ATA"},
    ]}  # fmt: skip
    member = {"user_capacity": {"bytes": 4000787030016}, "smart_status": {"passed": True},
              "model_name": "WD4000FYYZ"}  # fmt: skip
    volume = {"vendor": "DELL", "product": "PERC H730P Mini", **(volume_health or {})}
    commands = [
        (list(lsblk.ARGV), 0, json.dumps(block)),
        (list(SCAN_ARGV), 0, json.dumps(scan)),
        (["smartctl", "-j", "-a", "-d", "scsi", "/dev/sda"], 4, smart(exit_status=4, **volume)),
        (["smartctl", "-j", "-a", "-d", "sat+megaraid,0", "/dev/bus/0"], 0,
         smart(serial_number="WD-A1", **member)),
        (["smartctl", "-j", "-a", "-d", "sat+megaraid,1", "/dev/bus/0"], 0,
         smart(serial_number="WD-B2", **member)),
    ]  # fmt: skip
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    return storage.collect(probe)


def test_a_raid_logical_drive_is_not_counted_next_to_its_members(tmp_path):
    section = _raid1_server(tmp_path)
    disks = {d.name: d for d in section.disks}
    assert disks["sda"].is_raid_volume and disks["sda"].health.reasons[-1].startswith("a RAID")
    assert not disks["bus0-sat+megaraid,0"].is_raid_volume
    assert storage.summary(to_jsonable(section)) == (
        "Disks: 2, 7.3 TiB (2 ok); not counted: 1 RAID volume"
    )
    assert_section_valid("storage", section)


def test_a_disk_with_smart_health_behind_a_raid_controller_is_a_disk(tmp_path):
    # JBOD/HBA pass-through: the block disk has SMART health of its own, so it is a drive.
    section = _raid1_server(tmp_path, volume_health={"smart_status": {"passed": True}})
    assert not {d.name: d for d in section.disks}["sda"].is_raid_volume


def test_removable_and_virtual_media_are_listed_not_counted(tmp_path):
    listing = json.loads(QEMU["lsblk"].read_text())
    # QEMU's default floppy (a 4 KiB fd0) and a BMC's virtual CD over USB, as lsblk lists them.
    listing["blockdevices"] += [
        {"name": "fd0", "kname": "fd0", "path": "/dev/fd0", "type": "disk", "size": 4096,
         "rm": True, "ro": False, "rota": True, "tran": None},
        {"name": "sr1", "kname": "sr1", "path": "/dev/sr1", "type": "rom", "size": 1073741312,
         "model": "Virtual CDROM0", "vendor": "AMI", "rm": True, "ro": True, "tran": "usb"},
    ]  # fmt: skip
    commands = _qemu_commands(lsblk_out=json.dumps(listing))
    dirs = {"/sys/class/nvme": ["nvme0"], "/sys/class/nvme/nvme0": ["nvme0n1"]}
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands, dirs=dirs)), "storage")
    section = storage.collect(probe)
    disks = {d.name: d for d in section.disks}
    assert disks["fd0"].is_removable_media and disks["sr1"].is_removable_media
    assert disks["sr0"].is_removable_media and disks["sr0"].is_boot_medium
    assert not disks["sda"].is_removable_media
    assert storage.summary(to_jsonable(section)) == (
        "Disks: 3, 3.3 TiB (2 ok, 1 unknown); not counted: 2 removable"
    )
    assert_section_valid("storage", section)


def test_a_smartctl_killed_after_its_report_keeps_the_report(tmp_path):
    # Issue 20 #10 / review B.1.13: exit -11 was read as a bit mask (command-line error,
    # disk failing, ...) and overrode the JSON's own exit_status.
    commands = _qemu_commands(lsblk_out=QEMU["lsblk"].read_text())
    argv, _, stdout = commands[3]  # /dev/sdb
    commands[3] = (argv, -11, stdout)
    probe = Probe(ReplayRunner(write_capture(tmp_path, commands)), "storage")
    disks = {d.name: d for d in storage.collect(probe).disks}
    assert disks["sdb"].health.verdict == "ok" and disks["sdb"].smart.exit_flags == []
    assert disks["sdb"].serial == "PHYF0413016T480BGN"
    assert "smartctl -j -a -d sat /dev/sdb: killed by SIGSEGV" in probe.errors
