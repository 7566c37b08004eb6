"""lspci -vmm and /sys/bus/pci/devices: PCIe functions and links. Parser pending."""

from __future__ import annotations

from bee.findings import Finding
from bee.probe import Probe

PARSERS: dict = {}


def collect(probe: Probe) -> None:
    probe.run(["lspci", "-vmm", "-nn", "-D"])


def findings(sections: dict[str, object]) -> list[Finding]:
    return []
