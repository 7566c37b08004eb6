"""A node's verdict in the fleet report, and where it came from.

In order of precedence: `--spec SPEC` evaluated by bee check here, for every node alike; a
`<node>.check.json` beside the audit (what `bee check --json` printed on the node, saved by the
Ansible playbook); the document's own `verdict` key (`bee audit --spec` on the node). A node
with none of them has no verdict, which the report shows as such and never counts as accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    --json`): its `status`, and the ids of checks whose status is not PASS."""
    status = text(result, "status")
    if status is None:
        return None
    status = status.upper()
    failed = tuple(
        text(check, "id") or "?"
        for check in items(result, "checks")
        if (text(check, "status") or "").upper() != "PASS"
    )
    return Verdict(status=status if status in STATUSES else "UNKNOWN", failed=failed, source=source)


Evaluate = Callable[[dict[str, Any]], Verdict]


def spec_evaluator(spec_path: Path) -> Evaluate:
    """A function judging one document against the spec, the spec read once. bee check is
    imported only here: a report without --spec does not need it."""
    try:
        from bee import check  # type: ignore[attr-defined]
    except ImportError:
        raise SpecError("--spec needs bee check, which this bee does not include") from None
    try:
        spec = check.load_spec(spec_path)
    except Exception as exc:  # bee check's own one-line errors (TOML, schema, unreadable)
        raise SpecError(f"{spec_path}: {exc}") from None
    from bee.serialize import to_jsonable

    def evaluate(document: dict[str, Any]) -> Verdict:
        try:
            result = to_jsonable(check.evaluate(spec, document))
        except Exception as exc:  # a bug in a check must not take the report down
            return Verdict(status="UNKNOWN", failed=(f"bee check raised {type(exc).__name__}",))
        return from_result(result, "spec") or Verdict(status="UNKNOWN", source="spec")

    return evaluate
