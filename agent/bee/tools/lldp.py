"""LLDP (IEEE 802.1AB) frames: which switch port each of this machine's cables lands on.

bee listens itself (bee/packets.py: AF_PACKET, ethertype 0x88cc) rather than run lldpd: the
image needs no daemon, and one window covers every port. Frames are decoded here from their
TLVs; `bee parse lldp` reads the capture's text form, one `IFNAME HEX` line per frame.
Fixtures: frames that Debian's lldpd 1.0.16 sent over a veth pair.

TLVs read: chassis id, port id (with their subtypes: some switches give the port as a MAC
address, netbox#5818), TTL, port description, system name and description, capabilities,
management address, and the IEEE 802.1 port VLAN id and VLAN names. Others are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from bee.macaddr import mac_from_octets
from bee.packets import ETH_P_LLDP, frames_from_text

_VLAN_TAG = 0x8100
_OUI_8021 = b"\x00\x80\xc2"
_CHASSIS_SUBTYPES = {
    1: "chassis_component",
    2: "interface_alias",
    3: "port_component",
    4: "mac",
    5: "network_address",
    6: "interface_name",
    7: "local",
}
_PORT_SUBTYPES = {
    1: "interface_alias",
    2: "port_component",
    3: "mac",
    4: "network_address",
    5: "interface_name",
    6: "agent_circuit_id",
    7: "local",
}
_CAPABILITIES = (
    "other",
    "repeater",
    "bridge",
    "wlan_access_point",
    "router",
    "telephone",
    "docsis_cable_device",
    "station",
    "c_vlan",
    "s_vlan",
    "two_port_mac_relay",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbor:
    interface: str  # this machine's port that heard it
    source_mac: str | None  # the switch port's MAC (the frame's source)
    chassis_id: str | None  # "48:df:37:e0:24:00", "spine-1"
    chassis_id_subtype: str | None  # "mac", "local", "network_address", ...
    port_id: str | None  # "Ethernet12", "swp3", or a MAC
    port_id_subtype: str | None  # "interface_name", "mac", "local", ...
    port_description: str | None
    system_name: str | None
    system_description: str | None
    management_addresses: list[str]  # "192.0.2.1", "2001:db8::1"
    port_vlan_id: int | None
    vlan_names: list[str]  # "100 servers"
    capabilities_enabled: list[str]  # "bridge", "router"
    ttl_s: int | None


def _text(data: bytes) -> str | None:
    text = data.decode("utf-8", errors="replace").strip("\x00").strip()
    return text or None


def _address(family: int, data: bytes) -> str | None:
    """An IANA address family number and the address: 1 IPv4, 2 IPv6, 6 an 802 MAC."""
    if family == 1 and len(data) == 4:
        return str(ipaddress.IPv4Address(data))
    if family == 2 and len(data) == 16:
        return str(ipaddress.IPv6Address(data))
    if family == 6:
        return mac_from_octets(data)
    return None


def _id(value: bytes, subtypes: dict[int, str], mac_subtype: int, address_subtype: int):
    if not value:
        return None, None
    subtype, data = value[0], value[1:]
    if subtype == mac_subtype:
        text = mac_from_octets(data) or data.hex(":") or None
    elif subtype == address_subtype and data:
        text = _address(data[0], data[1:]) or data.hex(":")
    else:
        text = _text(data)
    return text, subtypes.get(subtype, str(subtype))


def _tlvs(payload: bytes) -> list[tuple[int, bytes]]:
    """Type (7 bits), length (9 bits), value; stops at End (type 0) or a cut TLV."""
    tlvs = []
    offset = 0
    while offset + 2 <= len(payload):
        header = int.from_bytes(payload[offset : offset + 2], "big")
        kind, length = header >> 9, header & 0x1FF
        offset += 2
        if kind == 0 or offset + length > len(payload):
            break
        tlvs.append((kind, payload[offset : offset + length]))
        offset += length
    return tlvs


def parse_frame(interface: str, frame: bytes) -> Neighbor | None:
    """One Ethernet frame (destination, source, ethertype, LLDPDU); None if it is not LLDP."""
    if len(frame) < 14:
        return None
    source = mac_from_octets(frame[6:12])
    ethertype, offset = int.from_bytes(frame[12:14], "big"), 14
    if ethertype == _VLAN_TAG and len(frame) >= 18:  # a tagged frame the NIC did not untag
        ethertype, offset = int.from_bytes(frame[16:18], "big"), 18
    if ethertype != ETH_P_LLDP:
        return None
    values: dict[str, object] = {}
    management: list[str] = []
    vlan_names: list[str] = []
    for kind, value in _tlvs(frame[offset:]):
        if kind == 1 and "chassis" not in values:
            values["chassis"] = _id(value, _CHASSIS_SUBTYPES, 4, 5)
        elif kind == 2 and "port" not in values:
            values["port"] = _id(value, _PORT_SUBTYPES, 3, 4)
        elif kind == 3 and len(value) >= 2:
            values.setdefault("ttl", int.from_bytes(value[:2], "big"))
        elif kind in (4, 5, 6):
            values.setdefault(f"text{kind}", _text(value))
        elif kind == 7 and len(value) >= 4:
            enabled = int.from_bytes(value[2:4], "big")
            bits = [name for bit, name in enumerate(_CAPABILITIES) if enabled >> bit & 1]
            values.setdefault("capabilities", bits)
        elif kind == 8 and len(value) >= 2:
            # string length (subtype + address), address subtype, address, interface, OID
            length = value[0]
            if 2 <= length <= len(value) - 1:
                address = _address(value[1], value[2 : 1 + length])
                if address and address not in management:
                    management.append(address)
        elif kind == 127 and len(value) >= 4 and value[:3] == _OUI_8021:
            if value[3] == 1 and len(value) >= 6:  # Port VLAN ID
                values.setdefault("pvid", int.from_bytes(value[4:6], "big") or None)
            elif value[3] == 3 and len(value) >= 7:  # VLAN name: vid, name length, name
                name = _text(value[7 : 7 + value[6]])
                vid = int.from_bytes(value[4:6], "big")
                vlan_names.append(f"{vid} {name}" if name else str(vid))
    if "chassis" not in values or "port" not in values:
        return None  # both are mandatory: without them this is no LLDPDU
    chassis_id, chassis_subtype = values["chassis"]  # type: ignore[misc]
    port_id, port_subtype = values["port"]  # type: ignore[misc]
    return Neighbor(
        interface=interface,
        source_mac=source,
        chassis_id=chassis_id,
        chassis_id_subtype=chassis_subtype,
        port_id=port_id,
        port_id_subtype=port_subtype,
        port_description=values.get("text4"),  # type: ignore[arg-type]
        system_name=values.get("text5"),  # type: ignore[arg-type]
        system_description=values.get("text6"),  # type: ignore[arg-type]
        management_addresses=management,
        port_vlan_id=values.get("pvid"),  # type: ignore[arg-type]
        vlan_names=vlan_names,
        capabilities_enabled=values.get("capabilities") or [],  # type: ignore[arg-type]
        ttl_s=values.get("ttl"),  # type: ignore[arg-type]
    )


def neighbors(frames: list[tuple[str, bytes]]) -> list[Neighbor]:
    """One neighbour per (interface, chassis, port): the last frame heard wins (the freshest)."""
    found: dict[tuple[str, str | None, str | None], Neighbor] = {}
    for interface, frame in frames:
        neighbor = parse_frame(interface, frame)
        if neighbor is not None:
            key = (interface, neighbor.chassis_id, neighbor.port_id)
            found.pop(key, None)
            found[key] = neighbor
    return sorted(found.values(), key=lambda n: n.interface)


def parse(text: str) -> list[Neighbor]:
    """The capture's text form: `IFNAME HEX` per frame."""
    return neighbors(frames_from_text(text))


PARSERS: dict[str, Callable[[str], object]] = {"lldp": parse}
