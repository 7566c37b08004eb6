"""The health section: the counters and logs that show a failing or repaired part.

Read in seconds, no stress test: PCIe AER counters (aer.py), EDAC memory controllers
(edac.py), the kernel log (kernel_log.py: Xid, SXid, machine checks, EDAC and AER lines) and
NVLink state (nvidia_smi_nvlink.py, only where the NVIDIA driver is loaded). All of these count
since this boot (or are a state now); the counters that survive a reboot live in their own
sections (the BMC's SEL in bmc, GPU aggregate ECC and remapped rows in nvidia, SMART in
storage). `uptime_s` says how long "since boot" is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector
from bee.tools import aer, edac, kernel_log, nvidia_smi_nvlink
from bee.tools.aer import AerCounters
from bee.tools.edac import EdacController
from bee.tools.kernel_log import KernelLog
from bee.tools.nvidia_smi_nvlink import NvLinkStatus

KERNEL_LOG_ARGV = ("dmesg", "--kernel", "--decode", "--time-format", "iso")
KERNEL_LOG_TIMEOUT_S = 15.0
NVLINK_TIMEOUT_S = 30.0
NVIDIA_DRIVER = "/proc/driver/nvidia/version"


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    uptime_s: float | None  # /proc/uptime: the window every since-boot counter covers
    kernel_log: KernelLog | None  # None: dmesg missing or refused
    aer_devices: list[AerCounters]  # PCI functions with AER statistics
    aer_correctable_total: int  # data, not a finding
    edac_controllers: list[EdacController] | None  # None: no EDAC driver loaded
    nvlink: NvLinkStatus | None  # None: no NVIDIA driver, or no answer


def _uptime(probe: Probe) -> float | None:
    text = (probe.read_value("/proc/uptime") or "").partition(" ")[0]
    try:
        return float(text)
    except ValueError:
        return None


def _kernel_log(probe: Probe) -> KernelLog | None:
    result = probe.run(KERNEL_LOG_ARGV, timeout_s=KERNEL_LOG_TIMEOUT_S, check=False)
    if result.not_found:
        return None
    if not result.ok and not result.stdout.strip():
        # "dmesg: read kernel buffer failed: Operation not permitted" (not root,
        # kernel.dmesg_restrict): the log is unreadable, which is not "no errors".
        probe.error(result.describe_failure())
        return None
    if result.stdout_truncated:
        probe.note("kernel log longer than the output cap: only its start was read")
    return kernel_log.parse(result.stdout)


def _aer(probe: Probe) -> list[AerCounters]:
    devices = []
    for address in probe.list_dir(aer.PCI_DEVICES) or []:
        counters = aer.read_device(probe.read_text, address)
        if counters is not None:
            devices.append(counters)
    return devices


def _nvlink(probe: Probe) -> NvLinkStatus | None:
    if probe.read_text(NVIDIA_DRIVER) is None:
        return None
    result = probe.run(nvidia_smi_nvlink.ARGV, timeout_s=NVLINK_TIMEOUT_S, check=False)
    if result.not_found:
        return None
    status = nvidia_smi_nvlink.parse(result.stdout)
    if not result.ok and not status.gpus:
        probe.error(result.describe_failure())
        return None
    return status


def collect(probe: Probe) -> Health:
    devices = _aer(probe)
    return Health(
        uptime_s=_uptime(probe),
        kernel_log=_kernel_log(probe),
        aer_devices=devices,
        aer_correctable_total=sum(d.correctable_total or 0 for d in devices),
        edac_controllers=edac.read_controllers(probe.read_text, probe.list_dir),
        nvlink=_nvlink(probe),
    )


def fabric_findings(nvidia: Any) -> list[Finding]:
    """NVSwitch fabric state per GPU from the nvidia section: UNKNOWN while the fabric is not
    configured (no fabric manager in this image), critical when configuration failed."""
    found = []
    for gpu in getattr(nvidia, "gpus", None) or []:
        state = getattr(gpu, "fabric_state", None)
        status = getattr(gpu, "fabric_status", None)
        if state is None:
            continue  # "N/A": not an NVSwitch system
        subject = getattr(gpu, "uuid", None) or f"GPU {getattr(gpu, 'index', '?')}"
        if state.lower() == "completed":
            if status and status.lower() != "success":
                found.append(
                    Finding(
                        source="health",
                        severity="critical",
                        subject=subject,
                        message=f"NVSwitch fabric: state Completed, status {status}",
                        persistence="current",
                    )
                )
            continue
        found.append(
            Finding(
                source="health",
                severity="info",
                subject=subject,
                message=f"NVSwitch fabric: UNKNOWN (state {state}; the fabric manager, which "
                "this image does not run, configures it)",
                persistence="current",
            )
        )
    return found


def findings(sections: Mapping[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    health = sections.get("health")
    if isinstance(health, Health):
        if health.kernel_log is not None:
            found += kernel_log.findings(health.kernel_log)
        found += aer.findings(health.aer_devices)
        if health.edac_controllers:
            found += edac.findings(health.edac_controllers)
        if health.nvlink is not None:
            found += nvidia_smi_nvlink.findings(health.nvlink)
    found += fabric_findings(sections.get("nvidia"))
    return found


def summary_line(section: Any) -> str | None:
    """ "Health: kernel log 3 Xid, 1 AER; AER 2 devices; EDAC none; up 312 s" (any shape)."""
    if not isinstance(section, dict):
        return None
    parts = []
    log = section.get("kernel_log")
    if isinstance(log, dict) and isinstance(log.get("counts"), dict):
        counts = ", ".join(f"{v} {k}" for k, v in sorted(log["counts"].items()))
        parts.append(f"kernel log {counts or 'clean'}")
    elif log is None:
        parts.append("kernel log unread")
    devices = section.get("aer_devices")
    if isinstance(devices, list):
        parts.append(f"AER on {len(devices)} devices")
    controllers = section.get("edac_controllers")
    parts.append(f"EDAC {len(controllers)} MC" if isinstance(controllers, list) else "no EDAC")
    uptime = section.get("uptime_s")
    if isinstance(uptime, int | float) and not isinstance(uptime, bool):
        parts.append(f"since boot {uptime:.0f} s")
    return "Health: " + "; ".join(parts)


COLLECTORS = (
    Collector(
        name="health",
        order=90,
        collects="PCIe AER and EDAC counters (sysfs), the kernel log (dmesg), NVLink state",
        collect=collect,
        findings=findings,
        summary=summary_line,
        parsers={**kernel_log.PARSERS, **nvidia_smi_nvlink.PARSERS},
    ),
)
