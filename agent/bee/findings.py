"""Findings: what an operator must look at, derived across sections after collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "critical"]
# Whether the evidence outlives a reboot: a freshly booted live image sees a part's history only
# through the persistent kind (BMC SEL, GPU aggregate ECC and remapped rows, SMART). since_boot:
# kernel log, EDAC and AER counters, reset at boot. current: a state read now (a sensor).
Persistence = Literal["persistent", "since_boot", "current"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    source: str  # the section that raised it: "pcie", "storage", "nvidia", ...
    severity: Severity
    subject: str  # the device it is about: a PCI address, a disk name, a GPU UUID
    message: str
    persistence: Persistence | None = None  # health findings say it; inventory ones need not
    raw: str | None = None  # the raw line it came from (a SEL entry, a kernel log line)
