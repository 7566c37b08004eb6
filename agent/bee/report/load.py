"""Reading the files `bee report` is given: every audit document becomes a Node (its row of
phrases, its verdict), everything else a Skipped entry with the reason. Nothing here raises over
what a file holds.

A directory is read one level deep, in name order. Beside `X.json` two files are taken as part of
it, not as nodes: `X.json.sha256` (what `bee upload` puts beside the document; a document whose
bytes do not match it is skipped, as an upload that did not complete or was altered), and
`X.check.json` (`bee check --json` output, the verdict the Ansible playbook recorded on the node).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bee.document import text
from bee.report.fields import findings_detail, read_row
from bee.report.verdict import NONE, Evaluate, Verdict, from_result

MAX_DOCUMENT_BYTES = 64 * 2**20  # a big host's document is ~0.4 MiB
SHA256_SUFFIX = ".sha256"
CHECK_SUFFIX = ".check.json"
JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
JSON_KINDS.update({bool: "a boolean", type(None): "null"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str  # the file's name without .json: the inventory name, or <serial>-<boot id>
    path: str
    row: dict[str, str]  # field key -> phrase
    verdict: Verdict
    findings: tuple[str, ...]  # warning and critical findings, one line each
    checksum_verified: bool  # a .sha256 beside the file matched its bytes
    finished_at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    path: Path
    sha256_path: Path | None = None
    check_path: Path | None = None


@dataclass(slots=True)
class Gathered:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _is_sidecar(name: str) -> bool:
    return name.endswith(SHA256_SUFFIX) or name.endswith(CHECK_SUFFIX)


def _audit_of_sidecar(name: str) -> str:
    if name.endswith(CHECK_SUFFIX):
        return name[: -len(CHECK_SUFFIX)] + ".json"
    return name[: -len(SHA256_SUFFIX)]


def _candidate(path: Path) -> Candidate:
    sha256_path = path.with_name(path.name + SHA256_SUFFIX)
    stem = path.name[:-5] if path.name.endswith(".json") else path.name
    check_path = path.with_name(stem + CHECK_SUFFIX)
    return Candidate(
        path=path,
        sha256_path=sha256_path if sha256_path.is_file() else None,
        check_path=check_path if check_path.is_file() else None,
    )


def gather(paths: Iterable[str]) -> Gathered:
    """Which files are audits to read, and which are skipped before reading, with why."""
    gathered = Gathered()
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.realpath(path)
        if key in seen:
            gathered.skipped.append(Skipped(path=str(path), reason="listed twice; read once"))
            return
        seen.add(key)
        gathered.candidates.append(_candidate(path))

    for argument in paths:
        path = Path(argument)
        if path.is_dir():
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as exc:
                reason = f"directory not readable: {exc.strerror or exc}"
                gathered.skipped.append(Skipped(path=str(path), reason=reason))
                continue
            names = {e.name for e in entries}
            for entry in entries:
                skip = _skip_reason(entry, names)
                if skip is None:
                    add(path / entry.name)
                elif skip:
                    gathered.skipped.append(Skipped(path=str(path / entry.name), reason=skip))
        elif path.exists():
            add(path)
        else:
            gathered.skipped.append(Skipped(path=str(path), reason="no such file or directory"))
    return gathered


def _skip_reason(entry: os.DirEntry[str], names: set[str]) -> str | None:
    """None: an audit to read; "": a sidecar of one (not listed); else why it is skipped."""
    name = entry.name
    try:
        is_dir = entry.is_dir()
    except OSError:
        is_dir = False
    if is_dir:
        return "a directory (bee report reads one level)"
    if name.startswith("."):
        return "hidden file (an unfinished transfer or an editor's file?)"
    if _is_sidecar(name):
        audit = _audit_of_sidecar(name)
        return "" if audit in names else f"belongs to {audit}, which is not here"
    if not name.endswith(".json"):
        return "not a .json file"
    return None


def read_node(candidate: Candidate, evaluate: Evaluate | None = None) -> Node | Skipped:
    path = candidate.path
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DOCUMENT_BYTES:
                mib = size / 2**20
                return Skipped(path=shown, reason=f"{mib:.0f} MiB, too large for an audit")
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        return Skipped(path=shown, reason=f"not readable: {exc.strerror or exc}")
    if not data.strip():
        return Skipped(path=shown, reason="empty file")

    verified = False
    if candidate.sha256_path is not None:
        expected = _expected_sha256(candidate.sha256_path)
        if expected is None:
            return Skipped(path=shown, reason=f"{candidate.sha256_path.name} holds no sha256")
        if hashlib.sha256(data).hexdigest() != expected:
            reason = f"bytes do not match {candidate.sha256_path.name} (incomplete or altered)"
            return Skipped(path=shown, reason=reason)
        verified = True

    document = _parse_json(data)
    if isinstance(document, str):
        return Skipped(path=shown, reason=document)
    foreign = _foreign(document)
    if foreign is not None:
        return Skipped(path=shown, reason=f"not a bee audit: {foreign}")

    verdict = NONE
    if evaluate is not None:
        verdict = evaluate(document)
    elif candidate.check_path is not None:
        verdict = _check_file_verdict(candidate.check_path)
    elif isinstance(document.get("verdict"), dict):
        verdict = from_result(document["verdict"], "document") or NONE
    name = path.name[:-5] if path.name.endswith(".json") else path.name
    return Node(
        name=name,
        path=shown,
        row=read_row(document),
        verdict=verdict,
        findings=tuple(findings_detail(document)),
        checksum_verified=verified,
        finished_at=text(document, "finished_at"),
    )


def _parse_json(data: bytes) -> Any:
    """The parsed value, or a string saying why the bytes are not JSON."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError) as exc:  # 5,000-digit numbers, absurd nesting
        return f"not JSON that bee reads ({type(exc).__name__})"


