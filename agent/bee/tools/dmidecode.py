"""dmidecode: board (SMBIOS types 0-3), CPUs (type 4), memory (types 16, 17), PSUs (type 39).

Command: `dmidecode` (all types), run once per audit and shared by the board, cpu, memory and
psu (ipmitool.py) sections; captures made by older versions hold `dmidecode -t 0,1,2,3`,
`-t 4`, `-t 16,17` and `-t 39` instead, which a replay still reads. `bee parse dmidecode FILE`
reads any of these outputs into one `Smbios` document. The parser reads the text layout of dmidecode
2.2 to 3.6 (old "Handle 0x0000 / DMI type 0, 20 bytes." records as well as the one-line
"Handle 0x0000, DMI type 0, 26 bytes" header), whatever the indentation (tabs or spaces).

Without dmidecode, or when it finds no SMBIOS entry point (some VMs, `/dev/mem` locked down),
the board section falls back to `/sys/class/dmi/id`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bee import document
from bee.capture import NOT_CAPTURED
from bee.probe import DEFAULT_TIMEOUT_S, Probe
from bee.registry import Collector
from bee.summary import counted, human_bytes

# -- placeholders -----------------------------------------------------------------------------

# Values firmware writes where the vendor never filled a string in. Compared case-insensitively.
PLACEHOLDERS = frozenset(
    s.lower()
    for s in (
        "To Be Filled By O.E.M.",
        "To Be Filled By OEM",
        "Not Specified",
        "Not Present",
        "Not Available",
        "Not Applicable",
        "Not Provided",
        "Not Settable",
        "Default string",
        "Default",
        "None",
        "Unknown",
        "<OUT OF SPEC>",
        "<BAD INDEX>",
        "N/A",
        "NA",
        "OEM",
        "O.E.M.",
        "Empty",
        "Invalid",
        "NO DIMM",
        "Not Installed",
        "No Module Installed",
        "0123456789",
        "1234567890",
        "123456789",
        "System Serial Number",
        "System Product Name",
        "System manufacturer",
        "System Manufacturer",
        "System Version",
        "System Name",
        "System SKU",
        "SKU",
        "Type1ProductConfigId",
        "Type1Family",
        "Type2 - Board Serial Number",
        "Base Board Serial Number",
        "Base Board Product Name",
        "Base Board Version",
        "Base Board Asset Tag",
        "Chassis Serial Number",
        "Chassis Manufacture",
        "Chassis Manufacturer",
        "Chassis Version",
        "Chassis Asset Tag",
        "Asset Tag",
        "Asset-1234567890",
        "No Asset Tag",
        "No Asset Information",
        "Serial Number",
        "Part Number",
        "Board Serial Number",
        "$(DEFAULT_STRING)",
        "Unknown Processor",
    )
)
# "SerNum0", "PartNum3", "AssetTagNum1", "Manufacturer0", "Dimm0_Serial", "Array1_PartNumber0"
_NUMBERED_PLACEHOLDER = re.compile(
    r"^(?:dimm|array|node)?\d*_?"
    r"(?:sernum|partnum|assettagnum|assettag|manufacturer|serial|serialnumber|partnumber)\d*$",
    re.IGNORECASE,
)
_SAME_CHAR = re.compile(r"^(.)\1*$")


def is_placeholder(value: str) -> bool:
    text = value.strip()
    if not text:
        return True
    lowered = text.lower()
    if lowered in PLACEHOLDERS or _NUMBERED_PLACEHOLDER.match(text):
        return True
    if text in ("0", ".", "-", "?"):
        return True
    # Redacted by whoever shared the output ("REDACTED", "<redacted>", "[REDACTED]"), and the
    # counting serial firmware and GPU boards ship with ("0123456789012").
    if "redacted" in lowered or (len(text) >= 8 and "01234567890123456789".startswith(text)):
        return True
    # A run of one character: "00000000", "FFFFFFFF", "........", "--" (hw-probe's mask).
    # Short runs of other characters ("00", "11") can be real versions.
    compact = text.replace(" ", "")  # "00 00 00 00 00 00 00 00": an unset CPUID
    return bool(_SAME_CHAR.match(compact)) and (len(compact) >= 4 or compact[0] in ".-_*")


class _Fields:
    """Reads fields of one record, turning placeholders into None and remembering the raw."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.placeholders: dict[str, str] = {}

    def raw(self, key: str) -> str | None:
        value = self.values.get(key)
        return value.strip() if value is not None else None

    def text(self, name: str, *keys: str) -> str | None:
        """The first of `keys` present; a placeholder becomes None, recorded under `name`."""
        for key in keys:
            value = self.raw(key)
            if value is None:
                continue
            if is_placeholder(value):
                if value:
                    self.placeholders[name] = value
                return None
            return value
        return None


def _smbios_byte_order(hex_digits: str) -> str:
    """The other of the two ways dmidecode prints one UUID: SMBIOS 2.6 made its first three
    fields little-endian, so the same 16 bytes read differently before and after."""
    if len(hex_digits) != 32:
        return hex_digits
    swapped = [hex_digits[:8], hex_digits[8:12], hex_digits[12:16]]
    return (
        "".join(
            "".join(field[i : i + 2] for i in range(len(field) - 2, -1, -2)) for field in swapped
        )
        + hex_digits[16:]
    )


