"""ipmitool fru: FRU devices, power supplies by any vendor's name, SMBIOS type 39 merged in."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_dmidecode import SERVER

from bee.serialize import to_jsonable
from bee.tools import ipmitool
from bee.tools.ipmitool import Psu, parse
from conftest import (
    FIXTURES,
    REALWORLD,
    assert_section_valid,
    mangle,
    probe_over,
    write_capture,
)

FIXTURE_FILES = sorted(
    p for p in (FIXTURES / "ipmitool-fru").glob("*.txt") if ".expected." not in p.name
)
REALWORLD_FILES = sorted((REALWORLD / "ipmitool-fru").glob("*.txt"))
NAMES = FIXTURES / "ipmitool-fru" / "handwritten-psu-names-and-records.txt"
FRU_ARGV = list(ipmitool.FRU_ARGV)
T39_ARGV = ["dmidecode"]  # shared by board, cpu, memory and psu: all types


def as_section(fru: ipmitool.Fru) -> Psu:
    return Psu(ipmi_device="/dev/ipmi0", power_supplies=fru.power_supplies, fru_devices=fru.devices)


# -- parser ---------------------------------------------------------------------------------


def test_power_supplies_by_name_and_by_record():
    fru = parse(NAMES.read_text())
    assert [d.name for d in fru.devices] == [
        "Builtin FRU Device",
        "PS1",
        "PS2",
        "Pwr Supply 1 FRU",
        "PSU_3 FRU",
        "CPU 1 DIMM 1",
        "BMC",
    ]
    supplies = {p.name: p for p in fru.power_supplies}
    assert list(supplies) == ["PS1", "PS2", "Pwr Supply 1 FRU", "PSU_3 FRU"]
    ps1 = supplies["PS1"]
    assert (ps1.manufacturer, ps1.model, ps1.serial, ps1.part_number) == (
        "DELL",
        "PWR SPLY,1100W,RDNT,DELTA",
        "CNDED000000001",
        "0TN0A1A01",
    )
    assert (ps1.capacity_w, ps1.capacity_source, ps1.present) == (1100, "model-string", True)
    assert (supplies["PS2"].present, supplies["PS2"].status) == (
        False,
        "Device not present (Timeout)",
    )
    intel = supplies["Pwr Supply 1 FRU"]
    assert (intel.manufacturer, intel.model, intel.revision, intel.capacity_w) == (
        "DELTA ELECTRONICS",
        "DPS-2200AB-1",
        "01A",
        None,
    )
    record = supplies["PSU_3 FRU"]
    assert (record.capacity_w, record.capacity_source, record.fru_id) == (2200, "fru-record", 4)


def test_board_and_product_areas_of_other_devices_are_kept():
    builtin, *_, dimm, bmc = parse(NAMES.read_text()).devices
    assert builtin.fru_id == 0 and builtin.product_serial == "S411294X9C00001"
    assert (builtin.board_serial, builtin.chassis_serial) == ("OM19BS000001", "C4180LK19A00001")
    assert builtin.chassis_part_number is None
    assert builtin.placeholders == {"chassis_part_number": ".................."}
    assert dimm.fields["Part Number"] == "M393A4K40CB2-CTD"  # NUL padding dropped
    assert bmc.errors == ["Unknown FRU header version 0x02"]


@pytest.mark.parametrize(
    ("name", "is_psu"),
    [
        ("PS1", True),
        ("PS 2", True),
        ("PSU1 FRU", True),
        ("Pwr Supply 1 FRU", True),
        ("Power Supply 2", True),
        ("PWS_1", True),
        ("CPU 1 DIMM 1", False),
        ("Builtin FRU Device", False),
        ("BP1", False),
    ],
)
def test_psu_names(name, is_psu):
    fru = parse(f"FRU Device Description : {name} (ID 5)\n Board Mfg : X\n")
    assert bool(fru.power_supplies) is is_psu


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixtures_match_the_schema(path):
    assert_section_valid("psu", as_section(parse(path.read_text())))


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    assert_section_valid("psu", as_section(parse(text)))


@settings(
    max_examples=30, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(path, data):
    text = mangle(data, path.read_text())
    assert_section_valid("psu", as_section(parse(text)))


# -- collector through a replay --------------------------------------------------------------


def test_without_an_ipmi_device_ipmitool_is_not_run_and_type_39_still_counts(tmp_path):
    capture = write_capture(
        tmp_path, [(T39_ARGV, 0, SERVER.read_text(), "")], dirs={"/dev": ["null", "sda"]}
    )
    probe, recorder = probe_over(capture, "psu")
    psu = ipmitool.collect(probe)
    assert [r.argv for r in recorder.results] == [tuple(T39_ARGV)]
    assert psu.ipmi_device is None and psu.fru_devices == []
    assert [p.serial for p in psu.power_supplies] == ["P1K62CH00A00001", None]
    assert probe.errors == [] and probe.notes == []
    assert_section_valid("psu", psu)


def test_without_ipmi_and_without_type_39_the_section_is_null_and_silent(tmp_path):
    capture = write_capture(tmp_path, [(T39_ARGV, 1, "# dmidecode 3.4\n", "")], dirs={"/dev": []})
    probe, _ = probe_over(capture, "psu")
    assert ipmitool.collect(probe) is None
    assert probe.errors == [] and probe.notes == []


def test_ipmi_fru_and_smbios_entries_of_one_supply_merge_by_serial(tmp_path):
    fru_text = (
        "FRU Device Description : PS1 (ID 1)\n"
        " Board Mfg             : SUPERMICRO\n"
        " Board Product         : PWS-1K62A-1R\n"
        " Board Serial          : P1K62CH00A00001\n"
        "\n" + NAMES.read_text()
    )
    capture = write_capture(
        tmp_path,
        [(FRU_ARGV, 1, fru_text, ""), (T39_ARGV, 0, SERVER.read_text(), "")],
        dirs={"/dev/ipmi": ["0"], "/dev": ["ipmi", "null"]},
    )
    probe, _ = probe_over(capture, "psu")
    psu = ipmitool.collect(probe)
    assert psu.ipmi_device == "/dev/ipmi/0"
    merged = psu.power_supplies[0]
    assert merged.sources == ["ipmi-fru", "smbios"]
    assert (merged.serial, merged.capacity_w, merged.capacity_source) == (
        "P1K62CH00A00001",
        1600,
        "smbios",
    )
    assert merged.status == "Present, OK" and merged.location == "PSU1"
    # ipmitool's exit 1 (one FRU device failed) is not an error when it printed the others.
    assert probe.errors == []
    # FRU PS1 and four from NAMES; SMBIOS PSU2 ("Not Present") is the bay of NAMES' PS2.
    assert len(psu.power_supplies) == 1 + 4
    [bay2] = [p for p in psu.power_supplies if p.name == "PS2"]
    assert bay2.sources == ["ipmi-fru", "smbios"] and bay2.present is False
    assert_section_valid("psu", psu)


def test_ipmitool_failing_outright_is_an_error(tmp_path):
    capture = write_capture(
        tmp_path,
        [(FRU_ARGV, 1, "", "Could not open device at /dev/ipmi0: Permission denied\n")],
        dirs={"/dev": ["ipmi0"]},
    )
    probe, _ = probe_over(capture, "psu")
    psu = ipmitool.collect(probe)
    assert psu.ipmi_device == "/dev/ipmi0" and psu.power_supplies == []
    assert probe.errors == [
        "ipmitool -v fru print: exit 1: Could not open device at /dev/ipmi0: Permission denied"
    ]


# -- real-world outputs ---------------------------------------------------------------------

SPOT_CHECKS = {
    "glpi-project_glpi-agent__dell-r640": {
        "psu_serials": ["CNDED0003G0NQA", "CNDED0003G0O0P"],
        "product_serial": "2RJF153",
    },
    "glpi-project_glpi-agent__dell-r630": {"psu_serials": ["CNDED0081G03X8", None]},
    "glpi-project_glpi-agent__powersupplies-fru_4": {
        "psu_serials": ["CNS2221A4SG7Q0942", "CNS2221A4SG7Q0944"],
    },
    "glpi-project_glpi-agent__hp-dl360-gen8": {"psu_serials": [], "product_serial": "USE2236835"},
    "glpi-project_glpi-agent__sun-x2200-m2": {"psu_serials": []},
}


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/ipmitool-fru is not there")
@pytest.mark.parametrize("path", REALWORLD_FILES, ids=lambda p: p.stem)
def test_realworld_outputs_parse_and_match_the_schema(path):
    fru = parse(path.read_bytes().decode("utf-8", errors="replace"))
    assert fru.devices
    assert_section_valid("psu", as_section(fru))
    expected = SPOT_CHECKS.get(path.stem, {})
    if "psu_serials" in expected:
        assert [p.serial for p in fru.power_supplies] == expected["psu_serials"]
    if "product_serial" in expected:
        assert fru.devices[0].product_serial == expected["product_serial"]


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/ipmitool-fru is not there")
def test_realworld_spot_checks_name_existing_files():
    assert set(SPOT_CHECKS) <= {p.stem for p in REALWORLD_FILES}


def test_qemu_bmc_sim_fru_devices():
    fru = parse((FIXTURES / "ipmitool-fru" / "qemu-q35-bmc-sim.txt").read_text())
    builtin, mainboard, *_ = fru.devices
    # ipmitool prints only the header for the simulator's built-in FRU 0.
    assert (builtin.fru_id, builtin.fields, builtin.errors) == (0, {}, [])
    assert mainboard.product_serial == "S411294X9C07713"
    assert (mainboard.chassis_serial, mainboard.board_serial) == ("C4180LK19A50211", "OM19BS004211")
    assert [(p.name, p.fru_id, p.serial, p.model, p.revision) for p in fru.power_supplies] == [
        ("PS1", 2, "P2K2ACJ19NT0512", "PWS-2K20A-1R", "1.1"),
        ("PS2", 3, "P2K2ACJ19NT0598", "PWS-2K20A-1R", "1.1"),
    ]
    # Without -v, ipmitool 1.8.19's `fru print` skips the multirecord area ("if (verbose==0)
    # return" in lib/ipmi_fru.c), so the Power Supply record QEMU holds is not in this output;
    # that is why the collector runs `ipmitool -v fru print`.
    assert {p.capacity_w for p in fru.power_supplies} == {None}


# -- issue 20 #4: one entry per supply, empty bays not counted, failures are findings ---------

TWO_SUPPLIES_AND_AN_EMPTY_BAY = """FRU Device Description : PS1 (ID 1)
 Board Mfg             : DELTA
 Board Product         : PWR SPLY,1100W,RDNT,DELTA
 Board Serial          : cnded0000000a1

