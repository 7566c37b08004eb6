"""The verdict for people (a table, the console summary's first lines) and for programs (JSON).

The text functions read the verdict as it is in the document (a JSON object), defensively: the
console summary of any document, however odd, must not raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the console summary imports this module: keep tomllib and re out of it
    from bee.spec.evaluate import Verdict

PASS = "PASS"

SUMMARY_CHECKS = 8  # failing checks listed under the console's first line
ID_WIDTH = 34
LINE_WIDTH = 120


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """The `verdict` section of the document and `bee check --json`."""
    return {
        "spec": verdict.spec,
        "spec_sha256": verdict.spec_sha256,
        "profile": verdict.profile,
        "status": verdict.status,
        "counts": dict(verdict.counts),
        "checks": [
            {
                "id": r.id,
                "status": r.status,
                "waived": r.waived,
                "expected": r.expected,
                "got": r.got,
                "where": r.where,
                "description": r.description,
            }
            for r in verdict.checks
        ],
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "?"


def _checks(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    checks = verdict.get("checks")
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


def _count(verdict: dict[str, Any], status: str) -> int:
    return sum(1 for c in _checks(verdict) if c.get("status") == status)


def headline(verdict: dict[str, Any]) -> str:
    """`ACCEPT: 41 of 41 checks passed (...)` / `REJECT: 2 failed, 1 unknown of 41 checks (...)`."""
    total = len(_checks(verdict))
    profile = verdict.get("profile")
    where = f"spec {_text(verdict.get('spec'))}" + (
        f", profile {profile}" if isinstance(profile, str) else ""
    )
    waived = sum(1 for c in _checks(verdict) if c.get("waived") is True)
    if verdict.get("status") == "ACCEPT":
        extra = f", {waived} unknown waived" if waived else ""
        return f"ACCEPT: {_count(verdict, PASS)} of {total} checks passed{extra} ({where})"
    unknown = _count(verdict, "UNKNOWN") - waived
    return (
        f"REJECT: {_count(verdict, 'FAIL')} failed, {unknown} unknown of {total} checks ({where})"
    )


def rejecting(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in _checks(verdict) if c.get("status") != PASS and c.get("waived") is not True]


def summary_lines(verdict: Any) -> list[str]:
    """The first lines of the console summary: the verdict, then what rejects it."""
    if not isinstance(verdict, dict):
        return []
    lines = [headline(verdict)]
    bad = rejecting(verdict)
    for check in bad[:SUMMARY_CHECKS]:
        lines.append(
            f"  {_text(check.get('status'))} {_text(check.get('id'))}: expected "
            f"{_text(check.get('expected'))}; got {_text(check.get('got'))}"
            f" [{_text(check.get('where'))}]"
        )
    if len(bad) > SUMMARY_CHECKS:
        lines.append(f"  ... and {len(bad) - SUMMARY_CHECKS} more (bee check shows all)")
    return lines


def table(verdict: dict[str, Any]) -> str:
    """Every check, for `bee check`: one line per PASS, the whole story for the others (what was
    expected, what was found, where); the headline last, where the eye lands."""
    out = []
    for c in _checks(verdict):
        status = _text(c.get("status")) + ("*" if c.get("waived") is True else "")
        check_id = _text(c.get("id"))
        if c.get("status") == PASS:
            line = f"{status:<9} {check_id:<{ID_WIDTH}} {_text(c.get('expected'))}"
            out.append(line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 1] + "~")
            continue
        out.append(f"{status:<9} {check_id}")
        for label in ("expected", "got", "where"):
            out.append(f"{'':<9} {label + ':':<9} {_text(c.get(label))}")
    if any(c.get("waived") is True for c in _checks(verdict)):
        out.append("* unknown, waived (--allow-unknown or allow_unknown in the spec)")
    out.append(headline(verdict))
    return "\n".join(out) + "\n"
