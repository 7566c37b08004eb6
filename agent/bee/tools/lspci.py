"""lspci -vmm and /sys/bus/pci/devices: PCIe functions and their links.

Command: `lspci -vmm -nn -D` (pciutils 3.x): one run gives names and, in `[....]` suffixes, the
numeric IDs. The parser also reads the forms without `-nn` (names only) and with `-n` (IDs
only), and `-vm`, which repeats `Device:` (first the address, then the name). Records and tags
come in no fixed order and new tags appear; unknown tags are kept in `extra`. PCI domains can
have five hex digits (Intel VMD: `10001:80:05.0`).

sysfs (through the probe, so captures and replays hold it) adds what lspci does not print
without root or `-k`: the bound driver, NUMA node, IOMMU group, and the link speed and width.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector

# "0000:3b:00.0", "10001:80:05.0" (VMD), "00:1f.3" (no -D)
_ADDRESS = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{4,5}):)?(?P<bus>[0-9a-fA-F]{2}):"
    r"(?P<device>[0-9a-fA-F]{2})\.(?P<function>[0-7])$"
)
# What lspci prints when its database has no name: "Device 0d57" (plain), "Device [0d57]" (-nn)
_UNNAMED = re.compile(r"^(?:Device|Vendor|Class|Unknown device)(?: [0-9a-fA-F]{4})?$")
_HEX4 = re.compile(r"^[0-9a-fA-F]{4}$")
_KNOWN_TAGS = frozenset(
    {
        "Slot",
        "Class",
        "Vendor",
        "Device",
        "SVendor",
        "SDevice",
        "Rev",
        "ProgIf",
        "PhySlot",
        "Driver",
        "Module",
        "NUMANode",
        "IOMMUGroup",
    }
)


def normalize_address(text: str) -> str | None:
    """'00:1f.3' -> '0000:00:1f.3'; lower case; None when it is not an address."""
    match = _ADDRESS.match(text.strip())
    if not match:
        return None
    domain = (match.group("domain") or "0000").lower()
    bus, device, function = match.group("bus", "device", "function")
    return f"{domain}:{bus.lower()}:{device.lower()}.{function}"


def split_name_id(value: str | None) -> tuple[str | None, str | None]:
    """'Intel Corporation [8086]' -> ('Intel Corporation', '8086'); '8086' -> (None, '8086')."""
    text = (value or "").strip()
    if not text:
        return None, None
    # "Ethernet controller [0200]", "Intel Corporation [8086]": sliced, not matched with
    # `(.*?)\\s*\\[(....)\\]$`, which took quadratic time on a long name (29 s for 30,000 spaces).
    if len(text) >= 6 and text[-6] == "[" and text[-1] == "]" and _HEX4.match(text[-5:-1]):
        name, ident = text[:-6].strip(), text[-5:-1].lower()
    elif _HEX4.match(text):
        return None, text.lower()  # -n
    else:
        name, ident = text, None
        words = text.split()
        if len(words) == 2 and _UNNAMED.match(text):
            return None, words[1].lower()  # "Device 0d57": not in lspci's database
    if not name or _UNNAMED.match(name):
        name = None
    return name, ident


@dataclass(frozen=True, slots=True, kw_only=True)
class PciDevice:
    address: str  # "0000:3b:00.0", domain of 4 or 5 hex digits
    class_id: str | None  # 4 hex digits: "0302" (class and subclass)
    class_name: str | None  # "3D controller"
    prog_if: str | None  # 2 hex digits
    vendor_id: str | None  # 4 hex digits, lower case
    vendor: str | None
    device_id: str | None
    device: str | None
    subsystem_vendor_id: str | None
    subsystem_vendor: str | None
    subsystem_id: str | None
    subsystem: str | None
    revision: str | None  # 2 hex digits
    physical_slot: str | None
    driver: str | None  # bound driver, from sysfs (or lspci -k)
    kernel_modules: list[str]  # from lspci -k, when present
    numa_node: int | None  # None: no NUMA information (-1 in sysfs)
    iommu_group: int | None
    current_link_speed_gts: float | None
    current_link_speed_raw: str | None  # "16.0 GT/s PCIe", "8 GT/s", "Unknown"
    current_link_width: int | None
    max_link_speed_gts: float | None
    max_link_speed_raw: str | None
    max_link_width: int | None
    extra: dict[str, str]  # lspci tags this parser does not know


@dataclass(frozen=True, slots=True, kw_only=True)
class Pcie:
    devices: list[PciDevice]
    device_count: int
    source: str  # "lspci+sysfs", "lspci", "sysfs"


def _records(text: str) -> list[list[tuple[str, str]]]:
    records: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            if current:
                records.append(current)
                current = []
            continue
        # "Vendor:\tIntel Corporation [8086]"
        tag, sep, value = line.partition(":")
        if not sep or " " in tag.strip() or not tag.strip():
            continue
        current.append((tag.strip(), value.strip()))
    if current:
        records.append(current)
    return records


def _device_from_record(pairs: list[tuple[str, str]]) -> PciDevice | None:
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    modules: list[str] = []
    address: str | None = None
    for tag, value in pairs:
        if tag == "Slot" and address is None:
            address = normalize_address(value)
            continue
        # `lspci -vm` prints "Device:\t00:1f.3" before "Device:\tSunrise Point-LP HD Audio".
        if tag == "Device" and address is None and (candidate := normalize_address(value)):
            address = candidate
            continue
        if tag == "Module":
            modules.append(value)
            continue
        if tag in _KNOWN_TAGS:
            values.setdefault(tag, value)
        else:
            extra.setdefault(tag, value)
    if address is None:
        return None
    class_name, class_id = split_name_id(values.get("Class"))
    vendor, vendor_id = split_name_id(values.get("Vendor"))
    device, device_id = split_name_id(values.get("Device"))
    svendor, svendor_id = split_name_id(values.get("SVendor"))
    sdevice, sdevice_id = split_name_id(values.get("SDevice"))
    return PciDevice(
        address=address,
        class_id=class_id,
        class_name=class_name,
        prog_if=(values.get("ProgIf") or "").lower() or None,
        vendor_id=vendor_id,
        vendor=vendor,
        device_id=device_id,
        device=device,
        subsystem_vendor_id=svendor_id,
        subsystem_vendor=svendor,
        subsystem_id=sdevice_id,
        subsystem=sdevice,
        revision=(values.get("Rev") or "").lower() or None,
        physical_slot=values.get("PhySlot") or None,
        driver=values.get("Driver") or None,
        kernel_modules=modules,
        numa_node=_int_or_none(values.get("NUMANode")),
        iommu_group=_int_or_none(values.get("IOMMUGroup")),
        current_link_speed_gts=None,
        current_link_speed_raw=None,
        current_link_width=None,
        max_link_speed_gts=None,
        max_link_speed_raw=None,
        max_link_width=None,
        extra=extra,
    )


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    try:
        number = int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None
    return number if number >= 0 else None


def parse(text: str) -> Pcie:
    devices = []
    seen: set[str] = set()
    for pairs in _records(text):
        device = _device_from_record(pairs)
        if device is None or device.address in seen:
            continue
        seen.add(device.address)
        devices.append(device)
    return Pcie(devices=devices, device_count=len(devices), source="lspci")


PARSERS: dict[str, Callable[[str], object]] = {"lspci": parse}


# -- sysfs ------------------------------------------------------------------------------------

SYSFS_PCI = "/sys/bus/pci/devices"


def parse_link_speed(value: str | None) -> float | None:
    """'16.0 GT/s PCIe' (Linux >= 5.x), '8 GT/s', '2.5 GT/s' -> GT/s; 'Unknown' -> None."""
    if not value:
        return None
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*GT/s", value)
    return float(match.group(1)) if match else None


def _hex_id(value: str | None, digits: int) -> str | None:
    """sysfs '0x8086' -> '8086'; class '0x030200' -> '030200'."""
    if not value:
        return None
    text = value.strip().lower()
    text = text.removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]+", text):
        return None
    return text.zfill(digits)[-digits:]


def _link_target_name(target: str | None) -> str | None:
    """'../../../bus/pci/drivers/nvidia' -> 'nvidia'."""
    if not target:
        return None
    return target.rstrip("/").rpartition("/")[2] or None


def enrich_from_sysfs(device: PciDevice | None, address: str, probe: Probe) -> PciDevice:
    base = f"{SYSFS_PCI}/{address}"

    def value(name: str) -> str | None:
        return probe.read_value(f"{base}/{name}")

    class_hex = _hex_id(value("class"), 6)
    numa = _int_or_none(value("numa_node"))
    group = _link_target_name(probe.read_link(f"{base}/iommu_group"))
    current_speed_raw, max_speed_raw = value("current_link_speed"), value("max_link_speed")
    if device is None:
        device = PciDevice(
            address=address,
            class_id=class_hex[:4] if class_hex else None,
            class_name=None,
            prog_if=class_hex[4:] if class_hex else None,
            vendor_id=_hex_id(value("vendor"), 4),
            vendor=None,
            device_id=_hex_id(value("device"), 4),
            device=None,
            subsystem_vendor_id=_hex_id(value("subsystem_vendor"), 4),
            subsystem_vendor=None,
            subsystem_id=_hex_id(value("subsystem_device"), 4),
            subsystem=None,
            revision=_hex_id(value("revision"), 2),
            physical_slot=None,
            driver=None,
            kernel_modules=[],
            numa_node=None,
            iommu_group=None,
            current_link_speed_gts=None,
            current_link_speed_raw=None,
            current_link_width=None,
            max_link_speed_gts=None,
            max_link_speed_raw=None,
            max_link_width=None,
            extra={},
        )
    return replace(
        device,
        class_id=device.class_id or (class_hex[:4] if class_hex else None),
        driver=_link_target_name(probe.read_link(f"{base}/driver")) or device.driver,
        numa_node=numa if numa is not None else device.numa_node,
        iommu_group=_int_or_none(group) if group else device.iommu_group,
        current_link_speed_gts=parse_link_speed(current_speed_raw),
        current_link_speed_raw=current_speed_raw,
        current_link_width=_int_or_none(value("current_link_width")),
        max_link_speed_gts=parse_link_speed(max_speed_raw),
        max_link_speed_raw=max_speed_raw,
        max_link_width=_int_or_none(value("max_link_width")),
    )


def collect(probe: Probe) -> Pcie | None:
    result = probe.run(["lspci", "-vmm", "-nn", "-D"])
    parsed = parse(result.stdout) if result.ok or result.stdout.strip() else None
    listed = probe.list_dir(SYSFS_PCI)
    sysfs_addresses = [a for a in (listed or []) if normalize_address(a) == a.lower()]
    if parsed is None and not sysfs_addresses:
        return None
    by_address = {d.address: d for d in parsed.devices} if parsed else {}
    addresses = list(by_address)
    addresses += sorted(a.lower() for a in sysfs_addresses if a.lower() not in by_address)
    devices = [enrich_from_sysfs(by_address.get(a), a, probe) for a in addresses]
    if parsed is not None and listed is not None:
        source = "lspci+sysfs"
    else:
        source = "lspci" if parsed is not None else "sysfs"
    return Pcie(devices=devices, device_count=len(devices), source=source)


# -- findings ---------------------------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def findings(sections: dict[str, object]) -> list[Finding]:
    """A device whose link trained narrower than it supports (x8 of x16) is worth a look.

    Speed below the maximum alone is normal (idle links downtrain to save power). Bridges are
    left out: a port's maximum is its own capability, not what the card behind it can do.
    """
    pcie = sections.get("pcie")
    devices = _get(pcie, "devices") if pcie is not None else None
    result: list[Finding] = []
    for device in devices if isinstance(devices, list) else []:
        current, maximum = _get(device, "current_link_width"), _get(device, "max_link_width")
        class_id = _get(device, "class_id") or ""
        if not isinstance(current, int) or not isinstance(maximum, int):
            continue
        if isinstance(class_id, str) and class_id.startswith("06"):
            continue
        if 0 < current < maximum:
            name = " ".join(x for x in (_get(device, "vendor"), _get(device, "device")) if x)
            speed = _get(device, "current_link_speed_raw") or "unknown speed"
            result.append(
                Finding(
                    source="pcie",
                    severity="warning",
                    subject=str(_get(device, "address")),
                    message=(
                        f"PCIe link runs at x{current} of x{maximum} ({speed})"
                        + (f": {name}" if name else "")
                    ),
                )
            )
    return result


COLLECTORS = (
    Collector(
        name="pcie",
        order=50,
        collects="PCI functions and their links: lspci -vmm -nn -D, /sys/bus/pci/devices",
        collect=collect,
        findings=findings,
        parsers=PARSERS,
    ),
)
