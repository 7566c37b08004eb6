"""Judging audits against specs: semantics, the project's captures, and the properties the
verdict must keep (a spec from an audit accepts it; one changed value fails exactly the checks
about it; an unreadable section is UNKNOWN, never PASS; no input makes it raise)."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.serialize import to_jsonable
from bee.spec.evaluate import ACCEPT, FAIL, PASS, REJECT, UNKNOWN, judge
from bee.spec.evaluate import _test as field_test
from bee.spec.generate import write_spec
from bee.spec.load import load_spec
from bee.spec.report import summary_lines, table, verdict_json
from bee.summary import summary_lines as console_lines
from bee.tools import dmidecode, nvidia_smi
from conftest import FIXTURES, REALWORLD, REPO

# Every example (spec written, loaded and judged, several times over) must end within this: a
# bound against runaway cost, loose enough for a busy 2-core machine (hypothesis's deadline).
BOUND_MS = 20_000
QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"
H200_CAPTURE = FIXTURES / "captures" / "h200-firecracker-bee-audit"


def replay(directory):
    return json.loads(json.dumps(run_audit(ReplayRunner(directory), mode="replay")))


@pytest.fixture(scope="module")
def qemu():
    return replay(QEMU_CAPTURE)


@pytest.fixture(scope="module")
def h200():
    return replay(H200_CAPTURE)


def spec_for(*documents):
    text = write_spec(list(documents), [f"audit{i}" for i in range(len(documents))])
    return load_spec(text.encode(), "generated.toml"), text


def statuses(verdict):
    return {r.id: r.status for r in verdict.checks}


def rule(body: str, profile: str = "") -> object:
    return load_spec(f"spec_version = 1\n{profile}\n{body}".encode(), "t.toml")


# -- the project's captures --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qemu", "h200"])
def test_a_spec_from_a_capture_accepts_it(name, request):
    document = request.getfixturevalue(name)
    spec, text = spec_for(document)
    verdict = judge(spec, document)
    assert verdict.status == ACCEPT, [r for r in verdict.checks if r.status != PASS]
    assert len(verdict.checks) >= 15
    # Serials and UUIDs are never pinned.
    for serial in ("S411294X9C07713", "03B1C4D2", "GPU-a43f0362", "1654024075815"):
        assert serial not in text


def test_the_qemu_spec_pins_what_the_issue_lists(qemu):
    _, text = spec_for(qemu)
    for pinned in (
        'part_number = "M393A2K43DB3-CWE"',
        "speed_mts = 2933",
        'version = "3.8a"',
        'model = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"',
        "count = 2",
        'size_bytes = "16 GiB"',
        'model = "PWS-2K20A-1R"',
        "max_link_width = 1",
    ):
        assert pinned in text, pinned
    # The SCSI disk's health could not be read in QEMU: its health check is written commented
    # out with the reason, not left active (it would reject) nor dropped silently.
    assert '# id = "DISK-ST1200MM0129-HEALTH"' in text
    assert "health.verdict is 'unknown'" in text


def test_the_h200_spec_pins_the_gpu(h200):
    _, text = spec_for(h200)
    for pinned in (
        'vbios_version = "96.00.A5.00.1A"',
        'driver_version = "580.159.04"',
        'gpu_pci_device_id = "10de:2335"',
        "memory_total_mib = 143771",
    ):
        assert pinned in text, pinned


def test_one_dimm_more_rejects_naming_memory(qemu):
    _, text = spec_for(qemu)
    more = text.replace(
        'id = "MEMORY-DIMM-COUNT"\nselect = "memory.slots"\nwhere = { populated = true }\n'
        "count = 2",
        'id = "MEMORY-DIMM-COUNT"\nselect = "memory.slots"\nwhere = { populated = true }\n'
        "count = 3",
    )
    assert more != text
    verdict = judge(load_spec(more.encode(), "more.toml"), qemu)
    assert verdict.status == REJECT
    bad = [r for r in verdict.checks if r.status != PASS]
    assert [(r.id, r.status, r.expected, r.got) for r in bad] == [
        ("MEMORY-DIMM-COUNT", FAIL, "count 3", "2")
    ]
    assert bad[0].where.startswith("memory.slots")
    lines = summary_lines(verdict_json(verdict))
    assert lines[0].startswith("REJECT: 1 failed, 0 unknown of ")
    assert "MEMORY-DIMM-COUNT" in lines[1] and "memory.slots" in lines[1]


def test_a_missing_part_fails_and_an_unreadable_one_is_unknown(qemu):
    spec, _ = spec_for(qemu)
    gone = copy.deepcopy(qemu)
    del gone["memory"]["slots"][1]
    got = statuses(judge(spec, gone))
    assert got["MEMORY-DIMM-COUNT"] == FAIL and got["MEMORY-DIMM-SIZE-BYTES-2-GIB"] == FAIL
    unreadable = copy.deepcopy(qemu)
    unreadable["memory"]["slots"][1]["populated"] = None
    got = statuses(judge(spec, unreadable))
    # Whether that slot is populated or not, its part number is right: no doubt there.
    assert got["MEMORY-DIMM-COUNT"] == UNKNOWN and got["MEMORY-DIMM-PART-NUMBER"] == PASS
    unreadable["memory"]["slots"][1]["part_number"] = "OTHER"
    assert statuses(judge(spec, unreadable))["MEMORY-DIMM-PART-NUMBER"] == UNKNOWN


def test_a_collector_that_timed_out_makes_its_checks_unknown_even_with_data(qemu):
    spec, _ = spec_for(qemu)
    late = copy.deepcopy(qemu)
    late["collectors"]["storage"]["status"] = "timeout"
    verdict = judge(spec, late)
    got = statuses(verdict)
    storage = [r for r in verdict.checks if r.where.startswith("storage")]
    assert storage and all(r.status == UNKNOWN for r in storage)
    assert all("storage collector ended timeout" in r.got for r in storage)
    # Findings are derived from every section: not trusted either.
    assert got["FINDINGS"] == UNKNOWN
    assert got["MEMORY-DIMM-COUNT"] == PASS
    assert verdict.status == REJECT
    waived = judge(spec, late, allow_unknown=[r.id for r in storage] + ["FINDINGS"])
    assert waived.status == ACCEPT


def test_no_matching_profile_rejects_saying_so(qemu):
    spec, _ = spec_for(qemu)
    other = copy.deepcopy(qemu)
    other["board"]["baseboard"]["product"] = "X13DEG-OAD"
    verdict = judge(spec, other)
    assert verdict.status == REJECT and verdict.profile is None
    (profile,) = [r for r in verdict.checks if r.id == "PROFILE"]
    assert profile.status == FAIL and "no profile matches" in profile.got
    assert "X13DEG-OAD" in profile.got


def test_profiles_match_by_board_sku_or_gpu_id(qemu, h200):
    spec = rule(
        """
