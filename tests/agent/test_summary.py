"""The console summary, from real captures replayed, and from documents that are half empty."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.summary import human_bytes, summary_lines
from conftest import FIXTURES, REPO


def replayed(capture) -> dict:
    return run_audit(ReplayRunner(capture), deadline_s=30, mode="replay")


def test_qemu_server_summary_counts_disks_but_not_the_boot_medium():
    lines = summary_lines(replayed(REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"))
    assert lines == [
        "bee 0.1.0 audit of Supermicro SYS-4029GP-TRT2, S/N S411294X9C07713",
        "CPU: 2 x Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz (2 cores, 2 threads)",
        "Memory: 18.0 GiB in 2 of 2 slots",
        "Disks: 3, 3.3 TiB (2 ok, 1 unknown)",
        "GPUs: none reported",
        "PSUs: 2",
        # The capture predates the bmc and health collectors: their commands are not in it,
        # and the summary says so rather than claiming an empty SEL or a clean kernel log.
        "BMC: present, nothing read",
        "Health: kernel log unread; AER on 0 devices; no EDAC",
        "Findings: 0, errors: 0",
    ]


def test_h200_summary_names_the_gpu_and_driver():
    lines = summary_lines(replayed(FIXTURES / "captures" / "h200-firecracker-bee-audit"))
    assert "GPUs: 1 x NVIDIA H200, driver 580.159.04" in lines
    assert lines[0] == "bee 0.1.0 audit of ? ?, S/N ?"  # a Firecracker VM has no SMBIOS
    # ... so the CPU comes from /proc/cpuinfo (the capture has no /proc/meminfo: no memory line)
    assert "CPU: 1 x Intel(R) Xeon(R) Processor (16 cores, 16 threads)" in lines


def test_human_bytes():
    assert [human_bytes(v) for v in (0, 1023, 1024, 18 * 2**30, None, -1)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "18.0 GiB",
        "?",
        "?",
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)
sections = ("board", "cpu", "memory", "storage", "nvidia", "psu", "findings", "errors")


@settings(max_examples=150)
@given(st.fixed_dictionaries({}, optional={k: json_values for k in sections}))
def test_summary_never_raises_on_a_document_of_any_shape(document):
    lines = summary_lines(document)
    assert lines and all(isinstance(line, str) for line in lines)


def test_the_last_line_names_the_sections_bee_could_not_read():
    # Issue 20: "errors: 0" must not stand next to a section that is missing.
    document = replayed(REPO / "tests" / "vm" / "qemu-q35" / "bee-capture")
    document["collectors"]["memory"]["status"] = "timeout"
    document["collectors"]["cpu"]["status"] = "failed"
    document["storage"] = None
    document["errors"] = [{"collector": "storage", "message": "lsblk -J: timed out after 20.0 s"}]
    assert summary_lines(document)[-1] == "Findings: 0, errors: 1; not read: cpu, memory, storage"