# UUIDs firmware ships unprogrammed on many machines at once: AMI's default (Supermicro, ASRock,
# Gigabyte boards) and OnlineLabs'. Each is matched in both byte orders.
_PLACEHOLDER_UUIDS = frozenset(
    hexed
    for u in ("03000200040005000006000700080009", "123456781234567890abcddeefaabbcc")
    for hexed in (u, _smbios_byte_order(u))
)


def clean_uuid(value: str | None) -> tuple[str | None, str | None]:
    """(uuid, raw placeholder): all-zero, all-F, 'Not Settable' and the well-known unprogrammed
    UUIDs are not identities (a fleet deduplicated by UUID would merge those machines)."""
    if value is None:
        return None, None
    text = value.strip()
    hex_digits = text.replace("-", "").lower()
    if (
        is_placeholder(text)
        or (hex_digits and _SAME_CHAR.match(hex_digits))
        or hex_digits in _PLACEHOLDER_UUIDS
    ):
        return None, (text or None)
    # A malformed UUID (some firmware prints 35 hex digits) is still what the machine says.
    return text.lower(), None


# -- numbers ----------------------------------------------------------------------------------

_UNIT_BYTES = {
    "bytes": 1,
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
    "tb": 1024**4,
    "tib": 1024**4,
}


def parse_size_bytes(value: str | None) -> int | None:
    """'16384 MB', '32 GB', '512 kB' -> bytes (SMBIOS sizes are binary); else None."""
    if not value:
        return None
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\b", value)
    if not match:
        return None
    factor = _UNIT_BYTES.get(match.group(2).lower())
    if factor is None:
        return None
    return int(float(match.group(1)) * factor)


def parse_int(value: str | None) -> int | None:
    if not value:
        return None
    match = re.match(r"^\s*(\d+)\b", value)
    return int(match.group(1)) if match else None


def parse_speed(value: str | None, units: tuple[str, ...]) -> int | None:
    """'3800 MHz' -> 3800, '2933 MT/s' -> 2933; 'Unknown' -> None."""
    if not value:
        return None
    match = re.match(r"^\s*(\d+)\s*(\S+)", value)
    if not match or match.group(2) not in units:
        return None
    number = int(match.group(1))
    return number or None


# -- records ----------------------------------------------------------------------------------


@dataclass(slots=True)
class DmiRecord:
    handle: str
    dmi_type: int
    title: str = ""
    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)


# "Handle 0x0001, DMI type 1, 27 bytes" (dmidecode >= 2.7) or "Handle 0x0001" (2.2-2.6).
_HANDLE = re.compile(r"^Handle (0x[0-9A-Fa-f]+)(?:, DMI type (\d+), \d+ bytes)?")
# "DMI type 1, 27 bytes." on its own line, in dmidecode 2.2-2.6.
_OLD_TYPE = re.compile(r"^DMI type (\d+), \d+ bytes")
_VERSION = re.compile(r"^# dmidecode (\S+)")
# "SMBIOS 3.2.0 present." / "Legacy DMI 2.0 present."
_SMBIOS = re.compile(r"^(?:SMBIOS|Legacy DMI) (\S+) present")


@dataclass(slots=True)
class _Scan:
    records: list[DmiRecord] = field(default_factory=list)
    dmidecode_version: str | None = None
    smbios_version: str | None = None
    no_entry_point: bool = False


def _indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def scan(text: str) -> _Scan:
    """Split dmidecode text into records. Never raises; unknown lines are skipped."""
    result = _Scan()
    record: DmiRecord | None = None
    title_indent = key_indent = -1
    last_key: str | None = None
    for raw_line in text.splitlines():
        line = raw_line.rstrip("\r\n")
        stripped = line.strip()
        if not stripped:
            continue
        if match := _HANDLE.match(stripped):
            dmi_type = int(match.group(2)) if match.group(2) else -1
            record = DmiRecord(handle=match.group(1).lower(), dmi_type=dmi_type)
            result.records.append(record)
            title_indent = key_indent = -1
            last_key = None
            continue
        if record is None:
            if match := _VERSION.match(stripped):
                result.dmidecode_version = match.group(1)
            elif match := _SMBIOS.match(stripped):
                result.smbios_version = match.group(1)
            elif "No SMBIOS nor DMI entry point found" in stripped:
                result.no_entry_point = True
            continue
        indent = _indent(line)
        if record.dmi_type < 0 and (match := _OLD_TYPE.match(stripped)):
            record.dmi_type = int(match.group(1))
            continue
        if title_indent < 0:
            # "BIOS Information": the record's title, at the header's indentation or below it.
            record.title = stripped
            title_indent = indent
            continue
        if key_indent < 0:
            if indent <= title_indent and record.dmi_type >= 0:
                continue  # a stray line between records, e.g. "# comment"
            key_indent = indent
        if indent > key_indent:
            # "\t\tPCI is supported": an item of the list under the last key.
            if last_key is not None:
                record.lists.setdefault(last_key, []).append(stripped)
            continue
        if indent < key_indent:
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            last_key = None
            continue
        key = key.strip()
        last_key = key
        # First occurrence wins: a key repeated in one record is a dmidecode quirk, not data.
        record.values.setdefault(key, value.strip())
    return result


