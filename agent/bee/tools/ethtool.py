"""ethtool: a network port's driver, firmware, permanent MAC and link modes.

Commands (ethtool 6.1, Debian 12; the realworld set adds 5.x outputs):
- `ethtool -i IF`: driver, driver version, firmware version, bus-info (what the SIOCETHTOOL
  ETHTOOL_GDRVINFO ioctl returns, printed by the tool so that captures and replays hold it);
- `ethtool -P IF`: the permanent MAC (ETHTOOL_GPERMADDR), which a bond or a udev rule may
  have replaced in the current address;
- `ethtool IF`: supported and advertised link modes, speed, duplex, port, link detected.

All three print `key: value` lines; link mode lists continue on lines without a colon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.macaddr import normalize_mac


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverInfo:
    driver: str | None  # "mlx5_core", "i40e", "virtio_net"
    driver_version: str | None  # "5.11.0-22-generic" (in-tree drivers print the kernel)
    firmware_version: str | None  # "28.42.1000 (MT_0000000834)" as printed
    firmware_psid: str | None  # "MT_0000000834": Mellanox/NVIDIA put the board's PSID there
    expansion_rom_version: str | None
    bus_info: str | None  # "0000:00:03.0" for PCI; other buses print other forms


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    supported_link_modes: list[str]  # ["1000baseT/Full", "100000baseSR4/Full"]
    advertised_link_modes: list[str]
    supported_max_speed_mbps: int | None  # the fastest supported mode
    speed_mbps: int | None  # None: "Unknown!" (link down, or a virtual NIC)
    duplex: str | None  # "full", "half"; None when unknown
    port: str | None  # "Twisted Pair", "FIBRE", "Direct Attach Copper", "Other"
    auto_negotiation: bool | None
    link_detected: bool | None


def _pairs(text: str) -> list[tuple[str, str]]:
    """`key: value` lines; a line without a colon continues the previous value.

    "\tSupported link modes:   10baseT/Half 10baseT/Full"
    "\t                        100baseT/Half 100baseT/Full"
    """
    pairs: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip():
            pairs.append((key.strip(), [value.strip()]))
        elif pairs:
            pairs[-1][1].append(line)  # joined once below: repeated += would be quadratic
    return [(key, " ".join(p for p in parts if p)) for key, parts in pairs]


def _text(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def parse_driver_info(text: str) -> DriverInfo:
    """`ethtool -i IF`: "driver: mlx5_core", "firmware-version: 14.32.1010 (HP_2420110034)"."""
    values: dict[str, str] = {}
    for key, value in _pairs(text):
        values.setdefault(key, value)
    firmware = _text(values.get("firmware-version"))
    psid = None
    if firmware and firmware.endswith(")") and " (" in firmware:
        psid = _text(firmware.rpartition(" (")[2][:-1])
    return DriverInfo(
        driver=_text(values.get("driver")),
        driver_version=_text(values.get("version")),
        firmware_version=firmware,
        firmware_psid=psid,
        expansion_rom_version=_text(values.get("expansion-rom-version")),
        bus_info=_text(values.get("bus-info")),
    )


def parse_permanent_address(text: str) -> str | None:
    """`ethtool -P IF`: "Permanent address: 52:54:00:e2:28:a3"; None for all zeros (virtual)."""
    for key, value in _pairs(text):
        if key == "Permanent address":
            return normalize_mac(value)
    return None


def link_mode_speed_mbps(mode: str) -> int | None:
    """'100000baseSR4/Full' -> 100000; '2500baseX/Full' -> 2500; anything else -> None."""
    digits = ""
    for char in mode:
        if char not in "0123456789":  # not isdigit(): "²".isdigit() is True
            break
        digits += char
    if not digits or not mode[len(digits) :].startswith("base") or len(digits) > 7:
        return None
    return int(digits)


def _modes(value: str | None) -> list[str]:
    if not value or value.startswith("Not reported"):
        return []
    return [word for word in value.split() if link_mode_speed_mbps(word) is not None]


def _speed_mbps(value: str | None) -> int | None:
    """'25000Mb/s' -> 25000; 'Unknown!' -> None."""
    if not value or not value.endswith("Mb/s"):
        return None
    number = value[: -len("Mb/s")].strip()
    return int(number) if number.isdigit() and len(number) <= 7 else None


def _yes_no(value: str | None) -> bool | None:
    word = (value or "").split(" ", 1)[0].lower()
    return {"yes": True, "on": True, "no": False, "off": False}.get(word)


def parse_settings(text: str) -> LinkSettings:
    """`ethtool IF`: the "Settings for IF:" block."""
    values: dict[str, str] = {}
    for key, value in _pairs(text):
        values.setdefault(key, value)
    supported = _modes(values.get("Supported link modes"))
    speeds = [s for s in map(link_mode_speed_mbps, supported) if s is not None]
    duplex = (values.get("Duplex") or "").lower()
    return LinkSettings(
        supported_link_modes=supported,
        advertised_link_modes=_modes(values.get("Advertised link modes")),
        supported_max_speed_mbps=max(speeds) if speeds else None,
        speed_mbps=_speed_mbps(values.get("Speed")),
        duplex=duplex if duplex in ("full", "half") else None,
        port=_text(values.get("Port")),
        auto_negotiation=_yes_no(values.get("Auto-negotiation")),
        link_detected=_yes_no(values.get("Link detected")),
    )


PARSERS: dict[str, Callable[[str], object]] = {
    "ethtool": parse_settings,
    "ethtool-i": parse_driver_info,
    "ethtool-permaddr": parse_permanent_address,
}
