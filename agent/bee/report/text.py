"""The fleet report as an operator reads it in a terminal, and as CSV for a spreadsheet."""

from __future__ import annotations

import csv
import io

from bee.report.compare import Fleet, verdict_counts
from bee.report.fields import FIELDS

SKIPPED_SHOWN = 20
GROUP_SIZES_SHOWN = 12


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def headline(fleet: Fleet) -> list[str]:
    """The lines both the terminal and the HTML page open with."""
    nodes = fleet.nodes
    lines = [f"{_plural(len(nodes), 'node')}, {_plural(len(fleet.loaded.skipped), 'file')} skipped"]
    if not nodes:
        return lines
    lines.append("Verdicts: " + ", ".join(f"{n} {s}" for s, n in verdict_counts(nodes)))
    sizes = ", ".join(str(len(g)) for g in fleet.groups[:GROUP_SIZES_SHOWN])
    if len(fleet.groups) > GROUP_SIZES_SHOWN:
        sizes += ", ..."
    lines.append(
        f"Hardware: {_plural(len(fleet.groups), 'group')} of identical hardware "
        f"({sizes} node{'s' if len(nodes) != 1 else ''})"
    )
    return lines


def summary(fleet: Fleet) -> str:
    first, *rest = headline(fleet)
    lines = [f"bee report: {first}", *rest]
    if fleet.nodes:
        found = [*fleet.differences, *([fleet.verdict] if fleet.verdict else [])]
        if found:
            lines.append("Differs from the majority:")
            lines.extend(f"  {d.field.label}: {d.sentence()}" for d in found)
        elif len(fleet.nodes) == 1:
            lines.append("One node: nothing to compare it with.")
        else:
            lines.append(f"All {len(fleet.nodes)} nodes agree on every field.")
        for serial, names in fleet.shared_serials:
            lines.append(f"Serial {serial} in {len(names)} files: {', '.join(names)}")
    if fleet.loaded.skipped:
        lines.append("Skipped:")
        for skipped in fleet.loaded.skipped[:SKIPPED_SHOWN]:
            lines.append(f"  {skipped.path}: {skipped.reason}")
        if len(fleet.loaded.skipped) > SKIPPED_SHOWN:
            lines.append(f"  ... and {len(fleet.loaded.skipped) - SKIPPED_SHOWN} more")
    return "\n".join(lines) + "\n"


def csv_text(fleet: Fleet) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "node",
            "file",
            *(f.key for f in FIELDS),
            "verdict",
            "failed_checks",
            "differs_in",
            "sha256_verified",
        ]
    )
    odd = fleet.odd()
    for node in fleet.nodes:
        writer.writerow(
            [
                node.name,
                node.path,
                *(node.row.get(f.key, "") for f in FIELDS),
                node.verdict.status,
                " ".join(node.verdict.failed),
                " ".join(sorted(odd.get(node.name, ()))),
                "yes" if node.checksum_verified else "",
            ]
        )
    return out.getvalue()