def of_type(records: Iterable[DmiRecord], *types: int) -> list[DmiRecord]:
    return [r for r in records if r.dmi_type in types]


# -- virtual machines -------------------------------------------------------------------------

# (patterns over "vendor | product | bios vendor | bios version | board vendor", hypervisor):
# all of an entry's patterns, each found after the one before. No `a.*b` in one pattern: that
# is quadratic in the number of a's.
_HYPERVISORS: tuple[tuple[tuple[re.Pattern[str], ...], str], ...] = tuple(
    (tuple(re.compile(p, re.IGNORECASE) for p in patterns.split(" THEN ")), name)
    for patterns, name in (
        (r"\bqemu\b|standard pc \(", "qemu"),
        (r"\bkvm\b", "kvm"),
        (r"vmware", "vmware"),
        (r"virtualbox|innotek", "virtualbox"),
        (r"hyper-v", "hyper-v"),
        (r"microsoft corporation THEN \|\s*virtual machine\b", "hyper-v"),
        (r"\bxen\b|hvm domu", "xen"),
        (r"\bbochs\b", "bochs"),
        (r"parallels", "parallels"),
        (r"\bbhyve\b", "bhyve"),
        (r"openstack", "openstack"),
        (r"google compute engine", "google"),
        (r"firecracker", "firecracker"),
        (r"cloud hypervisor", "cloud-hypervisor"),
    )
)
VM_CHARACTERISTIC = "System is a virtual machine"


def detect_hypervisor(strings: Iterable[str | None]) -> str | None:
    joined = " | ".join(s for s in strings if s)
    for patterns, name in _HYPERVISORS:
        at = 0
        for pattern in patterns:
            match = pattern.search(joined, at)
            if match is None:
                break
            at = match.end()
        else:
            return name
    return None


# -- board ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Bios:
    vendor: str | None
    version: str | None
    release_date: str | None
    revision: str | None  # "BIOS Revision: 5.22"
    vm_characteristic: bool  # firmware says "System is a virtual machine"
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class System:
    manufacturer: str | None
    product: str | None
    version: str | None
    serial: str | None
    uuid: str | None  # lower case
    sku: str | None
    family: str | None
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseboard:
    manufacturer: str | None
    product: str | None
    version: str | None
    serial: str | None
    asset_tag: str | None
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chassis:
    type: str | None  # "Rack Mount Chassis"
    manufacturer: str | None
    version: str | None
    serial: str | None
    asset_tag: str | None
    sku: str | None
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Board:
    source: str  # "dmidecode" | "sysfs"
    bios: Bios | None
    system: System | None
    baseboard: Baseboard | None
    chassis: Chassis | None
    virtual_machine: bool
    hypervisor: str | None  # "qemu", "kvm", "vmware", "hyper-v", "xen", ...
    virtual_machine_evidence: list[str]


def _bios(record: DmiRecord) -> Bios:
    f = _Fields(record.values)
    characteristics = record.lists.get("Characteristics", [])
    return Bios(
        vendor=f.text("vendor", "Vendor"),
        version=f.text("version", "Version"),
        release_date=f.text("release_date", "Release Date"),
        revision=f.text("revision", "BIOS Revision"),
        vm_characteristic=VM_CHARACTERISTIC in characteristics,
        placeholders=f.placeholders,
    )


def _system(record: DmiRecord) -> System:
    f = _Fields(record.values)
    uuid, uuid_raw = clean_uuid(f.raw("UUID"))
    if uuid_raw:
        f.placeholders["uuid"] = uuid_raw
    return System(
        manufacturer=f.text("manufacturer", "Manufacturer"),
        product=f.text("product", "Product Name", "Product"),
        version=f.text("version", "Version"),
        serial=f.text("serial", "Serial Number"),
        uuid=uuid,
        sku=f.text("sku", "SKU Number"),
        family=f.text("family", "Family"),
        placeholders=f.placeholders,
    )


def _baseboard(record: DmiRecord) -> Baseboard:
    f = _Fields(record.values)
    return Baseboard(
        manufacturer=f.text("manufacturer", "Manufacturer"),
        product=f.text("product", "Product Name", "Product"),
        version=f.text("version", "Version"),
        serial=f.text("serial", "Serial Number"),
        asset_tag=f.text("asset_tag", "Asset Tag"),
        placeholders=f.placeholders,
    )


def _chassis(record: DmiRecord) -> Chassis:
    f = _Fields(record.values)
    return Chassis(
        type=f.text("type", "Type"),
        manufacturer=f.text("manufacturer", "Manufacturer"),
        version=f.text("version", "Version"),
        serial=f.text("serial", "Serial Number"),
        asset_tag=f.text("asset_tag", "Asset Tag"),
        sku=f.text("sku", "SKU Number"),
        placeholders=f.placeholders,
    )