[[profile]]
name = "by-sku"
match = { system_sku = "NOPE" }
[[profile.check]]
id = "A"
select = "cpu"
count = 1
[[profile]]
name = "by-gpu"
match = { gpu_pci_device_id = ["10de:2330", "2335"] }
[[profile.check]]
id = "B"
select = "nvidia.gpus"
count = 1
[[profile]]
name = "by-board"
match = { board_product = "X11DPG-OT-CPU", system_product = "SYS-4029GP-TRT2" }
[[profile.check]]
id = "C"
select = "memory.slots"
count = 2
"""
    )
    assert judge(spec, h200).profile == "by-gpu" and judge(spec, h200).status == ACCEPT
    assert judge(spec, qemu).profile == "by-board" and judge(spec, qemu).status == ACCEPT


def test_operators(qemu, h200):
    spec = rule(
        """
[[check]]
id = "VBIOS-AT-LEAST"
select = "nvidia.gpus"
all = { vbios_version = { version_at_least = "96.00.89.00.01" } }
same = "vbios_version"
[[check]]
id = "VBIOS-TOO-OLD"
select = "nvidia.gpus"
all = { vbios_version = { version_at_least = "96.00.B0.00.01" } }
[[check]]
id = "MEM-RANGE"
select = "nvidia.gpus"
all = { memory_total_mib = { min = "140 GiB", max = "141 GiB" } }
[[check]]
id = "MEM-TOL"
select = "nvidia.gpus"
all = { memory_total_mib = { eq = "150 GB", tolerance = "1%" } }
[[check]]
id = "NAME-REGEX"
select = "nvidia.gpus"
any = { name = { regex = "NVIDIA H[12]00.*" } }
[[check]]
id = "NAME-REGEX-IS-FULL"
select = "nvidia.gpus"
any = { name = { regex = "H200" } }
[[check]]
id = "ONE-OF"
select = "nvidia"
all = { driver_version = ["550.54.15", "580.159.04"] }
[[check]]
id = "NOT"
select = "nvidia.gpus"
none = { name = { ne = "NVIDIA H200" } }
[[check]]
id = "LINK"
select = "nvidia.gpus"
all = { pcie_link_width_current = { same_as = "pcie_link_width_max" } }
"""
    )
    got = statuses(judge(spec, h200))
    assert got == {
        "VBIOS-AT-LEAST": PASS,
        "VBIOS-TOO-OLD": FAIL,
        "MEM-RANGE": PASS,
        "MEM-TOL": PASS,
        "NAME-REGEX": PASS,
        "NAME-REGEX-IS-FULL": FAIL,
        "ONE-OF": PASS,
        "NOT": PASS,
        "LINK": PASS,
    }


def test_same_names_the_odd_part(qemu):
    spec = rule('[[check]]\nid = "ONE-SIZE"\nselect = "memory.slots"\nsame = "size_bytes"\n')
    (result,) = judge(spec, qemu).checks
    assert result.status == FAIL and "x1" in result.got and "odd one" in result.got


# -- realworld-derived audits (../shared/realworld, read in place) ------------------------------

REAL_DMI = sorted((REALWORLD / "dmidecode").glob("*.txt"))
REAL_GPU = sorted((REALWORLD / "nvidia-smi-xml").glob("*.xml"))


def document_from(dmi_text: str | None, gpu_xml: str | None) -> dict:
    """An audit document holding what these tools' real outputs say, for the sections they feed."""
    smbios = dmidecode.parse(dmi_text) if dmi_text is not None else None
    nvidia = nvidia_smi.parse(gpu_xml) if gpu_xml is not None else None
    sections = {
        "board": smbios.board if smbios else None,
        "cpu": smbios.cpu if smbios else None,
        "memory": smbios.memory if smbios else None,
        "nvidia": nvidia if nvidia and nvidia.gpus else None,
    }
    return to_jsonable(
        {
            "schema_version": 1,
            "collectors": {k: {"status": "ok" if v else "empty"} for k, v in sections.items()},
            **sections,
            "findings": [],
            "errors": [],
        }
    )


