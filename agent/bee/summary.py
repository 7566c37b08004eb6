"""The few lines an operator reads on the console, and the same as a QR code.

The first line names the system (from the board section), then one line per collector that
has a `summary` (in registry order), then the count of findings and errors. The collectors'
lines read their section with `bee.document` and format with `human_bytes` and `counted`."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from bee.document import dig, items, text
from bee.registry import collectors
from bee.runner import Runner
from bee.spec.report import summary_lines as verdict_lines

log = logging.getLogger("bee")

QR_TIMEOUT_S = 10.0


def human_bytes(size: float | None) -> str:
    if not isinstance(size, int | float) or size < 0:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "?"


def counted(names: list[str]) -> str:
    """'2 x Xeon Gold, 1 x Xeon Silver'."""
    return ", ".join(f"{n} x {name}" for name, n in Counter(names).most_common())


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The console summary. Reads the document defensively: any section may be null."""
    system = dig(document, "board", "system")
    # With a spec (`bee audit --spec`), the verdict comes first: ACCEPT or REJECT and why.
    lines = verdict_lines(document.get("verdict"))
    lines += [
        f"bee {text(document, 'bee_version') or '?'} audit of "
        f"{text(system, 'manufacturer') or '?'} {text(system, 'product') or '?'}, "
        f"S/N {text(system, 'serial') or '?'}"
    ]
    for collector in collectors():
        if collector.summary is None:
            continue
        try:
            line = collector.summary(document.get(collector.name))
        except Exception as exc:  # a summary line must never cost the operator the others
            log.debug("%s summary raised %s: %s", collector.name, type(exc).__name__, exc)
            line = f"{collector.name}: summary failed ({type(exc).__name__})"
        if line:
            lines.append(line)

    findings = items(document, "findings")
    serious = [f for f in findings if f.get("severity") in ("warning", "critical")]
    errors = document.get("errors")
    errors = errors if isinstance(errors, list) else []
    missing = not_read(document, errors)
    tail = f"; not read: {', '.join(missing)}" if missing else ""
    lines.append(f"Findings: {len(serious)}, errors: {len(errors)}{tail}")
    return lines


def not_read(document: dict[str, Any], errors: list[Any]) -> list[str]:
    """Sections bee could not read: the collector failed or timed out, or its section is empty
    with errors recorded (a tool that failed). "errors: 0" alone would pass them as fine."""
    failing = {e.get("collector") for e in errors if isinstance(e, dict)}
    statuses = document.get("collectors")
    missing = []
    for name, entry in (statuses if isinstance(statuses, dict) else {}).items():
        status = entry.get("status") if isinstance(entry, dict) else None
        if status in ("failed", "timeout") or (document.get(name) is None and name in failing):
            missing.append(str(name))
    return missing


def qr_payload(document: dict[str, Any], document_sha256: str) -> str:
    """What the console's QR code carries when there is a verdict: a photo of the console then
    proves which machine and which document (as written) the verdict speaks for."""
    status = text(dig(document, "verdict"), "status") or "?"
    serial = text(dig(document, "board", "system"), "serial") or "?"
    return f"bee {status} S/N {serial} sha256 {document_sha256}"


def qr_code(text: str, runner: Runner) -> str | None:
    """The text as a terminal QR code, or None when qrencode is missing or fails."""
    result = runner.run(
        ["qrencode", "-t", "ANSIUTF8", "-m", "1", "--", text], timeout_s=QR_TIMEOUT_S
    )
    return result.stdout if result.ok and result.stdout.strip() else None