def _vm_verdict(
    bios: Bios | None, system: System | None, baseboard: Baseboard | None, extra: list[str]
) -> tuple[bool, str | None, list[str]]:
    evidence = list(extra)
    if bios and bios.vm_characteristic:
        evidence.append(f"BIOS characteristic: {VM_CHARACTERISTIC}")
    named = {
        "system manufacturer": system.manufacturer if system else None,
        "system product": system.product if system else None,
        "BIOS vendor": bios.vendor if bios else None,
        "BIOS version": bios.version if bios else None,
        "baseboard manufacturer": baseboard.manufacturer if baseboard else None,
    }
    hypervisor = detect_hypervisor(named.values())
    if hypervisor:
        for label, value in named.items():
            if value and detect_hypervisor([value]) == hypervisor:
                evidence.append(f"{label}: {value}")
        if not any(e.startswith(("system", "BIOS v", "baseboard")) for e in evidence):
            joined = " | ".join(v for v in named.values() if v)
            evidence.append(f"identity strings: {joined}")
    return bool(evidence), hypervisor, evidence


def board_from_records(
    records: list[DmiRecord], extra_evidence: Sequence[str] = ()
) -> Board | None:
    bios_r, system_r = of_type(records, 0), of_type(records, 1)
    board_r, chassis_r = of_type(records, 2), of_type(records, 3)
    if not (bios_r or system_r or board_r or chassis_r):
        return None
    bios = _bios(bios_r[0]) if bios_r else None
    system = _system(system_r[0]) if system_r else None
    baseboard = _baseboard(board_r[0]) if board_r else None
    chassis = _chassis(chassis_r[0]) if chassis_r else None
    vm, hypervisor, evidence = _vm_verdict(bios, system, baseboard, list(extra_evidence))
    return Board(
        source="dmidecode",
        bios=bios,
        system=system,
        baseboard=baseboard,
        chassis=chassis,
        virtual_machine=vm,
        hypervisor=hypervisor,
        virtual_machine_evidence=evidence,
    )


# SMBIOS 3.x, 7.4.1: chassis types, as /sys/class/dmi/id/chassis_type gives the number.
CHASSIS_TYPES = (
    None, "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box", "Mini Tower",
    "Tower", "Portable", "Laptop", "Notebook", "Hand Held", "Docking Station", "All In One",
    "Sub Notebook", "Space-saving", "Lunch Box", "Main Server Chassis", "Expansion Chassis",
    "Sub Chassis", "Bus Expansion Chassis", "Peripheral Chassis", "RAID Chassis",
    "Rack Mount Chassis", "Sealed-case PC", "Multi-system", "CompactPCI", "AdvancedTCA", "Blade",
    "Blade Enclosing", "Tablet", "Convertible", "Detachable", "IoT Gateway", "Embedded PC",
    "Mini PC", "Stick PC",
)  # fmt: skip

SYSFS_DMI = "/sys/class/dmi/id"
# SMBIOS type -> (dmidecode key, file under /sys/class/dmi/id) for the kernel's copy of it.
SYSFS_FIELDS: dict[int, tuple[tuple[str, str], ...]] = {
    0: (
        ("Vendor", "bios_vendor"),
        ("Version", "bios_version"),
        ("Release Date", "bios_date"),
        ("BIOS Revision", "bios_release"),
    ),
    1: (
        ("Manufacturer", "sys_vendor"),
        ("Product Name", "product_name"),
        ("Version", "product_version"),
        ("Serial Number", "product_serial"),
        ("UUID", "product_uuid"),
        ("SKU Number", "product_sku"),
        ("Family", "product_family"),
    ),
    2: (
        ("Manufacturer", "board_vendor"),
        ("Product Name", "board_name"),
        ("Version", "board_version"),
        ("Serial Number", "board_serial"),
        ("Asset Tag", "board_asset_tag"),
    ),
    3: (
        ("Type", "chassis_type"),
        ("Manufacturer", "chassis_vendor"),
        ("Version", "chassis_version"),
        ("Serial Number", "chassis_serial"),
        ("Asset Tag", "chassis_asset_tag"),
    ),
}


def board_from_sysfs(read: Callable[[str], str | None], extra: Sequence[str] = ()) -> Board | None:
    """The kernel's copy of types 0-3, for when dmidecode cannot read the table.

    `read` returns a file's stripped content or None. A file the kernel leaves out (serials
    need root) is an absent key, not a placeholder.
    """
    records = []
    for dmi_type, pairs in SYSFS_FIELDS.items():
        values = {}
        for key, name in pairs:
            value = read(f"{SYSFS_DMI}/{name}")
            if value is None:
                continue
            if name == "chassis_type":
                # The kernel gives the number: "23" -> "Rack Mount Chassis".
                number = parse_int(value)
                known = number is not None and 0 < number < len(CHASSIS_TYPES)
                value = CHASSIS_TYPES[number] if known else f"<OUT OF SPEC> ({value})"
            values[key] = value
        if values:
            records.append(DmiRecord("sysfs", dmi_type, values=values))
    board = board_from_records(records, extra)
    if board is None:
        return None
    return Board(
        source="sysfs",
        bios=board.bios,
        system=board.system,
        baseboard=board.baseboard,
        chassis=board.chassis,
        virtual_machine=board.virtual_machine,
        hypervisor=board.hypervisor,
        virtual_machine_evidence=board.virtual_machine_evidence,
    )