@pytest.mark.skipif(not REAL_DMI, reason="../shared/realworld/dmidecode is not there")
def test_realworld_dmidecode_audits_accept_their_own_spec_and_catch_a_pulled_dimm():
    judged = 0
    for path in REAL_DMI:
        document = document_from(path.read_text(errors="replace"), None)
        spec, _ = spec_for(document)
        verdict = judge(spec, document)
        assert verdict.status == ACCEPT, (
            path.name,
            [r for r in verdict.checks if r.status != PASS],
        )
        slots = (document.get("memory") or {}).get("slots") or []
        populated = [s for s in slots if s.get("populated") is True]
        if populated:
            populated[-1]["populated"] = False
            pulled = statuses(judge(spec, document))
            assert pulled["MEMORY-DIMM-COUNT"] == FAIL, path.name
            judged += 1
    assert judged >= 10


@pytest.mark.skipif(not REAL_GPU, reason="../shared/realworld/nvidia-smi-xml is not there")
def test_realworld_gpu_audits_accept_their_own_spec():
    for path in REAL_GPU:
        document = document_from(None, path.read_text(errors="replace"))
        spec, _ = spec_for(document)
        verdict = judge(spec, document)
        assert verdict.status == ACCEPT, (
            path.name,
            [r for r in verdict.checks if r.status != PASS],
        )


