"""ipmitool lan print: the BMC's own network identity on one LAN channel.

Command: `ipmitool lan print N` (ipmitool 1.8.x), for each channel `ipmitool channel info N`
says is an 802.3 LAN channel (usually 1, sometimes 2, 3 or 8). Layout:

    IP Address Source       : DHCP Address
    IP Address              : 10.192.2.1
    Subnet Mask             : 255.255.240.0
    MAC Address             : 98:f2:b3:f0:ee:1e
    Default Gateway IP      : 10.192.2.254
    802.1q VLAN ID          : Disabled
    Auth Type Enable        : Callback : MD2 MD5 PASSWORD
                            : User     : MD2 MD5 PASSWORD

Continuation lines start with spaces and a colon; they belong to the key above. A BMC without
LAN parameters prints one error line instead ("Invalid channel 1", "Get Channel Info command
failed"): that is kept as `error`, not raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.jsonvalue import integer as _int

UNCONFIGURED_IPS = frozenset({"", "0.0.0.0"})
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True, kw_only=True)
class BmcLanChannel:
    channel: int | None  # the N of `lan print N`; None when not known from the text alone
    mac_address: str | None  # lower case; None when absent or all zeros
    ip_address: str | None  # None when absent or 0.0.0.0 (no address configured)
    ip_address_source: str | None  # "DHCP Address", "Static Address", "BIOS Assigned Address"
    subnet_mask: str | None
    default_gateway_ip: str | None
    default_gateway_mac: str | None
    backup_gateway_ip: str | None
    vlan_enabled: bool | None  # "802.1q VLAN ID : Disabled" -> False
    vlan_id: int | None
    vlan_priority: int | None
    cipher_suites: list[int]  # "RMCP+ Cipher Suites : 1,2,3,6"
    fields: dict[str, str]  # every "Key : value" as printed, continuation lines joined by "; "
    placeholders: dict[str, str]  # values that mean "not set": an all-zero MAC, 0.0.0.0
    error: str | None  # the tool's message when it printed no parameters


def _ip(value: str | None, name: str, placeholders: dict[str, str]) -> str | None:
    if value is None:
        return None
    if value.strip() in UNCONFIGURED_IPS:
        placeholders[name] = value.strip()
        return None
    return value.strip()


def _mac(value: str | None, name: str, placeholders: dict[str, str]) -> str | None:
    if value is None:
        return None
    mac = value.strip().lower()
    if mac == ZERO_MAC:
        placeholders[name] = mac
        return None
    return mac or None


def _fields(text: str) -> tuple[dict[str, str], list[str]]:
    fields: dict[str, str] = {}
    other: list[str] = []
    last: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            other.append(line.strip())
            continue
        if not key:
            if last is not None and value:
                fields[last] = f"{fields[last]}; {value}" if fields[last] else value
            continue
        last = key
        fields.setdefault(key, value)
    return fields, other


def parse(text: str, channel: int | None = None) -> BmcLanChannel:
    fields, _other = _fields(text)
    placeholders: dict[str, str] = {}
    vlan = fields.get("802.1q VLAN ID")
    vlan_enabled = None if vlan is None else vlan.lower() != "disabled"
    suites = [int(s) for s in fields.get("RMCP+ Cipher Suites", "").split(",") if s.isdigit()]
    known = ("IP Address", "MAC Address", "IP Address Source", "Subnet Mask")
    error = None
    if not any(k in fields for k in known):
        # "Invalid channel 1", "Could not open device at /dev/ipmi0 ...: No such file ..."
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        error = lines[0][:200] if lines else "no output"
    return BmcLanChannel(
        channel=channel,
        mac_address=_mac(fields.get("MAC Address"), "mac_address", placeholders),
        ip_address=_ip(fields.get("IP Address"), "ip_address", placeholders),
        ip_address_source=fields.get("IP Address Source") or None,
        subnet_mask=_ip(fields.get("Subnet Mask"), "subnet_mask", placeholders),
        default_gateway_ip=_ip(
            fields.get("Default Gateway IP"), "default_gateway_ip", placeholders
        ),
        default_gateway_mac=_mac(
            fields.get("Default Gateway MAC"), "default_gateway_mac", placeholders
        ),
        backup_gateway_ip=_ip(fields.get("Backup Gateway IP"), "backup_gateway_ip", placeholders),
        vlan_enabled=vlan_enabled,
        vlan_id=_int(vlan) if vlan_enabled else None,
        vlan_priority=_int(fields.get("802.1q VLAN Priority")),
        cipher_suites=suites,
        fields=fields,
        placeholders=placeholders,
        error=error,
    )


def _parse_text(text: str) -> BmcLanChannel:
    return parse(text)


PARSERS: dict[str, Callable[[str], object]] = {"ipmitool-lan": _parse_text}
