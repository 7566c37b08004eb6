"""InfiniBand and RoCE adapters from /sys/class/infiniband (no tool needed: what `ibstat` and
rdma-core's `ibstatus` script read).

    /sys/class/infiniband/<dev>/{hca_type,fw_ver,node_guid,sys_image_guid,board_id,node_desc}
    /sys/class/infiniband/<dev>/device -> ../../../0000:3b:00.0     (the PCI function)
    /sys/class/infiniband/<dev>/ports/<n>/{state,phys_state,rate,link_layer,lid,sm_lid,gids/0}
    /sys/class/infiniband/<dev>/ports/<n>/gid_attrs/ndevs/0          (RoCE: the netdev)

Values look like `4: ACTIVE`, `5: LinkUp`, `400 Gb/sec (4X NDR)`, `0x12`. The kernel loads
these with mlx5_core + mlx5_ib (Debian's in-box drivers; OFED is not needed). HGX B200 NVSwitch
management ports show up as extra `mlx5_*` devices too: they are listed like any other, by what
sysfs says they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bee.probe import Probe
from bee.tools.lspci import normalize_address

SYSFS_INFINIBAND = "/sys/class/infiniband"


@dataclass(frozen=True, slots=True, kw_only=True)
class IbPort:
    number: int
    state: str | None  # "ACTIVE", "DOWN", "INIT", "ARMED"
    physical_state: str | None  # "LinkUp", "Disabled", "Polling"
    rate_gbps: float | None  # 400.0
    rate: str | None  # "400 Gb/sec (4X NDR)" as sysfs says it
    link_layer: str | None  # "InfiniBand" | "Ethernet" (RoCE)
    port_guid: str | None  # the low 64 bits of GID 0: "0c42:a103:0065:a0e4"
    lid: int | None  # InfiniBand only; 0 until the subnet manager assigns one
    sm_lid: int | None
    netdev: str | None  # RoCE: the Ethernet interface of this port


@dataclass(frozen=True, slots=True, kw_only=True)
class IbDevice:
    name: str  # "mlx5_0"
    hca_type: str | None  # "MT4129" (ConnectX-7)
    firmware_version: str | None  # "28.41.1000"
    node_guid: str | None  # "0c42:a103:0065:a0e4"
    system_image_guid: str | None
    board_id: str | None  # the PSID: "MT_0000000838"
    node_description: str | None
    pci_address: str | None
    ports: list[IbPort]


def parse_state(value: str | None) -> str | None:
    """'4: ACTIVE' -> 'ACTIVE'; '5: LinkUp' -> 'LinkUp'; a bare 'ACTIVE' stays."""
    if not value:
        return None
    code, sep, name = value.strip().partition(":")
    text = name.strip() if sep else code.strip()
    return text or None


def parse_rate_gbps(value: str | None) -> float | None:
    """'400 Gb/sec (4X NDR)' -> 400.0; '2.5 Gb/sec (1X SDR)' -> 2.5; 'N/A' -> None."""
    if not value:
        return None
    number, _, unit = value.strip().partition(" ")
    if not unit.startswith("Gb/sec"):
        return None
    try:
        rate = float(number) if len(number) <= 12 else math.nan
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate >= 0 else None


def parse_number(value: str | None) -> int | None:
    """A LID: '0x12' (sysfs prints hex) or '18'."""
    text = (value or "").strip().lower()
    digits, base = (text[2:], 16) if text.startswith("0x") else (text, 10)
    if not digits or len(digits) > 16:
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def port_guid_from_gid(gid: str | None) -> str | None:
    """GID 0 'fe80:0000:0000:0000:0c42:a103:0065:a0e4' -> '0c42:a103:0065:a0e4'."""
    groups = (gid or "").strip().lower().split(":")
    if len(groups) != 8 or any(len(g) != 4 for g in groups):
        return None
    guid = groups[4:]
    if not all(c in "0123456789abcdef" for c in "".join(guid)) or set("".join(guid)) == {"0"}:
        return None
    return ":".join(guid)


def _guid(value: str | None) -> str | None:
    """node_guid '0c42:a103:0065:a0e4'; all zeros means none assigned."""
    text = (value or "").strip().lower()
    return text if text and set(text) - {"0", ":"} else None


def _port(probe: Probe, base: str, number: int) -> IbPort:
    def value(name: str) -> str | None:
        return probe.read_value(f"{base}/{name}")

    rate = value("rate")
    return IbPort(
        number=number,
        state=parse_state(value("state")),
        physical_state=parse_state(value("phys_state")),
        rate_gbps=parse_rate_gbps(rate),
        rate=rate,
        link_layer=value("link_layer"),
        port_guid=port_guid_from_gid(value("gids/0")),
        lid=parse_number(value("lid")),
        sm_lid=parse_number(value("sm_lid")),
        netdev=value("gid_attrs/ndevs/0"),
    )


def read_devices(probe: Probe, root: str = SYSFS_INFINIBAND) -> list[IbDevice] | None:
    """Every device under root; None when there is no such directory (no RDMA driver)."""
    names = probe.list_dir(root)
    if names is None:
        return None
    devices = []
    for name in names:
        base = f"{root}/{name}"
        ports = probe.list_dir(f"{base}/ports") or []
        numbers = sorted(int(p) for p in ports if p.isascii() and p.isdigit() and len(p) < 6)
        pci = (probe.read_link(f"{base}/device") or "").rstrip("/").rpartition("/")[2]
        devices.append(
            IbDevice(
                name=name,
                hca_type=probe.read_value(f"{base}/hca_type"),
                firmware_version=probe.read_value(f"{base}/fw_ver"),
                node_guid=_guid(probe.read_value(f"{base}/node_guid")),
                system_image_guid=_guid(probe.read_value(f"{base}/sys_image_guid")),
                board_id=probe.read_value(f"{base}/board_id"),
                node_description=probe.read_value(f"{base}/node_desc"),
                pci_address=normalize_address(pci),
                ports=[_port(probe, f"{base}/ports/{n}", n) for n in numbers],
            )
        )
    return devices
