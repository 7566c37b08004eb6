"""PCIe AER counters from sysfs: /sys/bus/pci/devices/<bdf>/aer_dev_{correctable,fatal,nonfatal}.

Kernel >= 4.19 (Documentation/ABI/testing/sysfs-bus-pci-devices-aer_stats). Each file holds one
`Name count` line per error type and a total:

    RxErr 0
    BadTLP 2
    ...
    TOTAL_ERR_COR 2

Root ports add `aer_rootport_total_err_{cor,fatal,nonfatal}` (one number each): what the port
received from below it. The counters start at zero when the kernel boots. Errors may be counted
at the link partner rather than the faulty device, so a finding names the device that counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from bee.findings import Finding
from bee.jsonvalue import integer as _number

PCI_DEVICES = "/sys/bus/pci/devices"
FILES = ("aer_dev_correctable", "aer_dev_fatal", "aer_dev_nonfatal")
TOTALS = ("TOTAL_ERR_COR", "TOTAL_ERR_FATAL", "TOTAL_ERR_NONFATAL")
ROOT_PORT_FILES = (
    "aer_rootport_total_err_cor",
    "aer_rootport_total_err_fatal",
    "aer_rootport_total_err_nonfatal",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AerCounters:
    pci_address: str
    correctable: dict[str, int]  # per error type, as the kernel names them
    fatal: dict[str, int]
    nonfatal: dict[str, int]
    correctable_total: int | None
    fatal_total: int | None
    nonfatal_total: int | None
    rootport_correctable_total: int | None  # root ports only: received from below
    rootport_fatal_total: int | None
    rootport_nonfatal_total: int | None


def parse(text: str) -> dict[str, int]:
    """One aer_dev_* file: {"RxErr": 0, ..., "TOTAL_ERR_COR": 2}; odd lines are skipped."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.strip().rpartition(" ")
        if name.strip() and value.isdigit():
            counts.setdefault(name.strip(), int(value))
    return counts


def _total(counts: dict[str, int], key: str) -> int | None:
    if key in counts:
        return counts[key]
    values = [v for k, v in counts.items() if not k.startswith("TOTAL")]
    return sum(values) if values else None


def read_device(read, address: str) -> AerCounters | None:
    """`read(path) -> str | None`; None when the device has no AER statistics."""
    base = f"{PCI_DEVICES}/{address}"
    texts = [read(f"{base}/{name}") for name in FILES]
    if all(t is None for t in texts):
        return None
    parsed = [parse(t) if t is not None else {} for t in texts]
    ports = [_number(read(f"{base}/{name}")) for name in ROOT_PORT_FILES]
    return AerCounters(
        pci_address=address,
        correctable=parsed[0],
        fatal=parsed[1],
        nonfatal=parsed[2],
        correctable_total=_total(parsed[0], TOTALS[0]) if texts[0] is not None else None,
        fatal_total=_total(parsed[1], TOTALS[1]) if texts[1] is not None else None,
        nonfatal_total=_total(parsed[2], TOTALS[2]) if texts[2] is not None else None,
        rootport_correctable_total=ports[0],
        rootport_fatal_total=ports[1],
        rootport_nonfatal_total=ports[2],
    )


def findings(devices: list[AerCounters], source: str = "health") -> list[Finding]:
    """Fatal and non-fatal errors above zero; correctable counts are data, not findings."""
    found = []
    for device in devices:
        for label, total, port_total, severity in (
            ("fatal", device.fatal_total, device.rootport_fatal_total, "critical"),
            ("non-fatal", device.nonfatal_total, device.rootport_nonfatal_total, "warning"),
        ):
            if total:
                kinds = device.fatal if label == "fatal" else device.nonfatal
                named = ", ".join(
                    f"{k} {v}" for k, v in kinds.items() if v and not k.startswith("TOTAL")
                )
                message = f"PCIe AER: {total} uncorrectable {label} error(s) since boot"
                found.append(
                    Finding(
                        source=source,
                        severity=severity,  # type: ignore[arg-type]
                        subject=device.pci_address,
                        message=message + (f" ({named})" if named else ""),
                        persistence="since_boot",
                    )
                )
            elif port_total:
                found.append(
                    Finding(
                        source=source,
                        severity=severity,  # type: ignore[arg-type]
                        subject=device.pci_address,
                        message=f"PCIe AER: root port received {port_total} uncorrectable "
                        f"{label} error message(s) from below it since boot",
                        persistence="since_boot",
                    )
                )
    return found
