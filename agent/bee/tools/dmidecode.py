"""dmidecode: board (types 0-3), CPUs (type 4), memory (types 16, 17). Parser pending."""

from __future__ import annotations

from bee.probe import Probe

PARSERS: dict = {}


def collect_board(probe: Probe) -> None:
    probe.run(["dmidecode", "-t", "0,1,2,3"])


def collect_cpu(probe: Probe) -> None:
    probe.run(["dmidecode", "-t", "4"])


def collect_memory(probe: Probe) -> None:
    probe.run(["dmidecode", "-t", "16,17"])