def _foreign(document: Any) -> str | None:
    if not isinstance(document, dict):
        return f"the JSON is {JSON_KINDS.get(type(document), 'not an object')}, not an object"
    if not isinstance(document.get("bee_version"), str) and not isinstance(
        document.get("schema_version"), int
    ):
        return "no bee_version or schema_version"
    return None


def _expected_sha256(path: Path) -> str | None:
    """The hex digest in a `sha256sum`-style file ("<hex>  <name>" or just "<hex>")."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("ascii", errors="replace")
    except OSError:
        return None
    word = head.split()[0].lower() if head.split() else ""
    if len(word) == 64 and all(c in "0123456789abcdef" for c in word):
        return word
    return None


def _check_file_verdict(path: Path) -> Verdict:
    try:
        with open(path, "rb") as handle:
            result = _parse_json(handle.read(MAX_DOCUMENT_BYTES))
    except OSError:
        result = None
    verdict = from_result(result, "check file") if isinstance(result, dict) else None
    return verdict or Verdict(status="UNKNOWN", failed=(f"{path.name} unreadable",))


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    nodes: list[Node]
    skipped: list[Skipped]


def load(paths: Iterable[str], evaluate: Evaluate | None = None) -> Loaded:
    gathered = gather(paths)
    nodes: list[Node] = []
    skipped = list(gathered.skipped)
    for candidate in gathered.candidates:
        result = read_node(candidate, evaluate)
        if isinstance(result, Node):
            nodes.append(result)
        else:
            skipped.append(result)
    nodes.sort(key=lambda n: natural_key(n.name))
    return Loaded(nodes=nodes, skipped=skipped)


def natural_key(name: str) -> tuple[Any, ...]:
    """node2 before node10: digit runs compare as numbers."""
    parts: list[Any] = []
    digits = ""
    letters = ""
    for char in name:
        if char.isdigit() and char.isascii():
            if letters:
                parts.append((1, letters))
                letters = ""
            digits += char
        else:
            if digits:
                parts.append((0, int(digits)))
                digits = ""
            letters += char
    if digits:
        parts.append((0, int(digits)))
    if letters:
        parts.append((1, letters))
    return tuple(parts)