# -- cpu --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuSocket:
    designation: str | None  # "CPU1", "P0"
    populated: bool | None
    enabled: bool | None
    status: str | None  # raw: "Populated, Enabled", "Unpopulated", "Populated, Disabled By BIOS"
    type: str | None  # "Central Processor"
    manufacturer: str | None
    model: str | None  # the "Version" string: "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"
    family: str | None
    signature: str | None  # "Family 6, Model 85, Stepping 7"
    cpuid: str | None  # "ID: 57 06 05 00 FF FB EB BF"
    max_speed_mhz: int | None
    current_speed_mhz: int | None
    external_clock_mhz: int | None
    core_count: int | None
    core_enabled: int | None
    thread_count: int | None
    serial: str | None
    part_number: str | None
    asset_tag: str | None
    upgrade: str | None  # the socket: "Socket LGA3647-1"
    characteristics: list[str]
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cpu:
    sockets: list[CpuSocket]
    socket_count: int
    populated_count: int
    core_count: int | None  # sum over populated sockets that report one
    thread_count: int | None
    # "dmidecode" (SMBIOS type 4), or "proc-cpuinfo" when there is no SMBIOS table: the kernel's
    # view (cpuinfo.py), whose sockets carry only what the kernel knows.
    source: str = "dmidecode"
    flags: list[str] = field(default_factory=list)  # from /proc/cpuinfo, the ones that matter


def _socket(record: DmiRecord) -> CpuSocket:
    f = _Fields(record.values)
    status = f.raw("Status") or None
    populated: bool | None = None
    enabled: bool | None = None
    if status:
        lowered = status.lower()
        populated = not lowered.startswith("unpopulated") and "populated" in lowered
        enabled = populated and lowered.endswith("enabled")
    mhz = ("MHz",)
    return CpuSocket(
        designation=f.text("designation", "Socket Designation"),
        populated=populated,
        enabled=enabled,
        status=status,
        type=f.text("type", "Type"),
        manufacturer=f.text("manufacturer", "Manufacturer"),
        model=f.text("model", "Version"),
        family=f.text("family", "Family"),
        signature=f.text("signature", "Signature"),
        cpuid=f.text("cpuid", "ID"),
        max_speed_mhz=parse_speed(f.raw("Max Speed"), mhz),
        current_speed_mhz=parse_speed(f.raw("Current Speed"), mhz),
        external_clock_mhz=parse_speed(f.raw("External Clock"), mhz),
        core_count=parse_int(f.raw("Core Count")),
        core_enabled=parse_int(f.raw("Core Enabled")),
        thread_count=parse_int(f.raw("Thread Count")),
        serial=f.text("serial", "Serial Number"),
        part_number=f.text("part_number", "Part Number"),
        asset_tag=f.text("asset_tag", "Asset Tag"),
        upgrade=f.text("upgrade", "Upgrade"),
        characteristics=list(record.lists.get("Characteristics", [])),
        placeholders=f.placeholders,
    )


def cpu_from_records(records: list[DmiRecord]) -> Cpu | None:
    sockets = [_socket(r) for r in of_type(records, 4)]
    if not sockets:
        return None
    populated = [s for s in sockets if s.populated]
    cores = [s.core_count for s in populated if s.core_count is not None]
    threads = [s.thread_count for s in populated if s.thread_count is not None]
    return Cpu(
        sockets=sockets,
        socket_count=len(sockets),
        populated_count=len(populated),
        core_count=sum(cores) if cores else None,
        thread_count=sum(threads) if threads else None,
    )


# -- memory -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryArray:
    handle: str
    location: str | None  # "System Board Or Motherboard"
    use: str | None  # "System Memory"
    error_correction: str | None  # raw: "Multi-bit ECC", "Single-bit ECC", "None"
    ecc: bool | None
    maximum_capacity_bytes: int | None
    maximum_capacity_raw: str | None
    slot_count: int | None  # "Number Of Devices"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dimm:
    handle: str
    array_handle: str | None
    locator: str | None  # "DIMM_A1", "CPU1_DIMM_A1"
    bank_locator: str | None  # "P0_Node0_Channel0_Dimm0"
    populated: bool
    size_bytes: int | None
    size_raw: str | None  # "16384 MB", "32 GB", "No Module Installed"
    type: str | None  # "DDR4", "DDR5"
    type_detail: str | None  # "Synchronous Registered (Buffered)"
    form_factor: str | None  # "DIMM", "SODIMM"
    speed_mts: int | None  # rated
    speed_raw: str | None  # "2933 MT/s" (dmidecode >= 3.1) or "2933 MHz" (older)
    configured_speed_mts: int | None  # what it runs at
    configured_speed_raw: str | None
    manufacturer: str | None
    serial: str | None
    part_number: str | None  # trimmed
    asset_tag: str | None
    rank: int | None
    total_width_bits: int | None
    data_width_bits: int | None
    ecc: bool | None  # from the array's Error Correction Type, else from the widths
    memory_technology: str | None  # "DRAM", "Intel Optane persistent memory"
    placeholders: dict[str, str]
    # When the firmware printed the JEDEC id instead of a name ("802C", "CE00", "002C00B3002C"):
    # that id, and `manufacturer` holds the decoded name (or stays the id when unknown).
    manufacturer_jedec_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    arrays: list[MemoryArray]
    slots: list[Dimm]
    slot_count: int
    populated_count: int
    # Empty slots that count: on a virtual machine the firmware lists phantom slots (VMware
    # lists dozens), so there they are reported as phantom instead of empty.
    empty_count: int
    phantom_slot_count: int
    total_bytes: int
    virtual_machine: bool | None  # None: not known from this output alone
    # "dmidecode" (SMBIOS types 16/17), or "proc-meminfo" without an SMBIOS table: then there is
    # no slot list and total_bytes is MemTotal, what the kernel manages (a little below installed).
    source: str = "dmidecode"


