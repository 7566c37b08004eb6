"""ipmitool mc info: the BMC's identity (Get Device ID).

Command: `ipmitool mc info` (ipmitool 1.8.x). Layout:

    Device ID                 : 32
    Firmware Revision         : 2.70
    IPMI Version              : 2.0
    Manufacturer ID           : 674
    Manufacturer Name         : DELL Inc
    Product ID                : 256 (0x0100)
    Product Name              : Unknown (0x100)
    Additional Device Support :
        Sensor Device
        SEL Device
    Aux Firmware Rev Info     :
        0x00

Indented lines under a key with no value are that key's list. "Unknown (0x100)" is ipmitool's
way of saying it has no name for the id: a placeholder, kept in `placeholders`. Without a BMC
ipmitool prints one line ("Could not open device at /dev/ipmi0 ...") kept as `error`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class BmcIdentity:
    device_id: int | None
    device_revision: int | None
    firmware_revision: str | None  # "2.70": what vendors call the BMC firmware version
    ipmi_version: str | None  # "2.0"
    manufacturer_id: int | None  # IANA enterprise number: 674 Dell, 10876 Supermicro
    manufacturer_name: str | None  # None when ipmitool says "Unknown"
    product_id: int | None
    product_name: str | None
    device_available: bool | None
    provides_device_sdrs: bool | None
    additional_device_support: list[str]
    aux_firmware_revision: list[str]  # "0x00", "0x2d", ... (vendor-defined)
    fields: dict[str, str]
    placeholders: dict[str, str]
    error: str | None


def _int(value: str | None) -> int | None:
    """ "256 (0x0100)" -> 256; "32" -> 32."""
    head = (value or "").strip().partition(" ")[0]
    return int(head) if head.isdigit() else None


def _yes(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return True if text == "yes" else False if text == "no" else None


def _name(value: str | None, key: str, placeholders: dict[str, str]) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if text.lower().startswith("unknown"):
        placeholders[key] = text
        return None
    return text


def parse(text: str) -> BmcIdentity:
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    current: str | None = None
    other: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        indented = raw[:1] in (" ", "\t")
        key, sep, value = raw.partition(":")
        if indented and current is not None and not (sep and key.strip() and value.strip()):
            lists.setdefault(current, []).append(raw.strip())
            continue
        if not sep or not key.strip():
            other.append(raw.strip())
            current = None
            continue
        key, value = key.strip(), value.strip()
        fields.setdefault(key, value)
        current = key if not value else None
    placeholders: dict[str, str] = {}
    error = None
    if "Device ID" not in fields and "Firmware Revision" not in fields:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        error = lines[0][:200] if lines else "no output"
    return BmcIdentity(
        device_id=_int(fields.get("Device ID")),
        device_revision=_int(fields.get("Device Revision")),
        firmware_revision=fields.get("Firmware Revision") or None,
        ipmi_version=fields.get("IPMI Version") or None,
        manufacturer_id=_int(fields.get("Manufacturer ID")),
        manufacturer_name=_name(fields.get("Manufacturer Name"), "manufacturer_name", placeholders),
        product_id=_int(fields.get("Product ID")),
        product_name=_name(fields.get("Product Name"), "product_name", placeholders),
        device_available=_yes(fields.get("Device Available")),
        provides_device_sdrs=_yes(fields.get("Provides Device SDRs")),
        additional_device_support=lists.get("Additional Device Support", []),
        aux_firmware_revision=lists.get("Aux Firmware Rev Info", []),
        fields=fields,
        placeholders=placeholders,
        error=error,
    )


PARSERS: dict[str, Callable[[str], object]] = {"ipmitool-mc-info": parse}
