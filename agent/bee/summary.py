"""The few lines an operator reads on the console, and the same as a QR code."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bee.document import dig as _get
from bee.document import items as _items
from bee.runner import Runner

QR_TIMEOUT_S = 10.0


def human_bytes(size: float | None) -> str:
    if not isinstance(size, int | float) or size < 0:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "?"


def _counted(names: list[str]) -> str:
    return ", ".join(f"{n} x {name}" for name, n in Counter(names).most_common())


def _number(value: Any) -> int | float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _name(value: Any) -> str:
    return value if isinstance(value, str) and value else "?"


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The console summary. Reads the document defensively: any section may be null."""
    system = _get(document, "board", "system")
    system = system if isinstance(system, dict) else {}
    lines = [
        f"bee {_name(document.get('bee_version'))} audit of {_name(system.get('manufacturer'))} "
        f"{_name(system.get('product'))}, S/N {_name(system.get('serial'))}"
    ]

    sockets = [s for s in _items(document, "cpu", "sockets") if s.get("populated")]
    if sockets:
        cores = sum(_number(s.get("core_count")) for s in sockets)
        threads = sum(_number(s.get("thread_count")) for s in sockets)
        model = _counted([_name(s.get("model")) for s in sockets])
        lines.append(f"CPU: {model} ({cores} cores, {threads} threads)")
    else:
        lines.append("CPU: not reported")

    memory = document.get("memory")
    if isinstance(memory, dict):
        slots = _items(memory, "slots")
        populated = memory.get("populated_count")
        populated = populated if isinstance(populated, int) else "?"
        lines.append(
            f"Memory: {human_bytes(memory.get('total_bytes'))} in {populated} of {len(slots)} slots"
        )
    else:
        lines.append("Memory: not reported")

    # The medium bee booted from (the live CD/USB) is listed in the document, not counted here.
    disks = [d for d in _items(document, "storage", "disks") if not d.get("is_boot_medium")]
    if disks:
        total = sum(_number(d.get("size_bytes")) for d in disks)
        verdicts = Counter(_name(_get(d, "health", "verdict")) for d in disks)
        health = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        lines.append(f"Disks: {len(disks)}, {human_bytes(total)} ({health})")
    else:
        lines.append("Disks: none reported")

    gpus = _items(document, "nvidia", "gpus")
    if gpus:
        driver = _name(_get(document, "nvidia", "driver_version"))
        lines.append(f"GPUs: {_counted([_name(g.get('name')) for g in gpus])}, driver {driver}")
    else:
        lines.append("GPUs: none reported")

    psus = _items(document, "psu", "power_supplies")
    if psus:
        lines.append(f"PSUs: {len(psus)}")

    findings = _items(document, "findings")
    serious = [f for f in findings if f.get("severity") in ("warning", "critical")]
    errors = document.get("errors")
    errors = errors if isinstance(errors, list) else []
    lines.append(f"Findings: {len(serious)}, errors: {len(errors)}")
    return lines


def qr_code(text: str, runner: Runner) -> str | None:
    """The text as a terminal QR code, or None when qrencode is missing or fails."""
    result = runner.run(
        ["qrencode", "-t", "ANSIUTF8", "-m", "1", "--", text], timeout_s=QR_TIMEOUT_S
    )
    return result.stdout if result.ok and result.stdout.strip() else None