_ECC_TRUE = ("single-bit ecc", "multi-bit ecc", "crc", "parity")


def _array(record: DmiRecord) -> MemoryArray:
    f = _Fields(record.values)
    correction = f.raw("Error Correction Type") or None
    ecc: bool | None = None
    if correction:
        lowered = correction.lower()
        ecc = True if lowered in _ECC_TRUE else (False if lowered == "none" else None)
    capacity = f.raw("Maximum Capacity") or None
    return MemoryArray(
        handle=record.handle,
        location=f.text("location", "Location"),
        use=f.text("use", "Use"),
        error_correction=correction,
        ecc=ecc,
        maximum_capacity_bytes=parse_size_bytes(capacity),
        maximum_capacity_raw=capacity,
        slot_count=parse_int(f.raw("Number Of Devices")),
    )


# JEDEC JEP106 manufacturer codes of DRAM module makers: (bank, code with its parity bit).
# Bank n is written as n continuation codes (0x7F) before the code; SMBIOS and SPD print it as
# one byte, often with the parity bit set (0x80 = bank 1, 0x83 = bank 4).
JEDEC_MANUFACTURERS = {
    (0, 0x2C): "Micron Technology",
    (0, 0xCE): "Samsung",
    (0, 0xAD): "SK Hynix",
    (0, 0xC1): "Infineon",
    (0, 0xB3): "IDT",
    (1, 0x98): "Kingston",
    (1, 0x4F): "Transcend",
    (2, 0x9E): "Corsair",
    (3, 0x0B): "Nanya Technology",
    (4, 0xCB): "A-DATA Technology",
    (5, 0x9B): "Crucial Technology",
}


def decode_jedec(value: str | None) -> str | None:
    """ "802C", "0x2C00", "2C00", "002C00B3002C" (module, register and DRAM maker) -> the
    module maker's name; None when the value is not an id or the id is not known."""
    text = (value or "").strip().lower().removeprefix("0x")
    if len(text) not in (4, 8, 12, 16) or any(c not in "0123456789abcdef" for c in text):
        return None
    high, low = int(text[0:2], 16), int(text[2:4], 16)
    for bank, code in ((high, low), (low, high)):  # either byte order is printed
        name = JEDEC_MANUFACTURERS.get((bank & 0x7F, code))
        if name is not None:
            return name
    return None


def _dimm(record: DmiRecord, arrays: dict[str, MemoryArray]) -> Dimm:
    f = _Fields(record.values)
    size_raw = f.raw("Size") or None
    size = parse_size_bytes(size_raw)
    populated = bool(size)
    speed_raw = f.raw("Speed") or None
    configured_raw = f.raw("Configured Memory Speed") or f.raw("Configured Clock Speed") or None
    # dmidecode < 3.1 printed DDR speeds in "MHz" where it now says "MT/s": same number.
    units = ("MT/s", "MHz")
    array_handle = (f.raw("Array Handle") or "").lower() or None
    array = arrays.get(array_handle or "")
    total_width = parse_int(f.raw("Total Width"))
    data_width = parse_int(f.raw("Data Width"))
    ecc = array.ecc if array else None
    if ecc is None and populated and total_width and data_width:
        ecc = total_width > data_width
    part = f.text("part_number", "Part Number")
    manufacturer = f.text("manufacturer", "Manufacturer")
    jedec = decode_jedec(manufacturer)
    return Dimm(
        handle=record.handle,
        array_handle=array_handle,
        locator=f.text("locator", "Locator"),
        bank_locator=f.text("bank_locator", "Bank Locator"),
        populated=populated,
        size_bytes=size if populated else None,
        size_raw=size_raw,
        type=f.text("type", "Type"),
        type_detail=f.text("type_detail", "Type Detail"),
        form_factor=f.text("form_factor", "Form Factor"),
        speed_mts=parse_speed(speed_raw, units),
        speed_raw=speed_raw,
        configured_speed_mts=parse_speed(configured_raw, units),
        configured_speed_raw=configured_raw,
        manufacturer=jedec or manufacturer,
        serial=f.text("serial", "Serial Number"),
        part_number=part.strip() if part else None,
        asset_tag=f.text("asset_tag", "Asset Tag"),
        rank=parse_int(f.raw("Rank")),
        total_width_bits=total_width,
        data_width_bits=data_width,
        ecc=ecc,
        memory_technology=f.text("memory_technology", "Memory Technology"),
        placeholders=f.placeholders,
        manufacturer_jedec_id=manufacturer if jedec else None,
    )


