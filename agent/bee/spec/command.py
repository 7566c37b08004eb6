"""The spec commands' work, apart from argument parsing (bee.cli): reading audits and specs,
`bee check`, `bee spec`, and the verdict `bee audit --spec` adds to its document."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bee.spec.evaluate import ACCEPT, judge, rejected
from bee.spec.generate import write_spec
from bee.spec.load import Spec, SpecError, load_spec
from bee.spec.report import table, verdict_json
from bee.spec.source import MAX_SPEC_BYTES, Pending, fetch_url, is_url, read_file

AUDIT_SCHEMA_VERSION = 1
MAX_AUDIT_BYTES = 256 << 20
CHECK_FETCH_S = 30.0


class InputError(Exception):
    """An unreadable or invalid spec or audit: one line naming the file; exit 2."""


def read_spec(source: str, timeout_s: float = CHECK_FETCH_S) -> Spec:
    import time

    fetched = (
        fetch_url(source, time.monotonic() + timeout_s) if is_url(source) else read_file(source)
    )
    if fetched.data is None:
        raise InputError(fetched.error or f"cannot read {source}")
    try:
        return load_spec(fetched.data, source)
    except SpecError as exc:
        raise InputError(str(exc)) from None


def read_audit(path: str) -> dict[str, Any]:
    """An audit document from a file or '-' (stdin); InputError names what is wrong."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_AUDIT_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_AUDIT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_AUDIT_BYTES:
        raise InputError(f"{name}: larger than {MAX_AUDIT_BYTES} bytes, not a bee audit")
    try:
        document = json.loads(data.decode("utf-8", errors="strict"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}:{exc.lineno}: not JSON: {exc.msg} (column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{name}: not a usable JSON document: {str(exc)[:100]}") from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise InputError(f"{name}: not a bee audit document (no schema_version)")
    version = document.get("schema_version")
    if version != AUDIT_SCHEMA_VERSION or isinstance(version, bool):
        raise InputError(
            f"{name}: schema_version {str(version)[:20]}; this bee reads {AUDIT_SCHEMA_VERSION}"
        )
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def evaluate(spec: Spec, document: Any, allow_unknown: list[str] | None = None) -> dict[str, Any]:
    """The verdict as JSON (what the document's `verdict` holds); pure, never raises. For `bee
    report --spec`, which judges many documents against one spec read once with read_spec."""
    return verdict_json(judge(spec, document, allow_unknown or ()))


def check(spec_source: str, audit_path: str, allow_unknown: list[str], as_json: bool) -> int:
    """`bee check`: 0 accept, 1 reject; InputError (exit 2) before anything is printed."""
    spec = read_spec(spec_source)
    document = read_audit(audit_path)
    verdict = evaluate(spec, document, allow_unknown)
    known = {c["id"] for c in verdict["checks"]}
    for check_id in sorted(set(allow_unknown) - known):  # a typo would waive nothing, silently
        print(f"bee: --allow-unknown {check_id}: no check has this id", file=sys.stderr)
    if as_json:
        sys.stdout.write(json.dumps(verdict, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(table(verdict))
    return 0 if verdict["status"] == ACCEPT else 1


def spec(audit_paths: list[str], output: str) -> int:
    """`bee spec`: a spec from known-good audits, to a file (atomically) or stdout."""
    documents = [read_audit(p) for p in audit_paths]
    text = write_spec(documents, ["stdin" if p == "-" else Path(p).name for p in audit_paths])
    if output == "-":
        sys.stdout.write(text)
        return 0
    from bee.output import OutputError, write_document

    try:
        write_document(Path(output), text.encode("utf-8"))
    except OutputError as exc:
        raise InputError(str(exc)) from None
    active = sum(1 for line in text.splitlines() if line in ("[[check]]", "[[profile.check]]"))
    print(f"bee: wrote {output}: {active} checks (and any commented out)", file=sys.stderr)
    return 0


def start(source: str, deadline_s: float) -> Pending:
    """For `bee audit --spec`: start reading the spec (a URL is fetched while the audit runs)."""
    return Pending(source, deadline_s)


def verdict_for(pending: Pending, document: dict[str, Any]) -> dict[str, Any]:
    """The document's `verdict`: REJECT with the reason when the spec could not be had."""
    fetched = pending.wait()
    if fetched.data is None:
        verdict = rejected(pending.source, "SPEC", fetched.error or "no spec")
    else:
        try:
            verdict = judge(load_spec(fetched.data, pending.source), document)
        except SpecError as exc:
            import hashlib

            sha = hashlib.sha256(fetched.data).hexdigest()
            verdict = rejected(pending.source, "SPEC", str(exc), sha)
    return verdict_json(verdict)


__all__ = ["MAX_SPEC_BYTES", "InputError", "check", "evaluate", "read_audit", "read_spec", "spec"]
