"""ipmitool fru: every FRU device the BMC describes, power supplies picked out of them.

Command: `ipmitool -v fru print` (ipmitool 1.8.x), run only when an IPMI device node exists
(`/dev/ipmi0`, `/dev/ipmi/0`, `/dev/ipmidev/0`); without one the psu section reads SMBIOS
type 39 alone and says nothing about IPMI. One output describes many FRU devices:

    FRU Device Description : PS1 (ID 1)
     Board Mfg             : DELL
     Board Product         : PWR SPLY,750W,RDNT,DELTA
     ...
     Power Supply Record
      Capacity                   : 2200 W

Power supplies are named differently per vendor (`PS1`, `Pwr Supply 1 FRU`, `PSU1 FRU`,
`Power Supply 2`); a FRU device with a Power Supply multirecord is one whatever its name.
The board and product areas of the other devices (`Builtin FRU Device (ID 0)` and friends)
are kept: on many servers they carry the real system serials.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bee import document
from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector
from bee.runner import CommandResult
from bee.tools.dmidecode import PowerSupply, is_placeholder, power_supplies_from_records, smbios

IPMI_DEVICE_NODES = ("/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0")
# `-v`: ipmitool 1.8.19 prints the multirecord area (the Power Supply record with the rated
# capacity) only when verbose; the other lines are the same as plain `ipmitool fru`.
FRU_ARGV = ("ipmitool", "-v", "fru", "print")
FRU_TIMEOUT_S = 60.0  # slow KCS interfaces take seconds per FRU device
# For the BMC section; shared like the FRU so that one audit asks the BMC once.
SDR_ARGV = ("ipmitool", "sdr", "elist")
SDR_TIMEOUT_S = 60.0

_DEVICE_LINE = "FRU Device Description"
_PSU_NAME = re.compile(
    r"^\s*(?:ps|psu|pws)[\s_-]*\d|\bpsu\b|\b(?:power|pwr)[\s_-]*(?:supply|sply|unit)",
    re.IGNORECASE,
)
_FIRST_NUMBER = re.compile(r"\d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "PWR SPLY,750W,RDNT,DELTA", "PWR SPLY,750WP,RDNT": the rating Dell writes into the name.
_WATTS_IN_NAME = re.compile(r"(?<![\d.])(\d{3,5})\s?W(?:P|ATT)?\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class FruDevice:
    fru_id: int | None
    name: str  # "Builtin FRU Device", "PS1", "Pwr Supply 1 FRU"
    chassis_type: str | None
    chassis_part_number: str | None
    chassis_serial: str | None
    board_mfg_date: str | None  # as ipmitool prints it: "Tue Sep  3 19:44:00 2013"
    board_manufacturer: str | None
    board_product: str | None
    board_serial: str | None
    board_part_number: str | None
    product_manufacturer: str | None
    product_name: str | None
    product_part_number: str | None
    product_version: str | None
    product_serial: str | None
    product_asset_tag: str | None
    power_supply_capacity_w: int | None  # from a Power Supply multirecord
    errors: list[str]  # "Device not present (Timeout)", "Bad header checksum"
    fields: dict[str, str]  # every "Key : value" as printed (first wins), extras joined
    placeholders: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fru:
    """What `bee parse ipmitool-fru` prints."""

    devices: list[FruDevice]
    power_supplies: list[PowerSupply]


@dataclass(frozen=True, slots=True, kw_only=True)
class Psu:
    """The psu section: power supplies from IPMI FRU and SMBIOS type 39, plus all FRU devices."""

    ipmi_device: str | None  # the node ipmitool used; None: no IPMI on this machine
    power_supplies: list[PowerSupply]
    fru_devices: list[FruDevice]


@dataclass(slots=True)
class _Block:
    name: str
    fru_id: int | None
    fields: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    record: str | None = None  # the multirecord being printed, e.g. "Power Supply Record"


def _clean(value: str) -> str:
    """Drop NULs and other control bytes some FRU EEPROMs pad their strings with."""
    return _CONTROL.sub("", value).strip()


def _device_line(line: str) -> tuple[str, int | None] | None:
    """The name and ID of "FRU Device Description : PS1 (ID 1)" (ID None: "... : iDRAC7  ").

    String operations: the regex this replaced (`:\\s*(.*?)\\s*(\\(ID \\d+\\))?\\s*$`)
    backtracked in cubic time, minutes for a line with a few thousand spaces."""
    if not line.startswith(_DEVICE_LINE):
        return None
    gap, sep, value = line[len(_DEVICE_LINE) :].partition(":")
    if not sep or gap.strip():
        return None
    name, fru_id = value.strip(), None
    opened = name.rfind("(ID ")
    digits = name[opened + 4 : -1] if opened >= 0 and name.endswith(")") else ""
    if digits.isascii() and digits.isdigit():
        name, fru_id = name[:opened].rstrip(), int(digits)
    return name, fru_id


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    block: _Block | None = None
    for raw_line in text.splitlines():
        line = _clean(raw_line)
        if not line:
            continue
        if device := _device_line(line):
            block = _Block(name=device[0], fru_id=device[1])
            blocks.append(block)
            continue
        if block is None:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            if line.endswith("Record"):
                block.record = line  # " Power Supply Record", " DC Output Record"
            else:
                block.errors.append(line)  # " Device not present (Timeout)"
            continue
        if block.record:
            key = f"{block.record} {key}"
        value = value.strip()
        if key.endswith(" Extra") and key in block.fields:
            block.fields[key] += f"; {value}"  # "Product Extra" repeats
        else:
            block.fields.setdefault(key, value)
    return blocks


def _text(block: _Block, placeholders: dict[str, str], name: str, key: str) -> str | None:
    value = block.fields.get(key)
    if value is None:
        return None
    if is_placeholder(value):
        if value:
            placeholders[name] = value
        return None
    return value


def _device(block: _Block) -> FruDevice:
    placeholders: dict[str, str] = {}

    def text(name: str, key: str) -> str | None:
        return _text(block, placeholders, name, key)

    capacity = block.fields.get("Power Supply Record Capacity", "")
    watts = re.match(r"^(\d+)\s*W", capacity)
    return FruDevice(
        fru_id=block.fru_id,
        name=block.name,
        chassis_type=text("chassis_type", "Chassis Type"),
        chassis_part_number=text("chassis_part_number", "Chassis Part Number"),
        chassis_serial=text("chassis_serial", "Chassis Serial"),
        board_mfg_date=text("board_mfg_date", "Board Mfg Date"),
        board_manufacturer=text("board_manufacturer", "Board Mfg"),
        board_product=text("board_product", "Board Product"),
        board_serial=text("board_serial", "Board Serial"),
        board_part_number=text("board_part_number", "Board Part Number"),
        product_manufacturer=text("product_manufacturer", "Product Manufacturer"),
        product_name=text("product_name", "Product Name"),
        product_part_number=text("product_part_number", "Product Part Number"),
        product_version=text("product_version", "Product Version"),
        product_serial=text("product_serial", "Product Serial"),
        product_asset_tag=text("product_asset_tag", "Product Asset Tag"),
        power_supply_capacity_w=int(watts.group(1)) or None if watts else None,
        errors=block.errors,
        fields=block.fields,
        placeholders=placeholders,
    )


def is_power_supply(device: FruDevice) -> bool:
    return device.power_supply_capacity_w is not None or bool(_PSU_NAME.search(device.name))


def _power_supply(device: FruDevice) -> PowerSupply:
    model = device.product_name or device.board_product
    capacity, source = device.power_supply_capacity_w, "fru-record"
    if capacity is None and model and (match := _WATTS_IN_NAME.search(model)):
        capacity, source = int(match.group(1)), "model-string"
    present = None if device.errors else True
    if any(e.lower().startswith("device not present") for e in device.errors):
        present = False
    return PowerSupply(
        name=device.name or None,
        sources=["ipmi-fru"],
        fru_id=device.fru_id,
        manufacturer=device.product_manufacturer or device.board_manufacturer,
        model=model,
        part_number=device.product_part_number or device.board_part_number,
        serial=device.product_serial or device.board_serial,
        revision=device.product_version,
        capacity_w=capacity,
        capacity_source=source if capacity is not None else None,
        present=present,
        status="; ".join(device.errors) or None,
        location=None,
        placeholders=device.placeholders,
    )


def parse(text: str) -> Fru:
    devices = [_device(b) for b in _blocks(text)]
    supplies = [_power_supply(d) for d in devices if is_power_supply(d)]
    return Fru(devices=devices, power_supplies=supplies)


PARSERS: dict[str, Callable[[str], object]] = {"ipmitool-fru": parse}


def _serial_key(serial: str | None) -> str | None:
    """ "p1k62ch00a00001 " and "P1K62-CH00A00001" are one serial: letters and digits, upper."""
    key = "".join(c for c in serial or "" if c.isalnum()).upper()
    return key or None


def bay_number(supply: PowerSupply) -> int | None:
    """The bay a supply sits in, from a PSU-like location or name: "PSU1", "PS 2",
    "Pwr Supply 1 FRU", "Power Supply 2" (not a model name such as "PWS-1K62A-1R")."""
    for text in (supply.location, supply.name):
        match = _PSU_NAME.search(text or "")
        if match and (digits := _FIRST_NUMBER.search(text or "", match.start())):
            return int(digits.group())
    return None


def _same_supply(fru: PowerSupply, entry: PowerSupply) -> bool | None:
    """True/False when serials decide; None when one is missing (the bay decides)."""
    a, b = _serial_key(fru.serial), _serial_key(entry.serial)
    return a == b if a and b else None


def merge_power_supplies(fru: list[PowerSupply], smbios: list[PowerSupply]) -> list[PowerSupply]:
    """One entry per supply: an SMBIOS type 39 entry joins the FRU entry with its serial
    (compared as letters and digits), or else the one in its bay when no serial says no."""
    merged = list(fru)
    for entry in smbios:
        index = next((i for i, p in enumerate(merged) if _same_supply(p, entry)), None)
        bay = bay_number(entry)
        if index is None and bay is not None:
            index = next(
                (
                    i
                    for i, p in enumerate(merged)
                    if "smbios" not in p.sources
                    and _same_supply(p, entry) is None
                    and bay_number(p) == bay
                ),
                None,
            )
        if index is None:
            merged.append(entry)
            continue
        known = merged[index]
        capacity, source = known.capacity_w, known.capacity_source
        if entry.capacity_w is not None and known.capacity_source != "fru-record":
            capacity, source = entry.capacity_w, entry.capacity_source
        merged[index] = replace(
            known,
            sources=[*known.sources, *entry.sources],
            manufacturer=known.manufacturer or entry.manufacturer,
            model=known.model or entry.model,
            part_number=known.part_number or entry.part_number,
            serial=known.serial or entry.serial,
            revision=known.revision or entry.revision,
            capacity_w=capacity,
            capacity_source=source,
            present=entry.present if entry.present is not None else known.present,
            status=entry.status or known.status,
            location=entry.location,
        )
    return merged


# SMBIOS type 39 "Status: Present, Critical" (also OK, Non-critical, Unknown, Other).
_CRITICAL_STATES = ("critical",)
_WARNING_STATES = ("non-critical",)


def findings(sections: Mapping[str, object]) -> list[Finding]:
    """A supply that is absent from its bay, or says it is failing, is an operator's business:
    a server on one of its two supplies still runs, without redundancy."""
    section = sections.get("psu")
    if not isinstance(section, Psu):
        return []
    found = []
    for number, supply in enumerate(section.power_supplies, 1):
        label = supply.name or supply.location or f"power supply {number}"
        state = (supply.status or "").rpartition(",")[2].strip().lower()
        if supply.present is False:
            severity, what = "warning", "no power supply is present in this bay"
        elif state in _CRITICAL_STATES:
            severity, what = "critical", "the power supply reports a critical state: replace it"
        elif state in _WARNING_STATES:
            severity, what = "warning", "the power supply reports a non-critical fault"
        else:
            continue
        detail = f" ({supply.status})" if supply.status else ""
        found.append(
            Finding(
                source="psu", severity=severity, subject=label, message=f"{label}: {what}{detail}"
            )
        )
    return found


def find_ipmi_device(probe: Probe) -> str | None:
    return next((node for node in IPMI_DEVICE_NODES if probe.exists(node)), None)


def fru(probe: Probe) -> Fru | None:
    """`ipmitool -v fru print`, run once per audit for every collector that asks (psu, bmc);
    None when ipmitool is missing. Exit 1 with some devices printed is data, not a failure."""
    result = probe.run(FRU_ARGV, timeout_s=FRU_TIMEOUT_S, check=False, shared=True)
    if result.not_found:
        return None
    parsed = parse(result.stdout)
    # ipmitool exits 1 when one FRU device fails, and prints the others: that is data.
    if not result.ok and not parsed.devices:
        probe.error(result.describe_failure())
    return parsed


def sdr(probe: Probe) -> CommandResult:
    """`ipmitool sdr elist`, run once per audit for every collector that asks."""
    return probe.run(SDR_ARGV, timeout_s=SDR_TIMEOUT_S, check=False, shared=True)


def collect(probe: Probe) -> Psu | None:
    node = find_ipmi_device(probe)
    devices = (fru(probe) if node is not None else None) or Fru(devices=[], power_supplies=[])
    # SMBIOS type 39 is the second source: its failures are the board's to report.
    smbios_psus = power_supplies_from_records(smbios(probe, "39", report=False) or [])
    if node is None and not smbios_psus:
        return None
    return Psu(
        ipmi_device=node,
        power_supplies=merge_power_supplies(devices.power_supplies, smbios_psus),
        fru_devices=devices.devices,
    )


def summary(section: object) -> str | None:
    psus = document.items(section, "power_supplies")
    if not psus:
        return None
    # An empty bay is listed (and a finding), not counted as a supply.
    empty = sum(1 for p in psus if p.get("present") is False)
    tail = f" ({empty} empty bay{'s' if empty > 1 else ''})" if empty else ""
    return f"PSUs: {len(psus) - empty}{tail}"


COLLECTORS = (
    Collector(
        name="psu",
        order=70,
        collects="power supplies: IPMI FRU (ipmitool -v fru print) and SMBIOS type 39",
        collect=collect,
        findings=findings,
        summary=summary,
        parsers=PARSERS,
    ),
)
