"""The network section: every physical port, InfiniBand/RoCE adapters, LLDP neighbours.

Joins what sysfs (/sys/class/net), `ip -d -j addr show`, `ethtool -i/-P/IF`, the kernel command
line (BOOTIF), /sys/class/infiniband and a passive LLDP window say, one entry per interface
backed by a device (lo, bridges, bonds, VLANs, veth, tun have none: they appear only as the
`master` and `vlans` of the ports under them).

LLDP listens on every physical Ethernet port that is up, all at once, in a thread of its own
while the tools run; the window is bounded (LLDP_SECONDS, `bee audit --lldp`), and the runner
cuts it at the audit's deadline. A port that is down receives nothing, so it is listed as not
listened with that reason rather than as a port without a neighbour. Intel X710 (i40e) firmware
runs its own LLDP agent, which consumes the frames: bee turns it off through ethtool's private
flag `disable-fw-lldp` on those ports before listening (what MAAS does through debugfs).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bee import packets
from bee.findings import Finding
from bee.macaddr import normalize_mac
from bee.probe import Probe
from bee.registry import Collector
from bee.tools import boot as boot_section
from bee.tools import ethtool, infiniband, ip, lldp
from bee.tools.lspci import normalize_address

SYS_NET = "/sys/class/net"
IP_ARGV = ("ip", "-d", "-j", "addr", "show")
ETHTOOL_TIMEOUT_S = 10.0
ETHTOOL_WORKERS = 8
LLDP_SECONDS = 31.0  # switches send every 30 s (IEEE 802.1AB msgTxInterval)
ARPHRD_ETHER = 1
ARPHRD_INFINIBAND = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Vlan:
    name: str  # "bond0.100"
    vlan_id: int | None
    on: str  # the interface it sits on: this port, or the bond it belongs to


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkInterface:
    name: str
    mac_address: str | None  # current
    permanent_mac_address: str | None  # burnt in (ethtool -P; differs under a bond)
    link_type: str | None  # "ether", "infiniband"
    pci_address: str | None  # the function behind it, joined with the pcie section
    driver: str | None
    driver_version: str | None
    firmware_version: str | None
    firmware_psid: str | None
    bus_info: str | None
    operstate: str | None  # "up", "down", "lowerlayerdown", "unknown"
    carrier: bool | None  # None: sysfs cannot tell (the port is administratively down)
    mtu: int | None
    speed_mbps: int | None  # None while the link is down
    supported_max_speed_mbps: int | None  # the fastest link mode the port supports
    supported_link_modes: list[str]
    duplex: str | None
    port_type: str | None  # ethtool's Port: "FIBRE", "Direct Attach Copper", "Twisted Pair"
    master: str | None  # bond or bridge
    master_kind: str | None  # "bond", "bridge"
    vlans: list[Vlan]
    addresses: list[ip.IpAddress]
    boot_interface: bool  # its MAC is the kernel command line's BOOTIF


@dataclass(frozen=True, slots=True, kw_only=True)
class PortNotListened:
    interface: str
    reason: str  # "down" (administratively), "not Ethernet", "cannot listen: ..."


@dataclass(frozen=True, slots=True, kw_only=True)
class LldpResult:
    window_s: float  # the bound asked for
    duration_s: float  # how long it really listened
    listened: list[str]
    not_listened: list[PortNotListened]
    firmware_agent_disabled: list[str]  # i40e ports whose firmware LLDP agent bee turned off
    neighbors: list[lldp.Neighbor]


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    interfaces: list[NetworkInterface]
    interface_count: int
    boot_mac_address: str | None  # BOOTIF from the kernel command line
    infiniband: list[infiniband.IbDevice]
    lldp: LldpResult | None  # None: LLDP turned off, or this runner cannot listen


# -- sysfs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sysfs:
    name: str
    pci_address: str | None
    driver: str | None
    address: str | None
    type_code: int | None
    operstate: str | None
    carrier: bool | None
    mtu: int | None
    speed_mbps: int | None
    duplex: str | None
    admin_up: bool | None  # IFF_UP in sysfs `flags`


def device_path_pci_address(target: str | None) -> str | None:
    """'../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0' -> '0000:00:03.0': the last
    PCI function on the way (a virtio or USB NIC sits below its PCI function)."""
    found = None
    for part in (target or "").split("/"):
        if (address := normalize_address(part)) and len(part) >= 12:
            found = address
    return found


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    if text.startswith("-"):
        return None
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


def _read_sysfs(probe: Probe, name: str) -> _Sysfs | None:
    """None for an interface without a device (virtual)."""
    target = probe.read_link(f"{SYS_NET}/{name}")
    device = probe.read_link(f"{SYS_NET}/{name}/device")
    if device is None or (target is not None and "/virtual/" in target):
        return None
    base = f"{SYS_NET}/{name}"
    driver = probe.read_link(f"{base}/device/driver")
    carrier = probe.read_value(f"{base}/carrier")  # reading it fails (EINVAL) when down
    speed = _int(probe.read_value(f"{base}/speed"))  # -1 or a failed read when no link
    duplex = (probe.read_value(f"{base}/duplex") or "").lower()
    return _Sysfs(
        name=name,
        pci_address=device_path_pci_address(target),
        driver=driver.rstrip("/").rpartition("/")[2] or None if driver else None,
        address=normalize_mac(probe.read_value(f"{base}/address")),
        type_code=_int(probe.read_value(f"{base}/type")),
        operstate=(probe.read_value(f"{base}/operstate") or "").lower() or None,
        carrier={"1": True, "0": False}.get(carrier or ""),
        mtu=_int(probe.read_value(f"{base}/mtu")),
        speed_mbps=speed or None,
        duplex=duplex if duplex in ("full", "half") else None,
        admin_up=_flag_up(probe.read_value(f"{base}/flags")),
    )


def _flag_up(value: str | None) -> bool | None:
    """sysfs `flags` '0x1003' -> IFF_UP (0x1) set?"""
    text = (value or "").strip().lower().removeprefix("0x")
    if not text or len(text) > 8 or not all(c in "0123456789abcdef" for c in text):
        return None
    return bool(int(text, 16) & 0x1)


# -- LLDP -------------------------------------------------------------------------------------


def _lldp_ports(ports: list[_Sysfs]) -> tuple[list[str], list[PortNotListened]]:
    """Every Ethernet port that is administratively up, with or without carrier yet (a link
    still negotiating when the audit starts comes up inside the window); an administratively
    down port receives nothing (lldpd#372), so it is named, not listened to."""
    listen, skipped = [], []
    for port in ports:
        if port.type_code != ARPHRD_ETHER:
            skipped.append(PortNotListened(interface=port.name, reason="not Ethernet"))
        elif port.admin_up is False or (
            port.admin_up is None and port.operstate != "up" and port.carrier is not True
        ):
            skipped.append(PortNotListened(interface=port.name, reason="down"))
        else:
            listen.append(port.name)
    return listen, skipped


def disable_firmware_lldp(probe: Probe, ports: list[_Sysfs], names: list[str]) -> list[str]:
    """i40e firmware consumes LLDP frames before the host sees them (lldpd#444)."""
    disabled = []
    for port in ports:
        if port.driver == "i40e" and port.name in names:
            argv = ["ethtool", "--set-priv-flags", port.name, "disable-fw-lldp", "on"]
            result = probe.run(argv, timeout_s=ETHTOOL_TIMEOUT_S, check=False)
            if result.ok:
                disabled.append(port.name)
            elif not result.not_found:  # older firmware has no such flag: LLDP may stay unseen
                probe.note(
                    f"{port.name}: i40e firmware LLDP agent not turned off: "
                    f"{result.describe_failure()}"
                )
    return disabled


def listen_lldp(
    probe: Probe,
    names: list[str],
    seconds: float,
    *,
    skipped: Sequence[PortNotListened] = (),
    disabled: Sequence[str] = (),
) -> LldpResult | None:
    """One window over every named port at once, decoded; None when this runner cannot
    listen or a replayed capture never did (then bee does not know, which is not "none")."""
    if names:
        frames = probe.receive_frames(names, ethertype=packets.ETH_P_LLDP, seconds=seconds)
    else:
        frames = packets.Frames(
            interfaces=(), ethertype=packets.ETH_P_LLDP, seconds=seconds, duration_s=0.0
        )
    if frames is None:
        return None
    failed = []
    for message in frames.errors:
        if message.startswith("not in the capture"):
            probe.note(f"LLDP: {message}")
            return None
        name, _, reason = message.partition(": ")
        failed.append(PortNotListened(interface=name, reason=reason or message))
    return LldpResult(
        window_s=frames.seconds,
        duration_s=frames.duration_s,
        listened=list(frames.listened),
        not_listened=[*skipped, *failed],
        firmware_agent_disabled=list(disabled),
        neighbors=lldp.neighbors(frames.frames),
    )


# -- the collector ----------------------------------------------------------------------------


def _interface(
    port: _Sysfs,
    *,
    link: ip.IpLink | None,
    links: list[ip.IpLink],
    driver_info: ethtool.DriverInfo | None,
    permanent: str | None,
    settings: ethtool.LinkSettings | None,
    boot: str | None,
) -> NetworkInterface:
    master = next((x for x in links if link and x.name == link.master), None)
    under = {port.name} | ({link.master} if link and link.master else set())
    vlans = [
        Vlan(name=x.name, vlan_id=x.vlan_id, on=x.link or "")
        for x in links
        if x.kind == "vlan" and x.link in under
    ]
    permanent = permanent or (link.permanent_address if link else None)
    current = port.address or (link.address if link else None)
    link_type = link.link_type if link else None
    if link_type is None:
        link_type = {ARPHRD_ETHER: "ether", ARPHRD_INFINIBAND: "infiniband"}.get(port.type_code)
    return NetworkInterface(
        name=port.name,
        mac_address=current,
        permanent_mac_address=permanent,
        link_type=link_type,
        pci_address=port.pci_address
        or normalize_address(driver_info.bus_info or "" if driver_info else ""),
        driver=(driver_info.driver if driver_info else None) or port.driver,
        driver_version=driver_info.driver_version if driver_info else None,
        firmware_version=driver_info.firmware_version if driver_info else None,
        firmware_psid=driver_info.firmware_psid if driver_info else None,
        bus_info=driver_info.bus_info if driver_info else None,
        operstate=port.operstate,
        carrier=port.carrier,
        mtu=port.mtu if port.mtu is not None else (link.mtu if link else None),
        speed_mbps=port.speed_mbps or (settings.speed_mbps if settings else None),
        supported_max_speed_mbps=settings.supported_max_speed_mbps if settings else None,
        supported_link_modes=settings.supported_link_modes if settings else [],
        duplex=port.duplex or (settings.duplex if settings else None),
        port_type=settings.port if settings else None,
        master=link.master if link else None,
        master_kind=(link.port_kind if link else None) or (master.kind if master else None),
        vlans=vlans,
        addresses=link.addresses if link else [],
        boot_interface=boot is not None and boot in (current, permanent),
    )


def _ethtool(probe: Probe, name: str):
    def run(*flags: str):
        result = probe.run(["ethtool", *flags, name], timeout_s=ETHTOOL_TIMEOUT_S)
        return result.stdout if result.ok else None

    info, perm, settings = run("-i"), run("-P"), run()
    return (
        ethtool.parse_driver_info(info) if info is not None else None,
        ethtool.parse_permanent_address(perm) if perm is not None else None,
        ethtool.parse_settings(settings) if settings is not None else None,
    )


def collect(probe: Probe, *, lldp_seconds: float | None = None) -> Network | None:
    if lldp_seconds is None:
        lldp_seconds = float(probe.options.get("lldp_seconds", LLDP_SECONDS))
    names = probe.list_dir(SYS_NET)
    if names is None:
        return None
    ports = [p for p in (_read_sysfs(probe, name) for name in names) if p is not None]

    # LLDP first, in its own thread: its window overlaps everything below.
    listener: threading.Thread | None = None
    heard: list[LldpResult | None] = []
    if lldp_seconds > 0:
        listen, skipped = _lldp_ports(ports)
        disabled = disable_firmware_lldp(probe, ports, listen)
        listener = threading.Thread(
            target=lambda: heard.append(
                listen_lldp(probe, listen, lldp_seconds, skipped=skipped, disabled=disabled)
            ),
            name="bee-lldp",
            daemon=True,
        )
        listener.start()

    # ip and each port's ethtool calls run side by side: sixteen ports must not cost sixteen
    # times one tool (the audit's wall time is its slowest tool, not their sum).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=ETHTOOL_WORKERS, thread_name_prefix="bee-net") as pool:
        ip_result = pool.submit(probe.run, list(IP_ARGV))
        per_port = [pool.submit(_ethtool, probe, port.name) for port in ports]
        result = ip_result.result()
        tool_outputs = [future.result() for future in per_port]
    links = ip.parse(result.stdout) if result.stdout.strip() else []
    by_name = {link.name: link for link in links}
    cmdline = probe.read_text(boot_section.CMDLINE)
    boot = boot_section.parse_cmdline(cmdline).bootif_mac if cmdline is not None else None
    interfaces = []
    for port, (driver_info, permanent, settings) in zip(ports, tool_outputs, strict=True):
        interfaces.append(
            _interface(
                port,
                link=by_name.get(port.name),
                links=links,
                driver_info=driver_info,
                permanent=permanent,
                settings=settings,
                boot=boot,
            )
        )
    devices = infiniband.read_devices(probe) or []

    if listener is not None:
        listener.join()  # bounded: the window, cut by the deadline or an abort
    return Network(
        interfaces=interfaces,
        interface_count=len(interfaces),
        boot_mac_address=boot,
        infiniband=devices,
        lldp=heard[0] if heard else None,
    )


# -- findings ---------------------------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def findings(sections: Mapping[str, Any]) -> list[Finding]:
    """A port slower than it can run; an InfiniBand port that is not Active; a NIC whose PCIe
    link trained narrower than it supports (the pcie finding, told as the port's)."""
    network = sections.get("network")
    result: list[Finding] = []
    pcie_devices = {_get(d, "address"): d for d in _list(_get(sections.get("pcie"), "devices"))}
    for nic in _list(_get(network, "interfaces")):
        name = _get(nic, "name")
        speed, best = _get(nic, "speed_mbps"), _get(nic, "supported_max_speed_mbps")
        linked = _get(nic, "carrier") is True or _get(nic, "operstate") == "up"
        if linked and isinstance(speed, int) and isinstance(best, int) and 0 < speed < best:
            result.append(
                Finding(
                    source="network",
                    severity="warning",
                    subject=str(name),
                    message=f"link runs at {speed} Mb/s of the {best} Mb/s the port supports",
                )
            )
        device = pcie_devices.get(_get(nic, "pci_address"))
        current, maximum = _get(device, "current_link_width"), _get(device, "max_link_width")
        if isinstance(current, int) and isinstance(maximum, int) and 0 < current < maximum:
            result.append(
                Finding(
                    source="network",
                    severity="warning",
                    subject=str(name),
                    message=(
                        f"NIC on a PCIe link of x{current} of x{maximum} "
                        f"({_get(nic, 'pci_address')}): it cannot reach its line rate"
                    ),
                )
            )
    for hca in _list(_get(network, "infiniband")):
        for port in _list(_get(hca, "ports")):
            state = _get(port, "state")
            if _get(port, "link_layer") == "InfiniBand" and state != "ACTIVE":
                result.append(
                    Finding(
                        source="network",
                        severity="warning",
                        subject=f"{_get(hca, 'name')}/{_get(port, 'number')}",
                        message=(
                            f"InfiniBand port is {state or 'in an unknown state'}"
                            f" ({_get(port, 'physical_state') or 'physical state unknown'})"
                        ),
                    )
                )
    return result


# -- console summary --------------------------------------------------------------------------


def summary_line(section: Any) -> str | None:
    """'Network: 2 ports (1 link up), booted from enp3s0; LLDP: 1 neighbour; InfiniBand: 8 of 8
    ports Active'. Reads the section as in the document; any shape, never raises."""
    if not isinstance(section, dict):
        return None
    ports = [p for p in _list(section.get("interfaces")) if isinstance(p, dict)]
    up = sum(1 for p in ports if p.get("carrier") is True)
    text = f"Network: {len(ports)} port{'' if len(ports) == 1 else 's'} ({up} link up)"
    boot = next((p.get("name") for p in ports if p.get("boot_interface") is True), None)
    if boot:
        text += f", booted from {boot}"
    lldp = section.get("lldp")
    if isinstance(lldp, dict):
        count = len(_list(lldp.get("neighbors")))
        text += f"; LLDP: {count} neighbour{'' if count == 1 else 's'}"
    ib_ports = [
        p
        for d in _list(section.get("infiniband"))
        for p in _list(_get(d, "ports"))
        if _get(p, "link_layer") == "InfiniBand"
    ]
    if ib_ports:
        active = sum(1 for p in ib_ports if _get(p, "state") == "ACTIVE")
        text += f"; InfiniBand: {active} of {len(ib_ports)} ports Active"
    return text


COLLECTORS = (
    Collector(
        name="network",
        order=55,
        collects=(
            "network ports, InfiniBand/RoCE, LLDP neighbours: /sys/class/net, ip -d -j addr show,"
            " ethtool -i/-P, /sys/class/infiniband, a passive LLDP window"
        ),
        collect=collect,
        findings=findings,
        summary=summary_line,
        parsers={**ethtool.PARSERS, **ip.PARSERS, **lldp.PARSERS},
    ),
)
