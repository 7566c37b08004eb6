"""ipmitool fru: power supplies and FRU areas. Parser pending."""

from __future__ import annotations

from bee.probe import Probe

PARSERS: dict = {}


def collect(probe: Probe) -> None:
    return None
