"""The storage section: lsblk for the disks, smartctl and nvme-cli for their health. Pending."""

from __future__ import annotations

from bee.findings import Finding
from bee.probe import Probe


def collect(probe: Probe) -> None:
    probe.run(["lsblk", "-J", "-b", "-o", "NAME,TYPE,SIZE,MODEL,SERIAL"])


def findings(sections: dict[str, object]) -> list[Finding]:
    return []