# -- properties -------------------------------------------------------------------------------


def _sources():
    # Without `commands` (no check reads them): the properties copy these documents many times.
    docs = [
        {k: v for k, v in replay(c).items() if k != "commands"}
        for c in (QEMU_CAPTURE, H200_CAPTURE)
    ]
    for path in REAL_DMI[:6]:
        docs.append(document_from(path.read_text(errors="replace"), None))
    return docs


SOURCES = _sources()
SPECS = [spec_for(d)[0] for d in SOURCES]  # written once; the properties judge them many times


def _mentions(check, field: str) -> bool:
    tests = [*check.where, *(check.all or ()), *(check.any or ()), *(check.none or ())]
    fields = {t.field for t in tests} | {".".join(t.same_as) for t in tests if t.same_as}
    return field in fields or field in (check.same or ())


def _pinned_leaves(spec):
    """(check, field) of every value a generated spec pins, in `where` or `all`."""
    checks = [*spec.checks, *(c for p in spec.profiles for c in p.checks)]
    return [(c, t.field) for c in checks for t in [*c.where, *(c.all or ())]]


def _selected(check, document):
    """The parts of the document a check's `where` keeps (the evaluator's own test)."""
    return [
        p
        for p in _parts(document, check.select)
        if all(field_test(t, p) is True for t in check.where)
    ]


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 1
    return f"{value}-changed"


def _parts(document, select):
    value = document
    for key in select:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@settings(max_examples=60, deadline=BOUND_MS, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SOURCES))), st.data())
def test_changing_one_pinned_value_fails_exactly_the_checks_about_it(source, data):
    document, spec = SOURCES[source], SPECS[source]
    check, field = data.draw(st.sampled_from(_pinned_leaves(spec)))
    select = check.select
    parts = _selected(check, document)
    if not parts:
        return
    index = data.draw(st.integers(0, len(parts) - 1))
    changed = copy.deepcopy(document)
    part = _selected(check, changed)[index]
    *outer, last = field.split(".")
    holder = part
    for key in outer:
        holder = holder[key]
    if holder.get(last) is None:
        return
    holder[last] = _changed(holder[last])
    verdict = judge(spec, changed)
    bad = {r.id: r.status for r in verdict.checks if r.status != PASS}
    match_fields = {("board", "baseboard"): "product"}
    if match_fields.get(tuple(select)) == field:
        assert bad == {"PROFILE": FAIL}
        return
    checks = [*spec.checks, *(c for p in spec.profiles for c in p.checks)]
    about = {c.id for c in checks if c.select == select and _mentions(c, field)}
    assert bad, (select, field, "a changed pinned value went unnoticed")
    assert set(bad) <= about, (select, field, bad)
    assert set(bad.values()) == {FAIL}


@pytest.mark.parametrize("source", range(len(SOURCES)))
def test_nulling_a_section_makes_exactly_its_checks_unknown(source):
    document = SOURCES[source]
    spec, _ = spec_for(document)
    sections = sorted({c.select[0] for p in spec.profiles for c in p.checks} - {"findings"})
    for section in sections:
        nulled = copy.deepcopy(document)
        nulled[section] = None
        verdict = judge(spec, nulled)
        got = statuses(verdict)
        if section == "board" and any(
            k == "board_product" for p in spec.profiles for k, _ in p.match
        ):
            assert got == {"PROFILE": UNKNOWN}  # the profile cannot be chosen unread
            continue
        for result in verdict.checks:
            expected = UNKNOWN if result.where.startswith(section) else PASS
            assert result.status == expected, (section, result)
        assert verdict.status == REJECT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "board",
                    "memory",
                    "slots",
                    "populated",
                    "size_bytes",
                    "collectors",
                    "status",
                    "nvidia",
                    "gpus",
                    "name",
                    "findings",
                    "severity",
                    "verdict",
                    "checks",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=100, deadline=BOUND_MS, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SOURCES))), json_values, st.data())
