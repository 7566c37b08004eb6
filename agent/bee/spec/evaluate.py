"""A spec against an audit document: every check runs, each is PASS, FAIL or UNKNOWN.

- A check selects parts (`select = "memory.slots"`, filtered by `where`) and tests them with
  quantifiers: `count`, `all`, `any`, `none`, `same`.
- Values are judged in three-valued logic: a null or absent field is unknown, not false. A
  check FAILs only on evidence (a wrong value, a missing part, too few parts even counting the
  unknown ones); where the answer depends on what bee could not read, it is UNKNOWN.
- A section whose collector did not finish `ok` (failed, timed out, empty) or that is null
  makes every check on it UNKNOWN: a partial list is no evidence that a part is missing.
  `findings` are derived from every section, so checks on them are UNKNOWN when any collector
  failed or timed out.
- FAIL and UNKNOWN both reject; an UNKNOWN check can be waived by id (`--allow-unknown`, or
  `allow_unknown = true` in the spec).

Reads the document defensively: any value may have any type; nothing here raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bee.spec.load import Check, FieldTest, Profile, Spec
from bee.spec.values import compare_versions, numbers_equal

PASS, FAIL, UNKNOWN = "PASS", "FAIL", "UNKNOWN"
ACCEPT, REJECT = "ACCEPT", "REJECT"
# Fields that name a part in `where`, best first.
LABEL_FIELDS = ("locator", "designation", "name", "address", "pci_address", "path", "index")
SHOWN_PARTS = 3  # offending parts named in `got`
MAX_TEXT = 200
_MISSING = object()

Tri = bool | None  # True, False, or None for unknown
Member = tuple[str, Any, Tri]  # (label, part, membership)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    id: str
    status: str  # PASS | FAIL | UNKNOWN
    waived: bool  # an UNKNOWN the operator accepted
    expected: str
    got: str
    where: str
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    spec: str
    spec_sha256: str | None
    profile: str | None
    status: str  # ACCEPT | REJECT
    counts: dict[str, int]
    checks: tuple[Result, ...]


def rejected(source: str, check_id: str, reason: str, sha256: str | None = None) -> Verdict:
    """The verdict when there is nothing to judge with: a spec that cannot be read or fetched."""
    result = Result(
        id=check_id, status=FAIL, waived=False, expected="a readable spec", got=reason, where=source
    )
    return _verdict(source, sha256, None, [result])


def judge(spec: Spec, document: Any, allow_unknown: Iterable[str] = ()) -> Verdict:
    """Run every check of the spec (shared checks, then the matching profile's) on a document."""
    waive = set(allow_unknown)
    doc = document if isinstance(document, dict) else {}
    results: list[Result] = []
    profile_name = None
    checks: list[Check] = list(spec.checks)
    if spec.profiles:
        profile, why = choose_profile(spec.profiles, doc)
        if profile is None:
            results.append(
                Result(
                    id="PROFILE",
                    status=why[0],
                    waived=False,
                    expected="one of: " + ", ".join(p.name for p in spec.profiles),
                    got=why[1],
                    where="board, pcie, nvidia",
                )
            )
        else:
            profile_name = profile.name
            checks.extend(profile.checks)
    selections: dict[Any, list[Member]] = {}  # checks sharing select and where share the scan
    for check in checks:
        results.append(run_check(check, doc, waive, selections))
    return _verdict(spec.source, spec.sha256, profile_name, results)


def _verdict(
    source: str, sha256: str | None, profile: str | None, results: list[Result]
) -> Verdict:
    counts = {PASS: 0, FAIL: 0, UNKNOWN: 0}
    for r in results:
        counts[r.status] += 1
    accepted = all(r.status == PASS or (r.status == UNKNOWN and r.waived) for r in results)
    return Verdict(
        spec=source,
        spec_sha256=sha256,
        profile=profile,
        status=ACCEPT if accepted and results else REJECT,
        counts=counts,
        checks=tuple(results),
    )


# -- profiles --------------------------------------------------------------------------------


def _identity(doc: dict[str, Any]) -> dict[str, list[str] | None]:
    """What profiles match on; None where the section could not be read."""
    board = doc.get("board") if _section_ok(doc, "board") else None

    def board_value(*path: str) -> list[str] | None:
        value = _get(board, path)
        return [value] if isinstance(value, str) and value else None

    gpu_ids: list[str] | None = None
    pcie = doc.get("pcie") if _section_ok(doc, "pcie") else None
    devices = _get(pcie, ("devices",))
    if isinstance(devices, list):
        gpu_ids = []
        for device in devices:
            vendor, ident = _get(device, ("vendor_id",)), _get(device, ("device_id",))
            if isinstance(vendor, str) and isinstance(ident, str):
                gpu_ids.append(f"{vendor}:{ident}".lower())
    gpus = _get(doc.get("nvidia") if _section_ok(doc, "nvidia") else None, ("gpus",))
    if isinstance(gpus, list):
        gpu_ids = gpu_ids or []
        for gpu in gpus:
            ident = _get(gpu, ("pci_device_id",))
            if isinstance(ident, str):
                gpu_ids.append(f"10de:{ident}".lower())
    return {
        "board_product": board_value("baseboard", "product"),
        "system_product": board_value("system", "product"),
        "system_sku": board_value("system", "sku"),
        "gpu_pci_device_id": gpu_ids,
    }


def choose_profile(
    profiles: tuple[Profile, ...], doc: dict[str, Any]
) -> tuple[Profile | None, tuple[str, str]]:
    """The first profile whose every match key holds; else why none did (status, reason)."""
    identity = _identity(doc)
    unknown: list[str] = []
    for profile in profiles:
        state: Tri = True
        for key, wanted in profile.match:
            seen = identity.get(key)
            if seen is None:
                state = None if state else state
                unknown.append(key)
                continue
            wanted_set = {w.lower() if key == "gpu_pci_device_id" else w for w in wanted}
            if key == "gpu_pci_device_id":
                wanted_set = {w if ":" in w else f"10de:{w}" for w in wanted_set}
            if not wanted_set.intersection(seen):
                state = False
                break
        if state:
            return profile, (PASS, "")
    seen_text = ", ".join(
        f"{k} {'/'.join(sorted(set(v)))[:80]!s}" if v else f"{k} unknown"
        for k, v in identity.items()
    )
    if unknown:
        return None, (
            UNKNOWN,
            f"no profile matches; could not read {', '.join(sorted(set(unknown)))}",
        )
    return None, (FAIL, f"no profile matches this machine: {seen_text}")


# -- checks ----------------------------------------------------------------------------------


def _get(value: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _collector_status(doc: dict[str, Any], section: str) -> str | None:
    collectors = doc.get("collectors")
    entry = collectors.get(section) if isinstance(collectors, dict) else None
    status = entry.get("status") if isinstance(entry, dict) else None
    return status if isinstance(status, str) else None


def _section_ok(doc: dict[str, Any], section: str) -> bool:
    status = _collector_status(doc, section)
    return status in (None, "ok") and isinstance(doc.get(section), dict)


def _section_problem(doc: dict[str, Any], section: str) -> str | None:
    """Why the checks on a section cannot be trusted, or None."""
    if section == "findings":
        collectors = doc.get("collectors")
        bad = [
            name
            for name, entry in (collectors.items() if isinstance(collectors, dict) else ())
            if not isinstance(entry, dict) or entry.get("status") not in ("ok", "empty")
        ]
        if bad:
            return f"findings are incomplete: collector {', '.join(sorted(bad))} did not finish"
        return None
    status = _collector_status(doc, section)
    if status is not None and status != "ok":
        return f"the {section} collector ended {status}"
    return None


def run_check(
    check: Check, doc: dict[str, Any], waive: set[str], selections: dict[Any, list[Member]]
) -> Result:
    status, expected, got, where = _evaluate(check, doc, selections)
    return Result(
        id=check.id,
        status=status,
        waived=status == UNKNOWN and (check.allow_unknown or check.id in waive),
        expected=_clip(expected),
        got=_clip(got),
        where=_clip(where),
        description=check.description,
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _members(select: str, value: Any, where: tuple[FieldTest, ...]) -> list[Member]:
    """The selected parts `where` keeps (or may keep: membership None when unreadable)."""
    if isinstance(value, list):
        parts = [(f"{select}[{i}]", item) for i, item in enumerate(value)]
    else:
        parts = [(select, value)]
    members: list[Member] = []
    for label, part in parts:
        membership: Tri = True
        for test in where:
            membership = _and(membership, _test(test, part))
            if membership is False:
                break
        if membership is not False:
            members.append((_part_label(label, part), part, membership))
    return members


def _evaluate(
    check: Check, doc: dict[str, Any], selections: dict[Any, list[Member]]
) -> tuple[str, str, str, str]:
    select = ".".join(check.select)
    where_text = select + (
        " where " + ", ".join(f"{t.field} = {t.text}" for t in check.where) if check.where else ""
    )
    expected = _expected(check)
    problem = _section_problem(doc, check.select[0])
    value = _get(doc, check.select)
    if problem is not None:
        return UNKNOWN, expected, problem, where_text
    if value is _MISSING:
        return UNKNOWN, expected, f"{select} is not in the document", where_text
    if value is None:
        return UNKNOWN, expected, f"{select} is null (not read)", where_text
    key = (check.select, check.where)
    members = selections.get(key)
    if members is None:
        members = selections[key] = _members(select, value, check.where)

    outcomes: list[tuple[str, str, str]] = []  # (status, got, where) per quantifier
    if check.count is not None:
        outcomes.append(_count(check.count, members, where_text))
    if check.all is not None:
        outcomes.append(_all(check.all, members, where_text))
    if check.any is not None:
        outcomes.append(_any(check.any, members, where_text))
    if check.none is not None:
        outcomes.append(_none(check.none, members, where_text))
    if check.same is not None:
        outcomes.append(_same(check.same, members, where_text))
    for wanted in (FAIL, UNKNOWN):
        bad = [o for o in outcomes if o[0] == wanted]
        if bad:
            return wanted, expected, "; ".join(o[1] for o in bad), bad[0][2]
    return PASS, expected, "; ".join(o[1] for o in outcomes), where_text


def _expected(check: Check) -> str:
    parts = []
    if check.count is not None:
        low, high = check.count
        if high == low:
            parts.append(f"count {low}")
        elif high is None:
            parts.append(f"count at least {low}")
        else:
            parts.append(f"count {low} to {high}")
    for word, tests in (("all", check.all), ("any", check.any), ("none", check.none)):
        if tests is not None:
            parts.append(f"{word}: " + ", ".join(f"{t.field} = {t.text}" for t in tests))
    if check.same is not None:
        parts.append("same " + ", ".join(check.same))
    return "; ".join(parts)


def _part_label(label: str, part: Any) -> str:
    if isinstance(part, dict):
        for key in LABEL_FIELDS:
            value = part.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                return f"{label} ({value})" if not label.endswith(f"[{value}]") else label
    return label


def _and(a: Tri, b: Tri) -> Tri:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _all_tests(tests: tuple[FieldTest, ...], part: Any) -> tuple[Tri, str]:
    state: Tri = True
    notes = []
    for test in tests:
        result = _test(test, part)
        if result is not True:
            notes.append(_note(test, part))
        state = _and(state, result)
        if state is False:
            return False, notes[-1]
    return state, "; ".join(notes)


def _named(items: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{label}: {note}" if note else label for label, note in items[:SHOWN_PARTS])
    more = len(items) - SHOWN_PARTS
    return shown + (f" (+{more} more)" if more > 0 else "")


def _count(
    wanted: tuple[int, int | None], members: list[tuple[str, Any, Tri]], where: str
) -> tuple[str, str, str]:
    low, high = wanted
    known = sum(1 for m in members if m[2] is True)
    maybe = sum(1 for m in members if m[2] is None)
    got = str(known) if not maybe else f"{known} (+{maybe} not readable)"
    if (high is not None and known > high) or known + maybe < low:
        return FAIL, got, where
    if maybe:
        return UNKNOWN, got, where
    return PASS, got, where


def _all(
    tests: tuple[FieldTest, ...], members: list[tuple[str, Any, Tri]], where: str
) -> tuple[str, str, str]:
    failed, unknown = [], []
    for label, part, membership in members:
        result, note = _all_tests(tests, part)
        violation = _and(membership, None if result is None else not result)
        if violation is True:
            failed.append((label, note))
        elif violation is None:
            unknown.append((label, note or "membership not readable"))
    if failed:
        return FAIL, _named(failed), failed[0][0]
    if unknown:
        return UNKNOWN, _named(unknown), unknown[0][0]
    if not members:
        return FAIL, "no such part", where
    return PASS, f"{len(members)} of {len(members)}", where


def _any(
    tests: tuple[FieldTest, ...], members: list[tuple[str, Any, Tri]], where: str
) -> tuple[str, str, str]:
    unknown = []
    for label, part, membership in members:
        result, note = _all_tests(tests, part)
        witness = _and(membership, result)
        if witness is True:
            return PASS, label, label
        if witness is None:
            unknown.append((label, note))
    if unknown:
        return UNKNOWN, _named(unknown), unknown[0][0]
    return FAIL, "no such part" if not members else f"none of {len(members)}", where


def _none(
    tests: tuple[FieldTest, ...], members: list[tuple[str, Any, Tri]], where: str
) -> tuple[str, str, str]:
    found, unknown = [], []
    for label, part, membership in members:
        result, note = _all_tests(tests, part)
        hit = _and(membership, result)
        if hit is True:
            found.append((label, _describe(tests, part)))
        elif hit is None:
            unknown.append((label, note))
    if found:
        return FAIL, _named(found), found[0][0]
    if unknown:
        return UNKNOWN, _named(unknown), unknown[0][0]
    return PASS, f"0 of {len(members)}", where


def _describe(tests: tuple[FieldTest, ...], part: Any) -> str:
    return ", ".join(f"{t.field} {_show(_get(part, t.path))}" for t in tests)


def _same(
    fields: tuple[str, ...], members: list[tuple[str, Any, Tri]], where: str
) -> tuple[str, str, str]:
    if not members:
        return FAIL, "no such part", where
    notes, state = [], PASS
    for field in fields:
        path = tuple(field.split("."))
        values: dict[str, list[str]] = {}
        unreadable = []
        for label, part, membership in members:
            value = _get(part, path)
            if membership is None or value is None or value is _MISSING:
                unreadable.append(label)
                continue
            values.setdefault(_show(value), []).append(label)
        if len(values) > 1:
            state = FAIL
            ranked = sorted(values.items(), key=lambda kv: -len(kv[1]))
            notes.append(
                f"{field}: "
                + ", ".join(f"{v} x{len(labels)}" for v, labels in ranked[:4])
                + f" (odd one: {ranked[-1][1][0]})"
            )
        elif unreadable:
            state = UNKNOWN if state == PASS else state
            notes.append(f"{field} not readable on {_named([(u, '') for u in unreadable])}")
        else:
            notes.append(f"{field} {next(iter(values), '?')}")
    return state, "; ".join(notes), where


# -- one field -------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is _MISSING:
        return "absent"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value[:80])
    if isinstance(value, int | float):
        return _number_text(value) or "a number out of range"
    return f"a {type(value).__name__}"


def _number_text(value: Any) -> str | None:
    """str() of a number, or None: Python refuses str() of ints over 4300 digits."""
    if _is_number(value):
        try:
            return str(value)
        except ValueError:
            return None
    return None


def _is_number(value: Any) -> bool:
    """A number a rule can compare: finite, and an int no float overflows on."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(10**300) < value < 10**300
    return isinstance(value, float) and math.isfinite(value)


def _equal(got: Any, wanted: Any) -> bool:
    """Strings exactly, booleans only with booleans (True is not 1), numbers by value."""
    got_type, wanted_type = type(got), type(wanted)
    if got_type is str or wanted_type is str:
        return got_type is wanted_type and got == wanted
    if got_type is bool or wanted_type is bool:
        return got_type is wanted_type and got == wanted
    return _is_number(got) and _is_number(wanted) and numbers_equal(got, wanted)


def _one_of(got: Any, test: FieldTest) -> bool:
    # The strings as a set: a `where` with a list of PCI classes runs over every function.
    if type(got) is str:
        return got in test.one_of_strings
    return any(_equal(got, w) for w in test.one_of or () if type(w) is not str)


def _note(test: FieldTest, part: Any) -> str:
    """What the part holds, for `got` (made only for a test that did not pass)."""
    note = f"{test.field} is {_show(_get(part, test.path))}"
    if test.same_as is not None:
        note += f", {'.'.join(test.same_as)} is {_show(_get(part, test.same_as))}"
    return note


def _test(test: FieldTest, part: Any) -> Tri:
    """Whether the part's field meets the test; None when the field is null or absent."""
    got = _get(part, test.path)
    if got is _MISSING or got is None:
        return None
    if test.eq is not None:
        if test.tolerance is not None:
            if not _is_number(got):
                return False
            limit = (
                abs(float(test.eq)) * test.tolerance / 100 if test.tolerance_pct else test.tolerance
            )
            if abs(got - test.eq) > limit + 1e-12:
                return False
        elif not _equal(got, test.eq):
            return False
    if test.ne is not None and _equal(got, test.ne):
        return False
    if test.one_of is not None and not _one_of(got, test):
        return False
    if test.min is not None or test.max is not None:
        if not _is_number(got):
            return False
        if test.min is not None and got < test.min and not numbers_equal(got, test.min):
            return False
        if test.max is not None and got > test.max and not numbers_equal(got, test.max):
            return False
    if test.regex is not None:
        subject = got if isinstance(got, str) else _number_text(got)
        if not isinstance(subject, str) or not _fullmatch(test.regex, subject):
            return False
    for bound, sign in ((test.version_at_least, 1), (test.version_at_most, -1)):
        if bound is None:
            continue
        subject = got if isinstance(got, str) else _number_text(got)
        if subject is None or compare_versions(subject, bound) * sign < 0:
            return False
    if test.same_as is not None:
        other = _get(part, test.same_as)
        if other is _MISSING or other is None:
            return None
        if not _equal(got, other):
            return False
    return True


def _fullmatch(pattern: re.Pattern[str], subject: str) -> bool:
    try:
        return pattern.fullmatch(subject) is not None
    except RecursionError:
        return False