def memory_from_records(records: list[DmiRecord], virtual_machine: bool | None) -> Memory | None:
    arrays = [_array(r) for r in of_type(records, 16)]
    by_handle = {a.handle: a for a in arrays}
    slots = []
    for record in of_type(records, 17):
        dimm = _dimm(record, by_handle)
        array = by_handle.get(dimm.array_handle or "")
        # Video memory, flash and cache arrays are not the system's RAM.
        if array is not None and array.use and array.use != "System Memory":
            continue
        slots.append(dimm)
    if not arrays and not slots:
        return None
    populated = [s for s in slots if s.populated]
    empty = len(slots) - len(populated)
    return Memory(
        arrays=arrays,
        slots=slots,
        slot_count=len(slots),
        populated_count=len(populated),
        empty_count=0 if virtual_machine else empty,
        phantom_slot_count=empty if virtual_machine else 0,
        total_bytes=sum(s.size_bytes or 0 for s in populated),
        virtual_machine=virtual_machine,
    )


# -- power supplies (type 39) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSupply:
    name: str | None  # "PS1", "Pwr Supply 1 FRU", "Power Supply 1"
    sources: list[str]  # "ipmi-fru", "smbios"
    fru_id: int | None
    manufacturer: str | None
    model: str | None  # product name, e.g. "PWS-2K20A-1R", "PWR SPLY,750W,RDNT,DELTA"
    part_number: str | None
    serial: str | None
    revision: str | None
    capacity_w: int | None  # rated output
    capacity_source: str | None  # "fru-record", "smbios", "model-string"
    present: bool | None
    status: str | None  # SMBIOS: "Present, OK"
    location: str | None
    placeholders: dict[str, str]


def power_supplies_from_records(records: list[DmiRecord]) -> list[PowerSupply]:
    supplies = []
    for record in of_type(records, 39):
        f = _Fields(record.values)
        status = f.raw("Status") or None
        capacity = parse_speed(f.raw("Max Power Capacity"), ("W",))
        supplies.append(
            PowerSupply(
                name=f.text("name", "Name"),
                sources=["smbios"],
                fru_id=None,
                manufacturer=f.text("manufacturer", "Manufacturer"),
                model=f.text("model", "Model Part Number"),
                part_number=f.text("part_number", "Model Part Number"),
                serial=f.text("serial", "Serial Number"),
                revision=f.text("revision", "Revision"),
                capacity_w=capacity,
                capacity_source="smbios" if capacity else None,
                present=status.lower().startswith("present") if status else None,
                status=status,
                location=f.text("location", "Location"),
                placeholders=f.placeholders,
            )
        )
    return supplies


# -- the whole text ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Smbios:
    """What `bee parse dmidecode` prints: every section this text holds."""

    dmidecode_version: str | None
    smbios_version: str | None
    no_entry_point: bool  # "No SMBIOS nor DMI entry point found"
    record_count: int
    board: Board | None
    cpu: Cpu | None
    memory: Memory | None
    power_supplies: list[PowerSupply]


def parse(text: str) -> Smbios:
    scanned = scan(text)
    records = scanned.records
    board = board_from_records(records)
    return Smbios(
        dmidecode_version=scanned.dmidecode_version,
        smbios_version=scanned.smbios_version,
        no_entry_point=scanned.no_entry_point,
        record_count=len(records),
        board=board,
        cpu=cpu_from_records(records),
        memory=memory_from_records(records, board.virtual_machine if board else None),
        power_supplies=power_supplies_from_records(records),
    )


PARSERS: dict[str, Callable[[str], object]] = {"dmidecode": parse}


# -- collectors -------------------------------------------------------------------------------


# One `dmidecode` (every type) per audit, shared by board, cpu, memory and psu: dmidecode reads
# the whole table whatever `-t` says, so one run and one parse replace four.
SMBIOS_ARGV = ("dmidecode",)


