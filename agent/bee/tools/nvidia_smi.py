"""nvidia-smi -q -x: GPUs. Parser pending."""

from __future__ import annotations

from bee.findings import Finding
from bee.probe import Probe

PARSERS: dict = {}


def collect(probe: Probe) -> None:
    return None


def findings(sections: dict[str, object]) -> list[Finding]:
    return []
