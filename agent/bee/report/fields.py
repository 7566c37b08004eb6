"""What `bee report` shows of one node: each field read from the document as a short phrase.

A field's value is the words the report prints ("32 DIMMs", "8 x NVIDIA H200"), and two nodes
agree on a field when their phrases are equal, so each phrase must say exactly what matters and
nothing that differs by nature (serials, UUIDs, MACs). Lists are counted and sorted by count,
then name, so the order a tool listed parts in never makes two equal machines differ. A section
that is null reads "not reported", or "unreadable (memory timeout)" when its collector failed:
an unread section is a difference to look at, never a silent match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bee.document import items, number, system_serial, text

NOT_REPORTED = "not reported"
NIC_CLASSES = ("02", "0c06")  # PCI network controllers, InfiniBand


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    key: str  # CSV column and HTML id
    label: str  # column header and the name in "differs from the majority"
    read: Callable[[dict[str, Any]], str]
    compared: bool = True  # False: identity (host name, serial), unique per node by nature
    hardware: bool = True  # False: health and software, left out of "identical hardware"


def counted(names: list[str]) -> str:
    """ "2 x A, 1 x B": most frequent first, ties by name, so list order never matters."""
    tally = Counter(names)
    return ", ".join(f"{n} x {name}" for name, n in sorted(tally.items(), key=_by_count))


def _by_count(entry: tuple[str, int]) -> tuple[int, str]:
    return (-entry[1], entry[0])


def _gib(size: int | float) -> str:
    gib = size / 2**30
    return f"{gib:.0f} GiB" if gib == int(gib) else f"{gib:.2f} GiB"


def _tb(size: int | float) -> str:
    # Disks: vendors' decimal sizes; two decimals of TB tell 3.84 from 3.2 TB drives apart.
    return f"{size / 1e12:.2f} TB"


def _absent(document: dict[str, Any], section: str) -> str | None:
    """None when the section is there; else the phrase that says why it is not."""
    if isinstance(document.get(section), dict):
        return None
    status = text(document, "collectors", section, "status")
    if status in ("failed", "timeout"):
        return f"unreadable ({section} {status})"
    return NOT_REPORTED


def _or(value: str | None) -> str:
    return value if value is not None else "?"


def read_hostname(document: dict[str, Any]) -> str:
    return text(document, "host", "hostname") or NOT_REPORTED


def read_serial(document: dict[str, Any]) -> str:
    return system_serial(document) or NOT_REPORTED


def read_board(document: dict[str, Any]) -> str:
    if (why := _absent(document, "board")) is not None:
        return why
    system = " ".join(
        t
        for t in (
            text(document, "board", "system", "manufacturer"),
            text(document, "board", "system", "product"),
        )
        if t
    )
    baseboard = text(document, "board", "baseboard", "product")
    if system and baseboard:
        return f"{system} ({baseboard})"
    return system or baseboard or NOT_REPORTED


def read_bios(document: dict[str, Any]) -> str:
    if (why := _absent(document, "board")) is not None:
        return why
    version = text(document, "board", "bios", "version")
    if version is None:
        return NOT_REPORTED
    date = text(document, "board", "bios", "release_date")
    return f"{version} ({date})" if date else version


def read_cpu(document: dict[str, Any]) -> str:
    if (why := _absent(document, "cpu")) is not None:
        return why
    sockets = [s for s in items(document, "cpu", "sockets") if s.get("populated")]
    if not sockets:
        return "no populated socket"
    cores = sum(number(s, "core_count") or 0 for s in sockets)
    model = counted([_or(text(s, "model")) for s in sockets])
    return f"{model}, {cores} cores"


def _dimms(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in items(document, "memory", "slots") if s.get("populated")]


def read_memory(document: dict[str, Any]) -> str:
    if (why := _absent(document, "memory")) is not None:
        return why
    total = number(document, "memory", "total_bytes")
    if total is None:
        total = sum(number(s, "size_bytes") or 0 for s in _dimms(document))
    return _gib(total)


def read_dimms(document: dict[str, Any]) -> str:
    if (why := _absent(document, "memory")) is not None:
        return why
    slots = items(document, "memory", "slots")
    dimms = len(_dimms(document))
    dimm_word = "DIMM" if dimms == 1 else "DIMMs"
    return f"{dimms} {dimm_word} in {len(slots)} {'slot' if len(slots) == 1 else 'slots'}"


def read_dimm_types(document: dict[str, Any]) -> str:
    if (why := _absent(document, "memory")) is not None:
        return why
    kinds = []
    for dimm in _dimms(document):
        size = number(dimm, "size_bytes")
        speed = number(dimm, "configured_speed_mts") or number(dimm, "speed_mts")
        kinds.append(
            " ".join(
                (
                    _or(text(dimm, "part_number")),
                    _gib(size) if size is not None else "?",
                    f"{speed} MT/s" if speed is not None else "? MT/s",
                )
            )
        )
    return counted(kinds) or "none"


def _disks(document: dict[str, Any]) -> list[dict[str, Any]]:
    # The medium bee booted from (the live USB or virtual CD) is not part of the machine.
    return [d for d in items(document, "storage", "disks") if not d.get("is_boot_medium")]


def read_disks(document: dict[str, Any]) -> str:
    if (why := _absent(document, "storage")) is not None:
        return why
    disks = _disks(document)
    total = sum(number(d, "size_bytes") or 0 for d in disks)
    return f"{len(disks)} {'disk' if len(disks) == 1 else 'disks'}, {_tb(total)}"


def read_disk_models(document: dict[str, Any]) -> str:
    if (why := _absent(document, "storage")) is not None:
        return why
    return counted([_or(text(d, "model")) for d in _disks(document)]) or "none"


def read_disk_health(document: dict[str, Any]) -> str:
    if (why := _absent(document, "storage")) is not None:
        return why
    verdicts = [text(d, "health", "verdict") or "unknown" for d in _disks(document)]
    return ", ".join(f"{n} {v}" for v, n in sorted(Counter(verdicts).items(), key=_by_count))


def read_nics(document: dict[str, Any]) -> str:
    """The network section's interfaces where the document has one; before it existed, the PCI
    network controllers (class 02)."""
    interfaces = items(document, "network", "interfaces")
    if interfaces:
        return counted(
            [
                _or(text(i, "model") or text(i, "driver") or text(i, "name"))
                for i in interfaces
                if not i.get("virtual")
            ]
        )
    if (why := _absent(document, "pcie")) is not None:
        return why
    nics = [
        _or(text(d, "device"))
        for d in items(document, "pcie", "devices")
        if str(d.get("class_id") or "").startswith(NIC_CLASSES)
    ]
    return counted(nics) or "none"


def read_gpus(document: dict[str, Any]) -> str:
    if (why := _absent(document, "nvidia")) is not None:
        # No NVIDIA driver is not the same as no GPU: say which the collector saw.
        return "none" if text(document, "collectors", "nvidia", "status") == "empty" else why
    return counted([_or(text(g, "name")) for g in items(document, "nvidia", "gpus")]) or "none"


def read_gpu_firmware(document: dict[str, Any]) -> str:
    if _absent(document, "nvidia") is not None or not items(document, "nvidia", "gpus"):
        return "-"
    driver = _or(text(document, "nvidia", "driver_version"))
    vbios = counted([_or(text(g, "vbios_version")) for g in items(document, "nvidia", "gpus")])
    return f"driver {driver}; VBIOS {vbios}"


def read_psus(document: dict[str, Any]) -> str:
    if (why := _absent(document, "psu")) is not None:
        return why
    psus = items(document, "psu", "power_supplies")
    return counted([_or(text(p, "model") or text(p, "part_number")) for p in psus]) or "none"


def read_pci(document: dict[str, Any]) -> str:
    if (why := _absent(document, "pcie")) is not None:
        return why
    return f"{len(items(document, 'pcie', 'devices'))} functions"


def serious_findings(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in items(document, "findings") if f.get("severity") in ("warning", "critical")]


def read_findings(document: dict[str, Any]) -> str:
    found = serious_findings(document)
    if not found:
        return "none"
    critical = sum(1 for f in found if f.get("severity") == "critical")
    return f"{len(found)} ({critical} critical)" if critical else str(len(found))


def read_errors(document: dict[str, Any]) -> str:
    errors = document.get("errors")
    count = len(errors) if isinstance(errors, list) else 0
    return f"{count} collector errors" if count else "none"


def read_bee(document: dict[str, Any]) -> str:
    return text(document, "bee_version") or NOT_REPORTED


FIELDS: tuple[Field, ...] = (
    Field(key="hostname", label="host name", read=read_hostname, compared=False),
    Field(key="serial", label="serial", read=read_serial, compared=False),
    Field(key="board", label="board", read=read_board),
    Field(key="bios", label="BIOS", read=read_bios),
    Field(key="cpu", label="CPU", read=read_cpu),
    Field(key="memory", label="memory", read=read_memory),
    Field(key="dimms", label="DIMMs", read=read_dimms),
    Field(key="dimm_types", label="DIMM types", read=read_dimm_types),
    Field(key="disks", label="disks", read=read_disks),
    Field(key="disk_models", label="disk models", read=read_disk_models),
    Field(key="disk_health", hardware=False, label="disk health", read=read_disk_health),
    Field(key="nics", label="NICs", read=read_nics),
    Field(key="gpus", label="GPUs", read=read_gpus),
    Field(key="gpu_firmware", label="GPU firmware", read=read_gpu_firmware),
    Field(key="psus", label="PSUs", read=read_psus),
    Field(key="pci", label="PCI", read=read_pci),
    Field(key="findings", hardware=False, label="findings", read=read_findings),
    Field(key="errors", hardware=False, label="errors", read=read_errors),
    Field(key="bee", hardware=False, label="bee", read=read_bee),
)


def read_row(document: dict[str, Any]) -> dict[str, str]:
    """Every field's phrase. A reader that raises is a bug in bee, not in the file: the field
    says so and the rest of the row stands."""
    row = {}
    for field in FIELDS:
        try:
            row[field.key] = field.read(document)
        except Exception as exc:  # never a crash over one node's odd document
            row[field.key] = f"unreadable (bee report: {type(exc).__name__})"
    return row


def findings_detail(document: dict[str, Any], limit: int = 50) -> list[str]:
    """The warning and critical findings as one line each, for the report's detail view."""
    lines = []
    for finding in serious_findings(document)[:limit]:
        severity = _or(text(finding, "severity"))
        subject = _or(text(finding, "subject"))
        lines.append(f"{severity}: {subject}: {_or(text(finding, 'message'))}")
    return lines
