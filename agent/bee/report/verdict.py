"""A node's verdict in the fleet report, and where it came from.

In order of precedence: `--spec SPEC` evaluated by bee check here, for every node alike; a
`<node>.check.json` beside the audit (what `bee check --json` printed on the node, saved by the
Ansible playbook); the document's own `verdict` key (`bee audit --spec` on the node). A node
with none of them has no verdict, which the report shows as such and never counts as accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bee.document import items, text

ACCEPT = "ACCEPT"
REJECT = "REJECT"
NO_VERDICT = "no verdict"
# bee check's statuses; anything else a file claims is shown as "UNKNOWN", never as accepted.
STATUSES = (ACCEPT, REJECT)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    status: str  # ACCEPT, REJECT, UNKNOWN or NO_VERDICT
    failed: tuple[str, ...] = ()  # ids of the checks that did not pass
    source: str = ""  # "spec", "check file", "document"

    def words(self) -> str:
        if not self.failed:
            return self.status
        shown = ", ".join(self.failed[:3])
        more = f" +{len(self.failed) - 3}" if len(self.failed) > 3 else ""
        return f"{self.status} ({shown}{more})"


NONE = Verdict(status=NO_VERDICT)


class SpecError(Exception):
    """--spec cannot be used: bee check is missing or the spec is unreadable; one line."""


def from_result(result: Any, source: str) -> Verdict | None:
    """A verdict from bee check's result as JSON (the document's `verdict` key, `bee check
    --json`): its `status`, and the ids of the checks that did not pass."""
    status = text(result, "status")
    if status is None:
        return None
    status = status.upper()
    failed = tuple(
        text(check, "id") or "?" for check in items(result, "checks") if not _passes(check)
    )
    return Verdict(status=status if status in STATUSES else "UNKNOWN", failed=failed, source=source)


def _passes(check: dict[str, Any]) -> bool:
    """PASS, or an UNKNOWN the operator waived (`bee check --allow-unknown ID`)."""
    status = (text(check, "status") or "").upper()
    return status == "PASS" or (status == "UNKNOWN" and check.get("waived") is True)


Evaluate = Callable[[dict[str, Any]], Verdict]


def spec_evaluator(spec_source: str) -> Evaluate:
    """A function judging one document against the spec (a file or an http URL, read once).
    bee check is imported only here: a report without --spec does not need it."""
    from bee.spec import command

    try:
        spec = command.read_spec(spec_source)
    except command.InputError as exc:  # bee check's own one line: file, line and key
        raise SpecError(str(exc)) from None

    def evaluate(document: dict[str, Any]) -> Verdict:
        try:
            result = command.evaluate(spec, document)
        except Exception as exc:  # it never raises; if it does, that node is UNKNOWN, not a crash
            return Verdict(status="UNKNOWN", failed=(f"bee check raised {type(exc).__name__}",))
        return from_result(result, "spec") or Verdict(status="UNKNOWN", source="spec")

    return evaluate