FRU Device Description : PS2 (ID 2)
 Board Mfg             : DELTA
 Board Product         : PWR SPLY,1100W,RDNT,DELTA
 Board Serial          : CNDED0000000A2

FRU Device Description : PS3 (ID 3)
 Device not present (Timeout)
"""


def _type39(location: str, serial: str, status: str) -> str:
    return (
        "Handle 0x0060, DMI type 39, 22 bytes\nSystem Power Supply\n"
        f"\tLocation: {location}\n\tName: PWR SPLY,1100W\n\tManufacturer: DELL\n"
        f"\tSerial Number: {serial}\n\tMax Power Capacity: 1100 W\n\tStatus: {status}\n\n"
    )


def _psu_section(tmp_path, smbios_text: str):
    capture = write_capture(
        tmp_path,
        [(FRU_ARGV, 0, TWO_SUPPLIES_AND_AN_EMPTY_BAY, ""), (T39_ARGV, 0, smbios_text, "")],
        dirs={"/dev": ["ipmi0", "null"]},
    )
    probe, _ = probe_over(capture, "psu")
    return ipmitool.collect(probe)


def test_two_supplies_and_an_empty_bay_are_two_supplies(tmp_path):
    # SMBIOS spells the serials its own way (case, a dash): the same two supplies.
    smbios_text = _type39("PSU1", "CNDED0000000A1", "Present, OK") + _type39(
        "PSU2", "cnded-0000000a2", "Present, OK"
    )
    section = _psu_section(tmp_path, "# dmidecode 3.4\n" + smbios_text)
    assert [(p.name, p.sources, p.present) for p in section.power_supplies] == [
        ("PS1", ["ipmi-fru", "smbios"], True),
        ("PS2", ["ipmi-fru", "smbios"], True),
        ("PS3", ["ipmi-fru"], False),
    ]
    assert ipmitool.summary(to_jsonable(section)) == "PSUs: 2 (1 empty bay)"
    [finding] = ipmitool.findings({"psu": section})
    assert (finding.severity, finding.subject) == ("warning", "PS3")
    assert_section_valid("psu", section)


def test_a_supply_without_a_serial_on_one_side_joins_by_its_bay(tmp_path):
    smbios_text = _type39("PSU 2", "Not Specified", "Present, Critical")
    section = _psu_section(tmp_path, "# dmidecode 3.4\n" + smbios_text)
    assert [p.name for p in section.power_supplies] == ["PS1", "PS2", "PS3"]
    found = [(f.severity, f.subject) for f in ipmitool.findings({"psu": section})]
    assert found == [("critical", "PS2"), ("warning", "PS3")]


def test_different_serials_in_one_bay_are_two_supplies(tmp_path):
    smbios_text = _type39("PSU1", "OTHER000000001", "Present, Non-critical")
    section = _psu_section(tmp_path, "# dmidecode 3.4\n" + smbios_text)
    assert len(section.power_supplies) == 4
    assert ("warning", "PWR SPLY,1100W") in [
        (f.severity, f.subject) for f in ipmitool.findings({"psu": section})
    ]
