"""The bmc section: the BMC's identity, its network address, its event log and its sensors.

Commands (ipmitool 1.8.x, only when an IPMI device node exists, as for the psu section):
`ipmitool mc info`, `ipmitool lan print N` for the usual LAN channels, `ipmitool sel elist`,
`ipmitool sdr elist`. Parsers: ipmitool_mc.py, ipmitool_lan.py, ipmitool_sel.py,
ipmitool_sdr.py. The SEL is the one history that survives reboots and reinstalls, so its faults
are findings marked persistent; sensor states are a reading now (current).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector
from bee.tools import ipmitool, ipmitool_lan, ipmitool_mc, ipmitool_sdr, ipmitool_sel
from bee.tools.ipmitool import find_ipmi_device

MC_INFO_ARGV = ("ipmitool", "mc", "info")
SEL_ARGV = ("ipmitool", "sel", "elist")
SDR_ARGV = ipmitool.SDR_ARGV  # run once per audit, shared with whoever else reads sensors
# LAN channels vendors use: 1 nearly everywhere, 2 (HPE iLO shared), 3 (Intel), 8 (some Dell
# and Lenovo). A channel that is not LAN answers at once with "Invalid channel".
LAN_CHANNELS = (1, 2, 3, 8)
TIMEOUT_S = 30.0
SEL_TIMEOUT_S = 60.0  # `sel elist` reads the SDR too, to name the sensors


@dataclass(frozen=True, slots=True, kw_only=True)
class Bmc:
    ipmi_device: str  # the node ipmitool used
    identity: ipmitool_mc.BmcIdentity | None
    lan_channels: list[ipmitool_lan.BmcLanChannel]  # channels that answered with parameters
    sel: ipmitool_sel.Sel | None  # None: could not be read (see errors)
    sensors: ipmitool_sdr.SensorList | None


def _identity(probe: Probe) -> ipmitool_mc.BmcIdentity | None:
    result = probe.run(MC_INFO_ARGV, timeout_s=TIMEOUT_S, check=False)
    if result.not_found:
        return None
    identity = ipmitool_mc.parse(result.stdout)
    if identity.error is not None:
        probe.error(result.describe_failure() if not result.ok else f"mc info: {identity.error}")
        return None
    return identity


def _lan(probe: Probe) -> list[ipmitool_lan.BmcLanChannel]:
    channels = []
    for number in LAN_CHANNELS:
        result = probe.run(
            ("ipmitool", "lan", "print", str(number)), timeout_s=TIMEOUT_S, check=False
        )
        if result.not_found or result.timed_out:
            break
        channel = ipmitool_lan.parse(result.stdout, channel=number)
        if channel.error is None:
            channels.append(channel)
    if not channels:
        probe.note(f"no LAN channel of {LAN_CHANNELS} answered `ipmitool lan print`")
    return channels


def _sel(probe: Probe) -> ipmitool_sel.Sel | None:
    result = probe.run(SEL_ARGV, timeout_s=SEL_TIMEOUT_S, check=False)
    if result.not_found:
        return None
    sel = ipmitool_sel.parse(result.stdout)
    if not result.ok and not sel.entries and not sel.empty:
        probe.error(result.describe_failure())
        return None
    return sel


def _sdr(probe: Probe) -> ipmitool_sdr.SensorList | None:
    result = ipmitool.sdr(probe)
    if result.not_found:
        return None
    sensors = ipmitool_sdr.parse(result.stdout)
    # ipmitool exits 1 when one sensor cannot be read and prints the others: that is data.
    if not result.ok and not sensors.sensors:
        probe.error(result.describe_failure())
        return None
    return sensors


def collect(probe: Probe) -> Bmc | None:
    node = find_ipmi_device(probe)
    if node is None:
        return None  # no BMC visible to this OS: quiet, as the psu section is
    return Bmc(
        ipmi_device=node,
        identity=_identity(probe),
        lan_channels=_lan(probe),
        sel=_sel(probe),
        sensors=_sdr(probe),
    )


def findings(sections: Mapping[str, Any]) -> list[Finding]:
    bmc = sections.get("bmc")
    if not isinstance(bmc, Bmc):
        return []
    found: list[Finding] = []
    if bmc.sel is not None:
        found += ipmitool_sel.findings(bmc.sel)
    if bmc.sensors is not None:
        found += ipmitool_sdr.findings(bmc.sensors)
    return found


def summary_line(section: Any) -> str | None:
    """ "BMC: Supermicro firmware 1.74, 10.0.0.5 0c:c4:..; SEL 9 entries; 8 sensors, 1 failing"."""
    if not isinstance(section, dict):
        return None
    parts = []
    identity = section.get("identity")
    if isinstance(identity, dict):
        maker = identity.get("manufacturer_name") or f"vendor {identity.get('manufacturer_id')}"
        parts.append(f"{maker} firmware {identity.get('firmware_revision') or '?'}")
    channels = section.get("lan_channels")
    if isinstance(channels, list) and channels and isinstance(channels[0], dict):
        lan = channels[0]
        parts.append(f"{lan.get('ip_address') or 'no IP'} {lan.get('mac_address') or ''}".strip())
    sel = section.get("sel")
    if isinstance(sel, dict) and isinstance(sel.get("entry_count"), int):
        parts.append(f"SEL {sel['entry_count']} entries")
    sensors = section.get("sensors")
    if isinstance(sensors, dict) and isinstance(sensors.get("sensors"), list):
        items = [s for s in sensors["sensors"] if isinstance(s, dict)]
        failing = sum(1 for s in items if s.get("severity") in ("warning", "critical"))
        parts.append(f"{len(items)} sensors, {failing} failing")
    return "BMC: " + ("; ".join(parts) if parts else "present, nothing read")


COLLECTORS = (
    Collector(
        name="bmc",
        order=75,
        collects="BMC: ipmitool mc info, lan print per LAN channel, sel elist, sdr elist",
        collect=collect,
        findings=findings,
        summary=summary_line,
        parsers={
            **ipmitool_lan.PARSERS,
            **ipmitool_mc.PARSERS,
            **ipmitool_sel.PARSERS,
            **ipmitool_sdr.PARSERS,
        },
    ),
)
