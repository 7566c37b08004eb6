"""The few lines an operator reads on the console, and the same as a QR code."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bee.runner import Runner

QR_TIMEOUT_S = 10.0


def _get(document: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _items(document: Any, *path: str) -> list[dict[str, Any]]:
    value = _get(document, *path)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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


def summary_lines(document: dict[str, Any]) -> list[str]:
    system = _get(document, "board", "system") or {}
    vendor = system.get("manufacturer") or "?"
    product = system.get("product") or "?"
    serial = system.get("serial") or "?"
    lines = [f"bee {document.get('bee_version', '?')} audit of {vendor} {product}, S/N {serial}"]

    sockets = [s for s in _items(document, "cpu", "sockets") if s.get("populated")]
    if sockets:
        cores = sum(s.get("core_count") or 0 for s in sockets)
        threads = sum(s.get("thread_count") or 0 for s in sockets)
        model = _counted([s.get("model") or "?" for s in sockets])
        lines.append(f"CPU: {model} ({cores} cores, {threads} threads)")
    else:
        lines.append("CPU: not reported")

    memory = document.get("memory")
    if isinstance(memory, dict):
        slots = _items(memory, "slots")
        lines.append(
            f"Memory: {human_bytes(memory.get('total_bytes'))} in "
            f"{memory.get('populated_count', '?')} of {len(slots)} slots"
        )
    else:
        lines.append("Memory: not reported")

    disks = _items(document, "storage", "disks")
    if disks:
        total = sum(d.get("size_bytes") or 0 for d in disks)
        verdicts = Counter(_get(d, "health", "verdict") or "unknown" for d in disks)
        health = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        lines.append(f"Disks: {len(disks)}, {human_bytes(total)} ({health})")
    else:
        lines.append("Disks: none reported")

    gpus = _items(document, "nvidia", "gpus")
    if gpus:
        driver = _get(document, "nvidia", "driver_version") or "?"
        lines.append(f"GPUs: {_counted([g.get('name') or '?' for g in gpus])}, driver {driver}")
    else:
        lines.append("GPUs: none reported")

    psus = _items(document, "psu", "power_supplies")
    if psus:
        lines.append(f"PSUs: {len(psus)}")

    findings = _items(document, "findings")
    serious = [f for f in findings if f.get("severity") in ("warning", "critical")]
    errors = document.get("errors") or []
    lines.append(f"Findings: {len(serious)}, errors: {len(errors)}")
    return lines


def qr_code(text: str, runner: Runner) -> str | None:
    """The text as a terminal QR code, or None when qrencode is missing or fails."""
    result = runner.run(
        ["qrencode", "-t", "ANSIUTF8", "-m", "1", "--", text], timeout_s=QR_TIMEOUT_S
    )
    return result.stdout if result.ok and result.stdout.strip() else None
