"""dmidecode: board, CPU sockets, DIMMs, type 39 PSUs; placeholders; VMs; the sysfs fallback."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.serialize import to_jsonable
from bee.tools import dmidecode, ipmitool
from bee.tools.dmidecode import is_placeholder, parse
from conftest import (
    FIXTURES,
    REALWORLD,
    assert_section_valid,
    mangle,
    probe_over,
    write_capture,
)

FIXTURE_FILES = sorted(
    p for p in (FIXTURES / "dmidecode").glob("*.txt") if ".expected." not in p.name
)
REALWORLD_FILES = sorted((REALWORLD / "dmidecode").glob("*.txt"))
SERVER = FIXTURES / "dmidecode" / "handwritten-dual-socket-empty-slot.txt"
VMWARE_OLD = FIXTURES / "dmidecode" / "handwritten-dmidecode2-layout-vmware-phantom-slots.txt"
NO_SMBIOS = FIXTURES / "dmidecode" / "firecracker-no-smbios.txt"


def assert_smbios_valid(parsed: dmidecode.Smbios) -> None:
    assert_section_valid("board", parsed.board)
    assert_section_valid("cpu", parsed.cpu)
    assert_section_valid("memory", parsed.memory)
    psu = {"ipmi_device": None, "power_supplies": parsed.power_supplies, "fru_devices": []}
    assert_section_valid("psu", psu)


# -- parser ---------------------------------------------------------------------------------


def test_server_board_keeps_real_values_and_drops_placeholders_with_their_raw_text():
    board = parse(SERVER.read_text()).board
    assert board is not None and board.source == "dmidecode"
    assert (board.system.manufacturer, board.system.product) == ("Supermicro", "SYS-2029U-TR4")
    assert board.system.serial == "S123456X8B00001"
    assert board.system.uuid is None
    assert board.system.placeholders == {
        "uuid": "00000000-0000-0000-0000-000000000000",
        "version": "0123456789",
        "sku": "To Be Filled By O.E.M.",
    }
    assert board.bios.vendor == "American Megatrends Inc." and board.bios.revision == "5.12"
    assert board.baseboard.serial == "ZM18AS000001"
    assert board.baseboard.placeholders == {"asset_tag": "Base Board Asset Tag"}
    assert (board.chassis.type, board.chassis.serial) == ("Rack Mount Chassis", "C2190LH00A00001")
    assert board.chassis.sku is None and board.chassis.placeholders["sku"] == "Default string"
    assert board.virtual_machine is False and board.hypervisor is None


def test_unpopulated_socket_is_listed_not_dropped():
    cpu = parse(SERVER.read_text()).cpu
    assert [s.designation for s in cpu.sockets] == ["CPU1", "CPU2"]
    first, second = cpu.sockets
    assert (first.populated, first.enabled) == (True, True)
    assert first.model == "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"
    assert (first.core_count, first.core_enabled, first.thread_count) == (16, 16, 32)
    assert (first.max_speed_mhz, first.current_speed_mhz) == (4000, 2100)
    assert (second.populated, second.enabled, second.model) == (False, False, None)
    assert (cpu.socket_count, cpu.populated_count, cpu.core_count, cpu.thread_count) == (
        2,
        1,
        16,
        32,
    )


def test_dimms_sizes_speeds_in_mhz_and_empty_slot():
    memory = parse(SERVER.read_text()).memory
    assert [s.locator for s in memory.slots] == ["P1-DIMMA1", "P1-DIMMB1", "P1-DIMMC1"]
    a1, b1, c1 = memory.slots
    assert a1.size_bytes == 32 * 1024**3 and b1.size_bytes == 16384 * 1024**2
    # dmidecode 3.0 still says MHz for what is MT/s: same number, raw kept.
    assert (a1.speed_mts, a1.speed_raw) == (2666, "2666 MHz")
    assert (a1.configured_speed_mts, a1.configured_speed_raw) == (2400, "2400 MHz")
    assert a1.part_number == "M393A4K40CB2-CTD"  # trailing spaces trimmed
    assert a1.type == "DDR4" and a1.rank == 2 and a1.ecc is True
    assert c1.populated is False and c1.size_bytes is None and c1.size_raw == "No Module Installed"
    assert c1.manufacturer is None and c1.placeholders["manufacturer"] == "NO DIMM"
    assert (memory.slot_count, memory.populated_count, memory.empty_count) == (3, 2, 1)
    assert memory.total_bytes == 48 * 1024**3
    assert memory.arrays[0].ecc is True and memory.arrays[0].maximum_capacity_bytes == 3 * 1024**4


def test_type_39_power_supplies():
    first, second = parse(SERVER.read_text()).power_supplies
    assert (first.name, first.manufacturer, first.serial) == (
        "PWS-1K62A-1R",
        "SUPERMICRO",
        "P1K62CH00A00001",
    )
    assert (first.capacity_w, first.capacity_source, first.present) == (1600, "smbios", True)
    assert (second.present, second.capacity_w, second.serial) == (False, None, None)


def test_dmidecode_2_layout_vmware_phantom_slots_are_not_missing_dimms():
    parsed = parse(VMWARE_OLD.read_text())
    assert parsed.dmidecode_version == "2.9" and parsed.smbios_version == "2.4"
    board = parsed.board
    assert board.virtual_machine is True and board.hypervisor == "vmware"
    assert board.system.uuid == "564d1122-3344-5566-7788-99aabbccddee"
    memory = parsed.memory
    assert (memory.slot_count, memory.populated_count) == (3, 1)
    assert (memory.empty_count, memory.phantom_slot_count) == (0, 2)
    assert memory.total_bytes == 4096 * 1024**2
    sockets = parsed.cpu.sockets
    assert [(s.populated, s.enabled) for s in sockets] == [(True, True), (True, False)]


def test_no_smbios_output_is_empty_not_an_error():
    parsed = parse(NO_SMBIOS.read_text())
    assert parsed.dmidecode_version == "3.4"
    assert parsed.record_count == 0
    assert (parsed.board, parsed.cpu, parsed.memory, parsed.power_supplies) == (
        None,
        None,
        None,
        [],
    )


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("To Be Filled By O.E.M.", True),
        ("to be filled by o.e.m.", True),
        ("Not Specified", True),
        ("Default string", True),
        ("None", True),
        ("0123456789", True),
        ("SerNum02", True),
        ("PartNum1", True),
        ("00000000", True),
        ("FFFFFFFFFFFF", True),
        ("..........", True),
        ("--", True),
        ("", True),
        ("   ", True),
        ("S411294X9C07713", False),
        ("00", False),  # a short version string can be real
        ("Other", False),  # a real chassis type
        ("Dell Inc.", False),
    ],
)
def test_placeholders(value, placeholder):
    assert is_placeholder(value) is placeholder


def test_uuid_all_f_is_not_an_identity():
    assert dmidecode.clean_uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF") == (
        None,
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    )
    assert dmidecode.clean_uuid("Not Settable") == (None, "Not Settable")


QEMU_T0123 = FIXTURES / "dmidecode" / "qemu-q35-t0123.txt"


@pytest.mark.parametrize(
    "placeholder",
    [
        # AMI's default, seen on Supermicro, ASRock and Gigabyte boards nobody programmed.
        "03000200-0400-0500-0006-000700080009",
        # The same bytes as dmidecode prints them for SMBIOS < 2.6 (no byte swap).
        "00020003-0004-0005-0006-000700080009",
        # OnlineLabs (realworld Solvik_netbox-agent__OnlineLabs-unknown.txt) and others.
        "12345678-1234-5678-90AB-CDDEEFAABBCC",
        "78563412-3412-7856-90ab-cddeefaabbcc",
    ],
)
def test_well_known_placeholder_uuids_are_not_identities(placeholder):
    """A fleet deduplicated by UUID would merge every machine shipping one (review B.1.9)."""
    text = QEMU_T0123.read_text().replace("3a1d6f30-9c2e-4b7a-8f11-2d5c6e0b4a17", placeholder)
    system = parse(text).board.system
    assert system.uuid is None
    assert system.placeholders["uuid"] == placeholder
    # A real one beside it is kept, lower case, as before.
    assert parse(QEMU_T0123.read_text()).board.system.uuid == (
        "3a1d6f30-9c2e-4b7a-8f11-2d5c6e0b4a17"
    )


def test_records_indented_with_spaces_and_repeated_keys():
    text = (
        "Handle 0x0001, DMI type 1, 27 bytes\nSystem Information\n"
        "    Manufacturer: HPE\n    Product Name: ProLiant DL380 Gen10\n"
        "    Serial Number: CZ2D1234AB\n    Serial Number: ignored\n"
    )
    system = parse(text).board.system
    assert (system.manufacturer, system.product, system.serial) == (
        "HPE",
        "ProLiant DL380 Gen10",
        "CZ2D1234AB",
    )


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixtures_match_the_schemas(path):
    assert_smbios_valid(parse(path.read_text()))


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    assert_read_from(text, parse(text))


HANDLE_LINE = re.compile(r"Handle 0x[0-9A-Fa-f]")
# Identity fields, copied from the text as they are (a UUID in lower case), never made up.
COPIED_FIELDS = ("serial", "part_number", "uuid", "asset_tag", "product", "locator")


def assert_read_from(text: str, parsed: dmidecode.Smbios) -> None:
    """What any input gives: valid sections; one record per `Handle 0x..` line and nothing
    without one; identity strings only as the text has them."""
    assert_smbios_valid(parsed)
    assert parsed.record_count == sum(
        1 for line in text.splitlines() if HANDLE_LINE.match(line.strip())
    )
    if parsed.record_count == 0:
        assert (parsed.board, parsed.cpu, parsed.memory, parsed.power_supplies) == (
            None,
            None,
            None,
            [],
        )
    lowered = text.lower()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in COPIED_FIELDS and isinstance(item, str):
                    assert item.lower() in lowered, (key, item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(to_jsonable(parsed))


DMI_ALPHABET = st.sampled_from(
    [
        "Handle 0x0001, DMI type 17, 40 bytes\n",
        "Handle 0x0002\n",
        "\tDMI type 4, 35 bytes.\n",
        "Memory Device\n",
        "\tSize: 16 GB\n",
        "\tSize: No Module Installed\n",
        "\tArray Handle: 0x0001\n",
        "\tSpeed: 2933 MT/s\n",
        "\t\tPCI is supported\n",
        "\tStatus: Populated, Enabled\n",
        "\tUUID: 00000000-0000-0000-0000-000000000000\n",
        "\tUse: Video Memory\n",
        "Processor Information\n",
        "Handle 0x0003, DMI type 1, 27 bytes\n",
        "System Information\n",
        "\tSerial Number: S411294X9C07713\n",
        "\tPart Number: M393A4K40DB3-CWE\n",
        ":\n",
        "\n",
        "\t",
        "# dmidecode 3.5\n",
    ]
)


@settings(max_examples=150, deadline=10_000)
@given(st.lists(DMI_ALPHABET, max_size=40))
def test_never_raises_on_shuffled_dmidecode_lines(parts):
    text = "".join(parts)
    assert_read_from(text, parse(text))


@settings(
    max_examples=30, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(path, data):
    text = mangle(data, path.read_text())
    assert_read_from(text, parse(text))


# -- collectors through a replay ------------------------------------------------------------

SYSFS_DMI = {
    "/sys/class/dmi/id/sys_vendor": "QEMU\n",
    "/sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
    "/sys/class/dmi/id/product_uuid": "0b6c3f1e-2b8a-4c9e-9d55-3f0a1c2e7b11\n",
    "/sys/class/dmi/id/chassis_type": "1\n",
    "/sys/class/dmi/id/chassis_vendor": "QEMU\n",
    "/sys/class/dmi/id/board_serial": "\n",
}
CPUINFO_VM = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor lahf_lm\n"


def test_board_collector_reads_dmidecode(tmp_path):
    capture = write_capture(tmp_path, [(["dmidecode"], 0, SERVER.read_text(), "")])
    probe, recorder = probe_over(capture, "board")
    board = dmidecode.collect_board(probe)
    assert board.source == "dmidecode" and board.system.serial == "S123456X8B00001"
    assert probe.errors == [] and probe.notes == []
    assert [r.argv for r in recorder.results] == [("dmidecode",)]
    assert_section_valid("board", board)


def test_board_falls_back_to_sysfs_when_dmidecode_finds_no_smbios(tmp_path):
    capture = write_capture(
        tmp_path,
        [
            (
                ["dmidecode", "-t", "0,1,2,3"],
                1,
                NO_SMBIOS.read_text(),
                "/dev/mem: No such file or directory\n",
            )
        ],
        files={**SYSFS_DMI, "/proc/cpuinfo": CPUINFO_VM},
    )
    probe, _ = probe_over(capture, "board")
    board = dmidecode.collect_board(probe)
    assert board.source == "sysfs"
    assert (board.system.manufacturer, board.system.product) == (
        "QEMU",
        "Standard PC (Q35 + ICH9, 2009)",
    )
    assert board.system.uuid == "0b6c3f1e-2b8a-4c9e-9d55-3f0a1c2e7b11"
    assert board.chassis.type == "Other"  # sysfs gives the number 1
    assert board.baseboard is None  # an empty board_serial is not a baseboard
    assert board.virtual_machine is True and board.hypervisor == "qemu"
    assert "/proc/cpuinfo flag: hypervisor" in board.virtual_machine_evidence
    assert probe.errors == []
    assert any("no SMBIOS" in n for n in probe.notes)
    assert_section_valid("board", board)


def test_board_without_dmidecode_and_without_sysfs_is_null_with_a_note(tmp_path):
    probe, _ = probe_over(write_capture(tmp_path, []), "board")
    assert dmidecode.collect_board(probe) is None
    assert probe.errors == [] and probe.notes == ["dmidecode is not installed"]


def test_unexpected_dmidecode_failure_is_an_error(tmp_path):
    capture = write_capture(
        tmp_path, [(["dmidecode", "-t", "4"], 2, "", "dmidecode: invalid option -- 'x'\n")]
    )
    probe, _ = probe_over(capture, "cpu")
    assert dmidecode.collect_cpu(probe) is None
    assert probe.errors == ["dmidecode -t 4: exit 2: dmidecode: invalid option -- 'x'"]


def test_cpu_and_memory_collectors(tmp_path):
    text = SERVER.read_text()
    capture = write_capture(
        tmp_path,
        [(["dmidecode", "-t", "4"], 0, text, ""), (["dmidecode", "-t", "16,17"], 0, text, "")],
        files={"/sys/class/dmi/id/sys_vendor": "Supermicro\n", "/proc/cpuinfo": "flags\t: fpu\n"},
    )
    probe, _ = probe_over(capture, "cpu")
    cpu = dmidecode.collect_cpu(probe)
    assert cpu.populated_count == 1 and cpu.sockets[0].model.startswith("Intel(R) Xeon(R) Gold")
    memory = dmidecode.collect_memory(probe)
    assert memory.virtual_machine is False and memory.empty_count == 1
    assert probe.errors == []
    assert_section_valid("cpu", cpu)
    assert_section_valid("memory", memory)


def test_memory_collector_marks_vm_phantom_slots_from_sysfs(tmp_path):
    capture = write_capture(
        tmp_path,
        [(["dmidecode", "-t", "16,17"], 0, VMWARE_OLD.read_text(), "")],
        files={
            "/sys/class/dmi/id/sys_vendor": "VMware, Inc.\n",
            "/sys/class/dmi/id/product_name": "VMware Virtual Platform\n",
        },
    )
    probe, _ = probe_over(capture, "memory")
    memory = dmidecode.collect_memory(probe)
    assert memory.virtual_machine is True
    assert (memory.populated_count, memory.empty_count, memory.phantom_slot_count) == (1, 0, 2)


# -- real-world outputs ---------------------------------------------------------------------

# What a person reading each file sees: file stem fragment -> expected values.
SPOT_CHECKS = {
    # Its UUID is the well-known placeholder 12345678-1234-5678-90AB-CDDEEFAABBCC.
    "Solvik_netbox-agent__OnlineLabs-unknown": {"uuid": None},
    "glpi-project_glpi-agent__dell-r640-1": {
        "serial": "6J29H63",
        "product": "PowerEdge R640",
        "populated_dimms": 12,
        "total_gib": 96,
        "cpu_model": "Intel(R) Xeon(R) Silver 4210 CPU @ 2.20GHz",
        "psus": 2,
    },
    "glpi-project_glpi-agent__hp-dl360-gen8": {"serial": "USE2236835", "populated_dimms": 8},
    "linuxhw_DMI__Server_ASRockRack_GENOAD12M3-2Q-H_C450CA5F12F0": {
        "serial": None,  # hw-probe masks serials as "--"
        "cpu_model": "AMD EPYC 9454P 48-Core Processor",
        "cores": 48,
        "populated_dimms": 12,
        "total_gib": 384,
    },
    "glpi-project_glpi-agent__vmware-esx": {"hypervisor": "vmware", "populated_dimms": 1},
    "glpi-project_glpi-agent__windows-hyperV-2019": {"hypervisor": "hyper-v"},
    "glpi-project_glpi-agent__rhel-3.9": {"hypervisor": "virtualbox", "product": "VirtualBox"},
    "linuxhw_DMI__Desktop_QEMU_Standard-PC_418878F10378": {"hypervisor": "qemu"},
    "glpi-project_glpi-agent__psu-t39-ProLiant_DL380_Gen10": {"psus": 2, "psu_watts": 800},
    "glpi-project_glpi-agent__memory-t17-hynix-kingmax": {"populated_dimms": 2, "total_gib": 16},
    "glpi-project_glpi-agent__oracle-server-x5-2": {
        "serial": "1634NM1107",
        "populated_dimms": 16,
        "total_gib": 512,
    },
}


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/dmidecode is not there")
@pytest.mark.parametrize("path", REALWORLD_FILES, ids=lambda p: p.stem)
def test_realworld_outputs_parse_and_match_the_schemas(path):
    parsed = parse(path.read_bytes().decode("utf-8", errors="replace"))
    assert parsed.record_count > 0
    assert_smbios_valid(parsed)
    expected = SPOT_CHECKS.get(path.stem)
    if expected is None:
        return
    board, cpu, memory = parsed.board, parsed.cpu, parsed.memory
    for key, value in expected.items():
        actual = {
            "serial": lambda: board.system.serial,
            "uuid": lambda: board.system.uuid,
            "product": lambda: board.system.product,
            "hypervisor": lambda: board.hypervisor,
            "populated_dimms": lambda: memory.populated_count,
            "total_gib": lambda: memory.total_bytes / 1024**3,
            "cpu_model": lambda: cpu.sockets[0].model,
            "cores": lambda: cpu.core_count,
            "psus": lambda: len(parsed.power_supplies),
            "psu_watts": lambda: parsed.power_supplies[0].capacity_w,
        }[key]()
        assert actual == value, f"{key}: {actual!r} != {value!r}"


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/dmidecode is not there")
def test_realworld_spot_checks_name_existing_files():
    stems = {p.stem for p in REALWORLD_FILES}
    assert set(SPOT_CHECKS) <= stems


# -- the whole audit over a replay: these sections inside the envelope schema ---------------


def test_audit_replay_with_board_cpu_memory_pcie_psu_validates(tmp_path, validate_document):
    from bee.audit import run_audit
    from bee.summary import summary_lines

    server = SERVER.read_text()
    lspci_text = (FIXTURES / "lspci" / "h200-firecracker-vmm-nn-D.txt").read_text()
    fru_text = (FIXTURES / "ipmitool-fru" / "handwritten-psu-names-and-records.txt").read_text()
    capture = write_capture(
        tmp_path,
        [
            (["dmidecode"], 0, server, ""),
            (["lspci", "-vmm", "-nn", "-D"], 0, lspci_text, ""),
            (list(ipmitool.FRU_ARGV), 1, fru_text, ""),
        ],
        files={"/sys/class/dmi/id/sys_vendor": "Supermicro\n"},
        dirs={"/dev": ["ipmi0", "null"]},
    )
    document = run_audit(ReplayRunner(capture), deadline_s=30, mode="replay")
    validate_document(document)
    # One dmidecode for the four sections that read SMBIOS.
    assert [c["argv"] for c in document["commands"] if c["argv"][0] == "dmidecode"] == [
        ["dmidecode"]
    ]
    for section in ("board", "cpu", "memory", "pcie", "psu"):
        assert document["collectors"][section]["status"] == "ok", document["collectors"]
        assert not [e for e in document["errors"] if e["collector"] == section]
    assert document["board"]["system"]["serial"] == "S123456X8B00001"
    # Four from the FRU, and SMBIOS PSU1 (its serial is no FRU entry's); SMBIOS PSU2 ("Not
    # Present") is the FRU's empty bay PS2.
    assert len(document["psu"]["power_supplies"]) == 4 + 1
    lines = summary_lines(document)
    assert lines[0].endswith("audit of Supermicro SYS-2029U-TR4, S/N S123456X8B00001")
    assert "CPU: 1 x Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz (16 cores, 32 threads)" in lines
    assert "Memory: 48.0 GiB in 2 of 3 slots" in lines


# -- the QEMU q35 guest of `nox -s vm_test` (real dmidecode 3.4 output) ---------------------

QEMU = {name: FIXTURES / "dmidecode" / f"qemu-q35-{name}.txt" for name in ("full", "t0123")}
QEMU.update({name: FIXTURES / "dmidecode" / f"qemu-q35-{name}.txt" for name in ("t4", "t16-17")})


def test_qemu_guest_with_a_supermicro_identity_is_still_known_as_a_vm():
    board = parse(QEMU["t0123"].read_text()).board
    assert (board.system.manufacturer, board.system.product, board.system.serial) == (
        "Supermicro",
        "SYS-4029GP-TRT2",
        "S411294X9C07713",
    )
    assert board.system.uuid == "3a1d6f30-9c2e-4b7a-8f11-2d5c6e0b4a17"
    assert (board.baseboard.product, board.baseboard.serial) == ("X11DPG-OT-CPU", "OM19BS004211")
    assert (board.chassis.type, board.chassis.serial) == ("Other", "C4180LK19A50211")
    assert (board.bios.version, board.bios.revision) == ("3.8a", "5.22")
    # QEMU sets the SMBIOS "virtual machine" bit whatever -smbios says about the vendor.
    assert board.virtual_machine is True and board.hypervisor is None
    assert board.virtual_machine_evidence == [f"BIOS characteristic: {dmidecode.VM_CHARACTERISTIC}"]


def test_qemu_guest_sockets_and_dimms():
    cpu = parse(QEMU["t4"].read_text()).cpu
    assert [s.designation for s in cpu.sockets] == ["CPU 0", "CPU 1"]
    assert {s.model for s in cpu.sockets} == {"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"}
    assert {s.part_number for s in cpu.sockets} == {"CD8069504449401"}
    memory = parse(QEMU["t16-17"].read_text()).memory
    assert [d.size_bytes // 1024**2 for d in memory.slots] == [16384, 2048]
    assert {(d.serial, d.speed_mts, d.configured_speed_mts) for d in memory.slots} == {
        ("03B1C4D2", 2933, 2933)
    }
    assert memory.arrays[0].ecc is True and memory.slots[0].ecc is True


def test_qemu_guest_full_output_holds_what_the_per_type_runs_hold():
    full = to_jsonable(parse(QEMU["full"].read_text()))
    assert full["board"] == to_jsonable(parse(QEMU["t0123"].read_text()).board)
    assert full["cpu"] == to_jsonable(parse(QEMU["t4"].read_text()).cpu)
    slots = to_jsonable(parse(QEMU["t16-17"].read_text()).memory)["slots"]
    assert full["memory"]["slots"] == slots
