"""ip (iproute2): every network interface with its state, addresses and place in the stack.

Command: `ip -d -j addr show` (iproute2 6.1, Debian 12). `-d` adds `linkinfo` (the kind of a
virtual interface: bridge, bond, vlan, veth, and for a bond or bridge port `info_slave_kind`)
and, since iproute2 5.x, `parentbus`/`parentdev`. Without `-d` (older captures, the QEMU guest's
`ip -j addr show`) those are simply absent. A bond port's own MAC is `permaddr` (iproute2
5.11+ prints it when it differs from `address`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bee import jsonvalue
from bee.macaddr import normalize_mac


@dataclass(frozen=True, slots=True, kw_only=True)
class IpAddress:
    family: str  # "inet" | "inet6"
    address: str  # "10.0.2.15", "fe80::5054:ff:febe:e001"
    prefix_length: int | None
    scope: str | None  # "global", "link", "host", "site"
    dynamic: bool  # from DHCP or SLAAC


@dataclass(frozen=True, slots=True, kw_only=True)
class IpLink:
    index: int | None
    name: str
    flags: list[str]  # ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
    mtu: int | None
    operstate: str | None  # "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN"
    link_type: str | None  # "ether", "infiniband", "loopback", "none"
    address: str | None  # current MAC
    permanent_address: str | None  # `permaddr`, only where it differs from `address`
    master: str | None  # the bond or bridge this interface is a port of
    link: str | None  # the lower interface (a VLAN's parent, a veth's peer)
    kind: str | None  # linkinfo.info_kind: "vlan", "bond", "bridge", "veth"; None: a device
    port_kind: str | None  # linkinfo.info_slave_kind: "bond", "bridge"
    vlan_id: int | None
    parent_bus: str | None  # "pci", "virtio"
    parent_device: str | None  # "0000:3b:00.0"
    addresses: list[IpAddress]


def _address(entry: Any) -> IpAddress | None:
    if not isinstance(entry, dict):
        return None
    family, local = jsonvalue.text(entry.get("family")), jsonvalue.text(entry.get("local"))
    if family not in ("inet", "inet6") or local is None:
        return None
    return IpAddress(
        family=family,
        address=local,
        prefix_length=jsonvalue.integer(entry.get("prefixlen")),
        scope=jsonvalue.text(entry.get("scope")),
        dynamic=entry.get("dynamic") is True,
    )


def _link(entry: Any) -> IpLink | None:
    if not isinstance(entry, dict):
        return None
    name = jsonvalue.text(entry.get("ifname"))
    if name is None:
        return None
    info = entry.get("linkinfo")
    info = info if isinstance(info, dict) else {}
    data = info.get("info_data")
    kind = jsonvalue.text(info.get("info_kind"))
    vlan_id = data.get("id") if kind == "vlan" and isinstance(data, dict) else None
    flags = entry.get("flags")
    addresses = entry.get("addr_info")
    return IpLink(
        index=jsonvalue.integer(entry.get("ifindex")),
        name=name,
        flags=[f for f in map(jsonvalue.text, flags) if f] if isinstance(flags, list) else [],
        mtu=jsonvalue.integer(entry.get("mtu")),
        operstate=jsonvalue.text(entry.get("operstate")),
        link_type=jsonvalue.text(entry.get("link_type")),
        address=normalize_mac(jsonvalue.text(entry.get("address"))),
        permanent_address=normalize_mac(jsonvalue.text(entry.get("permaddr"))),
        master=jsonvalue.text(entry.get("master")),
        link=jsonvalue.text(entry.get("link")),
        kind=kind,
        port_kind=jsonvalue.text(info.get("info_slave_kind")),
        vlan_id=jsonvalue.integer(vlan_id),
        parent_bus=jsonvalue.text(entry.get("parentbus")),
        parent_device=jsonvalue.text(entry.get("parentdev")),
        addresses=[a for a in map(_address, addresses) if a] if isinstance(addresses, list) else [],
    )


def parse(text: str) -> list[IpLink]:
    """`ip -j addr show`: a JSON array of interfaces. Anything else gives an empty list."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    links = [link for link in map(_link, data) if link] if isinstance(data, list) else []
    seen: set[str] = set()
    unique = []
    for link in links:  # one entry per name (a capture cut and repeated must not double them)
        if link.name not in seen:
            seen.add(link.name)
            unique.append(link)
    return unique


PARSERS: dict[str, Callable[[str], object]] = {"ip-addr": parse}
