"""`bee report`: real documents (the QEMU test server and the H200 host replayed from their
captures) copied into a fleet with planted differences, damaged and foreign files beside them,
and documents of any shape."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.report import html, text
from bee.report.compare import analyse
from bee.report.fields import FIELDS, read_row
from bee.report.load import Candidate, load, natural_key, read_node
from bee.report.verdict import Verdict, from_result, spec_evaluator
from conftest import FIXTURES, REPO, run_bee

QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"
H200_CAPTURE = FIXTURES / "captures" / "h200-firecracker-bee-audit"


@pytest.fixture(scope="module")
def qemu_document() -> dict:
    return run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")


@pytest.fixture(scope="module")
def h200_document() -> dict:
    return run_audit(ReplayRunner(H200_CAPTURE), deadline_s=30, mode="replay")


def write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def drop_dimm(document: dict) -> dict:
    document = copy.deepcopy(document)
    dimm = next(s for s in document["memory"]["slots"] if s["populated"])
    dimm["populated"] = False
    document["memory"]["total_bytes"] -= dimm["size_bytes"]
    document["memory"]["populated_count"] -= 1
    return document


def fleet_of(tmp_path: Path, document: dict, count: int, planted: dict[int, dict]) -> Path:
    audits = tmp_path / "audits"
    audits.mkdir()
    for number in range(1, count + 1):
        node = copy.deepcopy(planted.get(number, document))
        node["board"]["system"]["serial"] = f"S{number:05d}"
        write(audits / f"node{number}.json", node)
    return audits


def test_one_node_that_lacks_a_dimm_is_named_against_the_other_63(tmp_path, qemu_document):
    audits = fleet_of(tmp_path, qemu_document, 64, {17: drop_dimm(qemu_document)})
    fleet = analyse(load([str(audits)]))
    assert len(fleet.nodes) == 64 and not fleet.loaded.skipped
    by_field = {d.field.key: d.sentence() for d in fleet.differences}
    assert by_field["dimms"] == "node17: 1 DIMM in 2 slots; 63 others: 2 DIMMs in 2 slots"
    assert by_field["memory"] == "node17: 2 GiB; 63 others: 18 GiB"
    # Nothing else differs: serials are identity, not compared.
    assert set(by_field) == {"memory", "dimms", "dimm_types"}
    assert [len(g) for g in fleet.groups] == [63, 1]
    assert fleet.odd() == {"node17": {"memory", "dimms", "dimm_types"}}
    summary = text.summary(fleet)
    assert "DIMMs: node17: 1 DIMM in 2 slots; 63 others: 2 DIMMs in 2 slots" in summary
    assert "2 groups of identical hardware (63, 1 nodes)" in summary


def test_one_node_alone_is_counted_in_the_singular(tmp_path, qemu_document):
    """What the QEMU fleet test's pushed folder gave: one node (the other's server was down)."""
    fleet = analyse(load([str(fleet_of(tmp_path, qemu_document, 1, {}))]))
    summary = text.summary(fleet)
    assert summary.startswith("bee report: 1 node, 0 files skipped\n")
    assert "1 group of identical hardware (1 node)\n" in summary
    assert "One node: nothing to compare it with." in summary


def test_a_section_that_timed_out_is_a_difference_never_a_match(tmp_path, qemu_document):
    timed_out = copy.deepcopy(qemu_document)
    timed_out["storage"] = None
    timed_out["collectors"]["storage"]["status"] = "timeout"
    audits = fleet_of(tmp_path, qemu_document, 3, {2: timed_out})
    fleet = analyse(load([str(audits)]))
    by_field = {d.field.key: d.sentence() for d in fleet.differences}
    assert by_field["disks"] == "node2: unreadable (storage timeout); 2 others: 3 disks, 3.60 TB"


def test_a_tie_has_no_majority(tmp_path, qemu_document, h200_document):
    audits = tmp_path / "audits"
    audits.mkdir()
    write(audits / "a.json", qemu_document)
    write(audits / "b.json", h200_document)
    fleet = analyse(load([str(audits)]))
    gpus = next(d for d in fleet.differences if d.field.key == "gpus")
    assert gpus.majority is None
    assert gpus.sentence() == "no majority: b: 1 x NVIDIA H200; a: none"


def test_bad_and_foreign_files_are_skipped_with_a_reason(tmp_path, qemu_document):
    audits = fleet_of(tmp_path, qemu_document, 2, {})
    (audits / "empty.json").write_bytes(b"")
    (audits / "cut.json").write_text(json.dumps(qemu_document)[:500], encoding="utf-8")
    (audits / "list.json").write_text("[1, 2]", encoding="utf-8")
    (audits / "other.json").write_text('{"name": "not bee"}', encoding="utf-8")
    (audits / "latin1.json").write_bytes(b'{"bee_version": "\xe9"}')
    (audits / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    (audits / "notes.txt").write_text("racked on Tuesday", encoding="utf-8")
    (audits / ".node3.json.tmp").write_text("{", encoding="utf-8")
    (audits / "old").mkdir()
    (audits / "gone.json.sha256").write_text("0" * 64 + "\n", encoding="utf-8")
    fleet = analyse(load([str(audits), str(tmp_path / "missing.json")]))
    assert [n.name for n in fleet.nodes] == ["node1", "node2"]
    reasons = {Path(s.path).name: s.reason for s in fleet.loaded.skipped}
    assert reasons == {
        ".node3.json.tmp": "hidden file (an unfinished transfer or an editor's file?)",
        "cut.json": reasons["cut.json"],
        "deep.json": "not JSON that bee reads (RecursionError)",
        "empty.json": "empty file",
        "gone.json.sha256": "belongs to gone.json, which is not here",
        "latin1.json": "not UTF-8 text",
        "list.json": "not a bee audit: the JSON is an array, not an object",
        "missing.json": "no such file or directory",
        "notes.txt": "not a .json file",
        "old": "a directory (bee report reads one level)",
        "other.json": "not a bee audit: no bee_version or schema_version",
    }
    assert re.fullmatch(r"not JSON \(.+ at line \d+ column \d+\)", reasons["cut.json"])
    assert "Skipped:\n" in text.summary(fleet)


def test_a_sha256_beside_the_document_is_checked(tmp_path, qemu_document):
    audits = fleet_of(tmp_path, qemu_document, 2, {})
    good = (audits / "node1.json").read_bytes()
    (audits / "node1.json.sha256").write_text(
        f"{hashlib.sha256(good).hexdigest()}  node1.json\n", encoding="utf-8"
    )
    (audits / "node2.json.sha256").write_text("ab" * 32 + "\n", encoding="utf-8")
    loaded = load([str(audits)])
    assert [(n.name, n.checksum_verified) for n in loaded.nodes] == [("node1", True)]
    assert loaded.skipped[0].reason == (
        "bytes do not match node2.json.sha256 (incomplete or altered)"
    )


def test_verdicts_from_the_document_and_from_a_check_file(tmp_path, qemu_document):
    accepted = copy.deepcopy(qemu_document)
    accepted["verdict"] = {"status": "ACCEPT", "checks": [{"id": "memory.dimms", "status": "PASS"}]}
    rejected = copy.deepcopy(qemu_document)
    rejected["verdict"] = {
        "status": "REJECT",
        "checks": [
            {"id": "memory.dimms", "status": "FAIL"},
            {"id": "gpu.count", "status": "UNKNOWN"},
        ],
    }
    odd = copy.deepcopy(qemu_document)
    odd["verdict"] = {"status": "maybe"}
    audits = fleet_of(tmp_path, qemu_document, 5, {1: accepted, 2: rejected, 3: odd})
    check = {"status": "REJECT", "checks": [{"id": "psu.count", "status": "FAIL"}]}
    (audits / "node4.check.json").write_text(json.dumps(check), encoding="utf-8")
    fleet = analyse(load([str(audits)]))
    verdicts = {n.name: (n.verdict.words(), n.verdict.source) for n in fleet.nodes}
    assert verdicts == {
        "node1": ("ACCEPT", "document"),
        "node2": ("REJECT (memory.dimms, gpu.count)", "document"),
        "node3": ("UNKNOWN", "document"),
        "node4": ("REJECT (psu.count)", "check file"),
        "node5": ("no verdict", ""),
    }
    assert "Verdicts: 2 REJECT, 1 ACCEPT, 1 UNKNOWN, 1 no verdict" in text.summary(fleet)


def test_spec_judges_every_node_here(tmp_path, qemu_document):
    """--spec: bee check evaluates one spec (made by bee spec from a good node) against every
    node; it wins over a verdict the document carries."""
    stale = copy.deepcopy(qemu_document)
    stale["verdict"] = {"status": "REJECT", "checks": [{"id": "old", "status": "FAIL"}]}
    audits = fleet_of(tmp_path, qemu_document, 5, {3: drop_dimm(qemu_document), 4: stale})
    spec = tmp_path / "spec.toml"
    made = run_bee("spec", "-o", str(spec), str(audits / "node1.json"))
    assert made.returncode == 0, made.stderr
    fleet = analyse(load([str(audits)], spec_evaluator(str(spec))))
    verdicts = {n.name: (n.verdict.status, n.verdict.source) for n in fleet.nodes}
    assert verdicts == {
        **{f"node{i}": ("ACCEPT", "spec") for i in (1, 2, 4, 5)},
        "node3": ("REJECT", "spec"),
    }
    failed = next(n for n in fleet.nodes if n.name == "node3").verdict.failed
    assert failed and all(check_id.startswith("MEMORY-") for check_id in failed)
    assert fleet.verdict is not None
    assert fleet.verdict.sentence().startswith("node3: REJECT (")
    assert fleet.verdict.sentence().endswith("; 4 others: ACCEPT")
    result = run_bee("report", str(audits), "--spec", str(spec), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    assert "Verdicts: 4 ACCEPT, 1 REJECT" in result.stdout


def test_a_waived_unknown_is_not_a_failed_check():
    result = {
        "status": "ACCEPT",
        "checks": [
            {"id": "gpu.count", "status": "UNKNOWN", "waived": True},
            {"id": "psu.count", "status": "PASS", "waived": False},
        ],
    }
    assert from_result(result, "document") == Verdict(status="ACCEPT", source="document")


def test_documents_without_later_sections_and_with_unknown_ones(tmp_path, qemu_document):
    """An old document (no findings, collectors, commands) and a newer one (a network section
    and keys bee does not know yet) are both read."""
    old = {k: v for k, v in qemu_document.items() if k not in ("findings", "collectors")}
    old.pop("commands")
    newer = copy.deepcopy(qemu_document)
    newer["schema_version"] = 2
    newer["network"] = {
        "interfaces": [
            {"name": "ens1f0", "model": "ConnectX-7", "mac": "a"},
            {"name": "ens1f1", "model": "ConnectX-7", "mac": "b"},
        ]
    }
    newer["something_new"] = {"x": 1}
    audits = tmp_path / "audits"
    audits.mkdir()
    write(audits / "old.json", old)
    write(audits / "new.json", newer)
    fleet = analyse(load([str(audits)]))
    rows = {n.name: n.row for n in fleet.nodes}
    assert rows["old"]["dimms"] == rows["new"]["dimms"] == "2 DIMMs in 2 slots"
    assert rows["new"]["nics"] == "2 x ConnectX-7"
    assert rows["old"]["nics"] == "2 x 82574L Gigabit Network Connection"


def test_html_is_self_contained_and_escapes_what_files_hold(tmp_path, qemu_document):
    hostile = copy.deepcopy(qemu_document)
    hostile["host"]["hostname"] = "<script>alert(1)</script>"
    hostile["board"]["system"]["product"] = '"><img src=http://203.0.113.9/x>'
    audits = fleet_of(tmp_path, qemu_document, 3, {2: hostile})
    page = html.render(analyse(load([str(audits)])))
    assert "<script>alert(1)" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Nothing to fetch: no element loads a resource, and the policy forbids any that would.
    assert not re.search(r"<(img|link|iframe|object|embed|audio|video)\b", page)
    assert not re.search(r"<script[^>]+src=", page)
    assert "default-src 'none'" in page
    assert page.count("<tr data-odd>") == 1


def test_csv_has_a_row_per_node(tmp_path, qemu_document):
    audits = fleet_of(tmp_path, qemu_document, 4, {3: drop_dimm(qemu_document)})
    rows = list(csv.DictReader(io.StringIO(text.csv_text(analyse(load([str(audits)]))))))
    assert [r["node"] for r in rows] == ["node1", "node2", "node3", "node4"]
    assert rows[2]["dimms"] == "1 DIMM in 2 slots"
    assert rows[2]["differs_in"] == "dimm_types dimms memory"
    assert rows[0]["differs_in"] == "" and rows[0]["serial"] == "S00001"


def test_natural_order():
    names = ["node10", "node2", "node1", "rack2-node10", "rack2-node9", "a"]
    assert sorted(names, key=natural_key) == [
        "a",
        "node1",
        "node2",
        "node10",
        "rack2-node9",
        "rack2-node10",
    ]


def test_bee_report_command(tmp_path, qemu_document, h200_document):
    audits = fleet_of(tmp_path, qemu_document, 3, {})
    write(audits / "gpu.json", h200_document)
    (audits / "junk.json").write_text("{", encoding="utf-8")
    out = tmp_path / "report.html"
    result = run_bee(
        "report", str(audits), "-o", str(out), "--csv", str(tmp_path / "fleet.csv"), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bee report: 4 nodes, 1 file skipped\n")
    assert "GPUs: gpu: 1 x NVIDIA H200; 3 others: none" in result.stdout
    assert f"Report: {out}" in result.stdout
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert len((tmp_path / "fleet.csv").read_text(encoding="utf-8").splitlines()) == 5


def test_bee_report_without_any_audit_exits_1_and_still_writes(tmp_path):
    (tmp_path / "a.json").write_text("[]", encoding="utf-8")
    out = tmp_path / "r.html"
    result = run_bee("report", str(tmp_path / "a.json"), "-o", str(out))
    assert result.returncode == 1
    assert result.stderr == "bee: no bee audit among the files given\n"
    assert "a.json" in out.read_text(encoding="utf-8")


def test_bee_report_spec_needs_bee_check_or_a_readable_spec(tmp_path, qemu_document):
    write(tmp_path / "a.json", qemu_document)
    result = run_bee("report", str(tmp_path / "a.json"), "--spec", str(tmp_path / "no.toml"))
    assert result.returncode == 2
    assert result.stderr.startswith("bee: ") and result.stderr.count("\n") == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=25,
)
SECTIONS = (
    "host",
    "board",
    "cpu",
    "memory",
    "storage",
    "pcie",
    "psu",
    "nvidia",
    "network",
    "collectors",
    "findings",
    "errors",
    "verdict",
)


@settings(max_examples=200)
@given(
    st.fixed_dictionaries(
        {"bee_version": st.text(max_size=5)}, optional=dict.fromkeys(SECTIONS, json_values)
    )
)
def test_any_shape_of_document_gives_a_full_row(document):
    row = read_row(document)
    assert set(row) == {f.key for f in FIELDS}
    assert all(isinstance(v, str) and not v.startswith("unreadable (bee") for v in row.values())


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_file_is_a_node_or_skipped_never_a_crash(tmp_path, data):
    path = tmp_path / "node.json"
    path.write_bytes(data)
    result = read_node(Candidate(path=path))
    page = html.render(analyse(load([str(path)])))
    assert result is not None and page.endswith("</html>\n")


def test_spec_and_report_write_into_a_fifo_and_keep_it(tmp_path, qemu_document):
    """`bee spec -o` and `bee report -o` take the audit's writer: a FIFO stays a FIFO."""
    import os
    import stat
    import threading

    (tmp_path / "audits").mkdir()
    audit = write(tmp_path / "audits" / "node1.json", qemu_document)
    for command in (("spec", str(audit)), ("report", str(audit.parent))):
        fifo = tmp_path / f"{command[0]}.fifo"
        os.mkfifo(fifo)
        received: list[bytes] = []
        reader = threading.Thread(target=lambda f=fifo, r=received: r.append(f.read_bytes()))
        reader.daemon = True
        reader.start()
        proc = run_bee(command[0], "-o", str(fifo), *command[1:])
        reader.join(timeout=60)
        assert proc.returncode in (0, 1), proc.stderr  # report exits 1 when nodes differ
        assert "Traceback" not in proc.stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert received and received[0].strip()