def smbios(probe: Probe, legacy_types: str, *, report: bool = True) -> list[DmiRecord] | None:
    """Every SMBIOS record, from the audit's one shared `dmidecode` run; None when the tool or
    the SMBIOS table is missing. Filter with `of_type`.

    `legacy_types` is the `-t` list this collector ran before the run was shared: captures
    recorded by older bee versions hold only those calls, so a replay that lacks the shared
    call asks for that one. Without `report`, failures stay quiet (psu: SMBIOS is its second
    source). "No SMBIOS nor DMI entry point found" and an unreadable /dev/mem are facts about
    the machine (a note), not failures; any other non-zero exit is an error.
    """
    result = probe.shared.run(probe.runner, SMBIOS_ARGV, DEFAULT_TIMEOUT_S)
    if result.error == NOT_CAPTURED:
        result = probe.run(["dmidecode", "-t", legacy_types], check=False)
    else:
        probe.account(result, check=False)
    if result.not_found:
        return None
    # Four collectors read the one output: scan it once (its result is not changed by anyone).
    scanned = probe.shared.once(("dmidecode-scan", result), lambda: scan(result.stdout))
    if not report:
        return scanned.records or None
    if scanned.records:
        if not result.ok:
            probe.error(result.describe_failure())
        return scanned.records
    both = result.stdout + "\n" + result.stderr
    if scanned.no_entry_point or "/dev/mem" in both or "entry point" in both:
        probe.note(f"dmidecode found no SMBIOS table ({_last_line(both)})")
    elif not result.ok:
        probe.error(result.describe_failure())
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def hypervisor_flag(probe: Probe) -> list[str]:
    """The CPU's 'hypervisor' flag, set by every hypervisor that exposes CPUID leaf 1 bit 31."""
    cpuinfo = probe.read_text("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return ["/proc/cpuinfo flag: hypervisor"] if "hypervisor" in value.split() else []
    return []


def collect_board(probe: Probe) -> Board | None:
    evidence = hypervisor_flag(probe)
    records = smbios(probe, "0,1,2,3")
    board = board_from_records(records, evidence) if records else None
    if board is None:
        board = board_from_sysfs(probe.read_value, evidence)
        if board is not None:
            probe.note(f"board read from {SYSFS_DMI} (no usable dmidecode output)")
    return board


def collect_cpu(probe: Probe) -> Cpu | None:
    records = smbios(probe, "4")
    cpu = cpu_from_records(records) if records else None
    if cpu is None:
        # No SMBIOS type 4 (Firecracker, many VMs, some ARM boards): the kernel's view.
        # Imported here: cpuinfo builds this module's models, so it imports this module.
        from bee.tools import cpuinfo

        cpu = cpuinfo.cpu_section(probe.read_text, probe.list_dir)
        if cpu is not None:
            probe.note("cpu read from /proc/cpuinfo and /sys/devices/system/cpu (no SMBIOS)")
    return cpu


def collect_memory(probe: Probe) -> Memory | None:
    records = smbios(probe, "16,17")
    # The memory output alone cannot tell a VM's phantom slots from a server's empty ones.
    sysfs = board_from_sysfs(probe.read_value, hypervisor_flag(probe))
    virtual = sysfs.virtual_machine if sysfs else None
    memory = memory_from_records(records, virtual) if records else None
    if memory is None:
        from bee.tools import cpuinfo

        memory = cpuinfo.memory_section(probe.read_text, virtual)
        if memory is not None:
            probe.note("memory total read from /proc/meminfo (no SMBIOS): no slot list")
        else:
            probe.note("no SMBIOS memory records and no readable /proc/meminfo")
    return memory


# -- console summary and registration ---------------------------------------------------------


def summary_cpu(section: object) -> str:
    sockets = [s for s in document.items(section, "sockets") if s.get("populated")]
    if not sockets:
        return "CPU: not reported"
    cores = sum(document.number(s, "core_count") or 0 for s in sockets)
    threads = sum(document.number(s, "thread_count") or 0 for s in sockets)
    model = counted([document.text(s, "model") or "?" for s in sockets])
    return f"CPU: {model} ({cores} cores, {threads} threads)"


def summary_memory(section: object) -> str:
    if not isinstance(section, dict):
        return "Memory: not reported"
    populated = section.get("populated_count")
    populated = populated if isinstance(populated, int) else "?"
    slots = len(document.items(section, "slots"))
    total = human_bytes(section.get("total_bytes"))
    if section.get("source") == "proc-meminfo":
        return f"Memory: {total} (kernel MemTotal; no SMBIOS slot list)"
    return f"Memory: {total} in {populated} of {slots} slots"


def _parse_cpuinfo(text: str) -> object:
    from bee.tools import cpuinfo

    return cpuinfo.parse(text)


def _parse_meminfo(text: str) -> object:
    from bee.tools import cpuinfo

    return cpuinfo.parse_meminfo(text)


# The fallback's readers (cpuinfo.py), for `bee parse`.
CPUINFO_PARSERS = {"proc-cpuinfo": _parse_cpuinfo, "proc-meminfo": _parse_meminfo}

COLLECTORS = (
    # The board's identity is the summary's first line (summary.py), not a line of its own.
    Collector(
        name="board",
        order=10,
        collects="system, baseboard, chassis, BIOS: SMBIOS types 0-3, or /sys/class/dmi/id",
        collect=collect_board,
        parsers=PARSERS,
    ),
    Collector(
        name="cpu",
        order=20,
        collects="CPU sockets: SMBIOS type 4, or /proc/cpuinfo and /sys/devices/system/cpu",
        collect=collect_cpu,
        summary=summary_cpu,
        parsers=CPUINFO_PARSERS,
    ),
    Collector(
        name="memory",
        order=30,
        collects="memory arrays and DIMM slots: SMBIOS types 16, 17, or /proc/meminfo's total",
        collect=collect_memory,
        summary=summary_memory,
    ),
)
