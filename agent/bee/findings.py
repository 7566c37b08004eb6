"""Findings: what an operator must look at, derived across sections after collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    source: str  # the section that raised it: "pcie", "storage", "nvidia", ...
    severity: Severity
    subject: str  # the device it is about: a PCI address, a disk name, a GPU UUID
    message: str