def test_arbitrary_audit_json_never_raises(source, junk, data):
    document, spec = copy.deepcopy(SOURCES[source]), SPECS[source]
    # Replace one subtree somewhere in the document with arbitrary JSON.
    node = document
    for _ in range(data.draw(st.integers(0, 4))):
        keys = (
            list(node)
            if isinstance(node, dict)
            else list(range(len(node)))
            if isinstance(node, list)
            else []
        )
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list):
            break
        node = node[key]
    if isinstance(node, dict) and node:
        node[data.draw(st.sampled_from(list(node)))] = junk
    elif isinstance(node, list) and node:
        node[0] = junk
    verdict = judge(spec, document)
    assert verdict.status in (ACCEPT, REJECT)
    as_json = verdict_json(verdict)
    json.dumps(as_json, allow_nan=False)
    table(as_json)
    document["verdict"] = as_json
    console_lines(document)
    judge(spec, junk)  # not even a document
    console_lines({"verdict": junk})


@settings(max_examples=50, deadline=BOUND_MS, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SOURCES))), st.data())
def test_a_spec_from_any_mix_of_audits_accepts_those_that_agree(source, data):
    """Many audits: a check is active only where all agree; the spec accepts every audit."""
    document = SOURCES[source]
    copies = data.draw(st.integers(2, 4))
    documents = [copy.deepcopy(document) for _ in range(copies)]
    slots = (documents[-1].get("memory") or {}).get("slots") or []
    odd = data.draw(st.booleans()) and any(s.get("populated") for s in slots)
    if odd:
        next(s for s in slots if s.get("populated"))["part_number"] = "ODD-PART"
    spec, text = spec_for(*documents)
    for each in documents:
        assert judge(spec, each).status == ACCEPT
    if odd:
        assert "# audits disagree: part_number = " in text
        assert '# id = "MEMORY-DIMM-PART-NUMBER"' in text


def test_nan_and_huge_numbers_in_a_document_do_not_raise(qemu):
    spec, _ = spec_for(qemu)
    odd = copy.deepcopy(qemu)
    odd["memory"]["total_bytes"] = math.inf
    odd["memory"]["slots"][0]["speed_mts"] = 10**400
    got = statuses(judge(spec, odd))
    assert got["MEMORY-TOTAL-BYTES"] == FAIL and got["MEMORY-DIMM-SPEED-MTS"] == FAIL


def test_network_ports_are_pinned_by_driver_firmware_and_speed_never_by_mac():
    ports = [
        {"name": f"ens{i}", "driver": "mlx5_core", "firmware_version": "28.39.2048 (MT_0000000838)",
         "firmware_psid": "MT_0000000838", "supported_max_speed_mbps": 400000,
         "mac_address": f"b8:3f:d2:00:00:0{i}", "permanent_mac_address": f"b8:3f:d2:00:00:0{i}"}
        for i in range(4)
    ]  # fmt: skip
    document = {
        "schema_version": 1,
        "collectors": {"network": {"status": "ok"}},
        "network": {"interfaces": ports, "infiniband": []},
        "findings": [],
    }
    spec, text = spec_for(document)
    assert judge(spec, document).status == ACCEPT
    assert "b8:3f:d2" not in text and 'firmware_psid = "MT_0000000838"' in text
    older = copy.deepcopy(document)
    older["network"]["interfaces"][2]["firmware_version"] = "28.36.1010 (MT_0000000838)"
    assert statuses(judge(spec, older))["NIC-MLX5-CORE-FIRMWARE-VERSION"] == FAIL
    assert [i for i, s in statuses(judge(spec, older)).items() if s != PASS] == [
        "NIC-MLX5-CORE-FIRMWARE-VERSION"
    ]
