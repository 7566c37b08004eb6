"""The collector registry: every place that lists sections agrees with it, the document stays
open to new sections, and a command several collectors need runs once per audit."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

import bee.tools
from bee import registry
from bee.audit import run_audit
from bee.capture import NOT_CAPTURED, ReplayRunner
from bee.probe import Probe, Shared
from bee.registry import Collector, collectors, section_names
from bee.runner import SystemRunner
from conftest import FIXTURES, REPO, SCHEMA_DIR, run_bee

QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"
H200_CAPTURE = FIXTURES / "captures" / "h200-firecracker-bee-audit"
# The sections of schema_version 1 as first published: required in every v1 document.
FIRST_SECTIONS = ("board", "cpu", "memory", "storage", "pcie", "psu", "nvidia")


def _schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


# -- every collector is well declared (the conformance test of sos' plugins) ------------------


def test_every_collector_declares_what_the_registry_needs():
    assert registry.load().errors == ()
    for collector in collectors():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", collector.name), collector.name
        assert collector.collects.strip(), collector.name
        assert callable(collector.collect), collector.name
        for field in (collector.findings, collector.summary):
            assert field is None or callable(field), collector.name
        assert all(
            callable(p) and re.fullmatch(r"[a-z0-9-]+", n) for n, p in collector.parsers.items()
        )
    orders = [c.order for c in collectors()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert set(FIRST_SECTIONS) <= set(section_names())


def test_every_tool_module_declares_collectors_or_feeds_one():
    """A module with parsers but no collector of its own must be declared by one (storage
    declares lsblk, smartctl and nvme); otherwise `bee parse` would not know its parsers."""
    declared = set(registry.parsers())
    for info in pkgutil.iter_modules(bee.tools.__path__):
        module = importlib.import_module(f"bee.tools.{info.name}")
        if not getattr(module, "COLLECTORS", ()):
            assert set(getattr(module, "PARSERS", {})) <= declared, info.name


# -- the derived places agree with the registry -----------------------------------------------


def test_schema_lists_exactly_the_registered_sections():
    root = _schema("audit.schema.json")
    envelope = {"schema_version", "bee_version", "mode", "host", "started_at", "finished_at"}
    envelope |= {"duration_s", "deadline_s", "collectors", "findings", "errors", "commands"}
    envelope |= {"verdict"}  # bee audit --spec: the machine against a spec, not a collector's
    envelope |= {"replayed_from"}  # a replay's capture time and host, from the manifest
    described = set(root["properties"]) - envelope
    assert described == set(section_names()), "audit.schema.json sections != the registry"
    for name in section_names():
        assert root["properties"][name] == {
            "anyOf": [{"type": "null"}, {"$ref": f"{name}.schema.json"}]
        }, name
        assert (SCHEMA_DIR / f"{name}.schema.json").is_file(), name
    section_files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    not_sections = {"audit", "verdict", "spec"}  # the document, its verdict, the spec file
    assert section_files - not_sections == set(section_names()), "schema files without a collector"
    # Only the first sections are required: documents of older bee versions must validate.
    assert set(root["required"]) - envelope == set(FIRST_SECTIONS)
    assert set(root["properties"]["collectors"]["required"]) == set(FIRST_SECTIONS)


def test_the_document_has_one_section_and_one_status_per_collector():
    document = run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")
    names = list(section_names())
    assert list(document["collectors"]) == names
    keys = list(document)
    assert keys[keys.index("collectors") + 1 : keys.index("findings")] == names


def test_bee_parse_knows_every_parser_of_the_registry(tmp_path):
    proc = run_bee("parse", "frobnicate", str(tmp_path))
    assert proc.returncode == 2
    listed = proc.stderr.split("choose one of: ", 1)[1].strip().split(", ")
    assert listed == sorted(registry.parsers())


def test_smoke_test_and_test_lists_do_not_repeat_the_registry():
    """The section list lives in the registry only: the smoke test reads it from the document's
    `collectors`, the tests from bee.registry. A hand-written list of sections here would drift."""
    first = re.compile(r'"board",\s*"cpu",\s*"memory"')
    for path in (
        REPO / "iso" / "builder" / "smoketest.sh",
        REPO / "agent" / "bee" / "audit.py",
        REPO / "agent" / "bee" / "cli.py",
        REPO / "agent" / "bee" / "summary.py",
        REPO / "tests" / "agent" / "test_audit.py",
        REPO / "tests" / "iso" / "test_smoketest.py",
        REPO / "buildtools" / "vm" / "checks.py",
    ):
        assert not first.search(path.read_text(encoding="utf-8")), path


def test_docs_table_lists_every_collector():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- collectors -->", 2)[1]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| `")]
    documented = {name.strip().strip("`"): collects.strip() for name, _, collects in rows}
    assert documented == {c.name: c.collects for c in collectors()}


# -- the document can grow --------------------------------------------------------------------


def test_documents_of_older_versions_still_validate(validate_document):
    """A v1 document that lacks the sections added since (as the committed captures' bee wrote
    them) and one that has sections this schema does not know both validate."""
    document = json.loads(
        json.dumps(run_audit(ReplayRunner(H200_CAPTURE), deadline_s=30, mode="replay"))
    )
    validate_document(document)
    older = {
        k: v for k, v in document.items() if k not in set(section_names()) - set(FIRST_SECTIONS)
    }
    older["collectors"] = {k: v for k, v in document["collectors"].items() if k in FIRST_SECTIONS}
    validate_document(older)
    newer = {**document, "gadget": {"count": 1}}
    newer["collectors"] = {**document["collectors"], "gadget": document["collectors"]["board"]}
    validate_document(newer)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=100)
@given(json_values)
def test_summary_lines_never_raise_on_a_section_of_any_shape(section):
    for collector in collectors():
        if collector.summary is not None:
            line = collector.summary(section)
            assert line is None or isinstance(line, str)


# -- shared commands --------------------------------------------------------------------------


def _commands(document: dict, program: str) -> list[str]:
    return [" ".join(c["argv"]) for c in document["commands"] if c["argv"][0] == program]


def test_a_shared_command_runs_once_for_all_collectors_that_ask(tmp_path):
    """Four threads ask for the same slow command; the real process starts once."""
    log = tmp_path / "runs"
    argv = ["sh", "-c", f"echo run >> {log}; sleep 0.3; echo out"]
    shared, runner = Shared(), SystemRunner()
    results = []

    def ask() -> None:
        results.append(Probe(runner, "x", shared).run(argv, shared=True))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert log.read_text() == "run\n"
    assert len(results) == 4 and all(r is results[0] and r.stdout == "out\n" for r in results)


def test_without_shared_each_probe_runs_its_own(tmp_path):
    log = tmp_path / "runs"
    argv = ["sh", "-c", f"echo run >> {log}"]
    shared, runner = Shared(), SystemRunner()
    Probe(runner, "a", shared).run(argv)
    Probe(runner, "b", shared).run(argv)
    assert log.read_text() == "run\nrun\n"


def test_old_captures_replay_through_the_per_type_dmidecode_calls(validate_document):
    """Captures recorded before the shared call hold `dmidecode -t 0,1,2,3`, `-t 4`, ... : the
    replay asks for the shared `dmidecode` once, finds it missing, and reads the old calls."""
    for capture in (QEMU_CAPTURE, H200_CAPTURE):
        document = run_audit(ReplayRunner(capture), deadline_s=30, mode="replay")
        validate_document(json.loads(json.dumps(document)))
        asked = _commands(document, "dmidecode")
        assert asked[0] == "dmidecode" and len(asked) == 5, asked
        assert sorted(asked[1:]) == sorted(
            ["dmidecode -t 0,1,2,3", "dmidecode -t 4", "dmidecode -t 16,17", "dmidecode -t 39"]
        )
        [miss] = [c for c in document["commands"] if c["argv"] == ["dmidecode"]]
        assert miss["error"] == NOT_CAPTURED
        assert not [
            n
            for c in document["collectors"].values()
            for n in c["notes"]
            if "dmidecode is not" in n
        ]
    qemu = run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")
    assert qemu["cpu"]["socket_count"] == 2 and qemu["memory"]["populated_count"] == 2


def test_a_capture_made_now_records_one_dmidecode_and_replays_it(tmp_path):
    """The QEMU capture with its four per-type calls replaced by the same guest's real full
    `dmidecode` output (fixtures/dmidecode/qemu-q35-full.txt), as today's bee records it: one
    call for board, cpu, memory and psu, and the same sections as before."""
    capture = tmp_path / "now"
    shutil.copytree(QEMU_CAPTURE, capture)
    manifest = json.loads((capture / "manifest.json").read_text())
    manifest["commands"] = [c for c in manifest["commands"] if c["argv"][0] != "dmidecode"]
    shutil.copy(FIXTURES / "dmidecode" / "qemu-q35-full.txt", capture / "commands/full.stdout")
    manifest["commands"].append(
        {
            "argv": ["dmidecode"],
            "returncode": 0,
            "duration_s": 0.05,
            "stdout": "commands/full.stdout",
        }
    )
    (capture / "manifest.json").write_text(json.dumps(manifest))
    now = run_audit(ReplayRunner(capture), deadline_s=30, mode="replay")
    assert _commands(now, "dmidecode") == ["dmidecode"]
    old = run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")
    for section in ("board", "cpu", "memory", "psu"):
        assert now[section] == old[section], section
    assert now["errors"] == old["errors"] == []


def test_a_collector_module_that_cannot_be_imported_is_an_error_not_a_crash(tmp_path, monkeypatch):
    broken = tmp_path / "broken_tool.py"
    broken.write_text("raise ImportError('no such thing')\n")
    monkeypatch.setattr(bee.tools, "__path__", [*bee.tools.__path__, str(tmp_path)])
    registry.load.cache_clear()
    try:
        found = registry.load()
        assert set(FIRST_SECTIONS) <= {c.name for c in found.collectors}
        assert any("broken_tool" in e for e in found.errors)
        document = run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")
        assert any(e["collector"] == "registry" for e in document["errors"])
        assert document["collectors"]["board"]["status"] == "ok"
    finally:
        monkeypatch.undo()
        registry.load.cache_clear()


def test_options_reach_every_probe():
    seen = {}

    def look(probe: Probe) -> dict:
        seen[probe.collector] = dict(probe.options)
        return {}

    chosen = tuple(
        Collector(name=n, order=i, collects="-", collect=look) for i, n in enumerate("ab")
    )
    run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=5, collectors=chosen, options={"x": 1})
    assert seen == {"a": {"x": 1}, "b": {"x": 1}}


def test_a_value_derived_from_a_shared_result_is_computed_once():
    shared, calls = Shared(), []

    def compute() -> list[int]:
        calls.append(1)
        time.sleep(0.2)
        return [1, 2]

    got = []
    threads = [threading.Thread(target=lambda: got.append(shared.once("k", compute)))]
    threads += [threading.Thread(target=lambda: got.append(shared.once("k", compute)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == [1] and len(got) == 2 and got[0] is got[1]


def test_docs_example_is_the_real_boot_collector():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    example = text.split("### The pieces of a collector", 1)[1].split("\n### ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in example.split("```python\n")[1:]]
    source = (REPO / "agent" / "bee" / "tools" / "boot.py").read_text(encoding="utf-8")
    assert len(blocks) == 4
    for block in blocks:
        assert block in source, block


def test_a_document_of_an_older_bee_validates_and_checks(tmp_path, validate_document):
    """fixtures/documents/: what bee wrote before the registry (seven sections, no boot). It
    validates, and bee check and bee report read it beside a document of today's bee."""
    old = FIXTURES / "documents" / "qemu-q35-bee-19fb8d7.json"
    validate_document(json.loads(old.read_text(encoding="utf-8")))
    new = tmp_path / "new.json"
    new.write_text(
        json.dumps(run_audit(ReplayRunner(QEMU_CAPTURE), deadline_s=30, mode="replay")),
        encoding="utf-8",
    )
    for source, judged in ((old, old), (old, new), (new, old)):
        spec = tmp_path / f"{source.stem}.toml"
        assert run_bee("spec", str(source), "-o", str(spec)).returncode == 0
        proc = run_bee("check", "--json", str(spec), str(judged))
        assert json.loads(proc.stdout)["status"] == "ACCEPT", (source.name, judged.name)
    proc = run_bee("report", str(old), str(new), "-o", str(tmp_path / "report.html"))
    assert proc.returncode == 0 and "2 nodes" in proc.stdout + proc.stderr, proc.stderr
