"""nvidia-smi -q -x: GPUs, a GPU in trouble, the procfs fallback, PCIe reconciliation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.probe import Probe
from bee.tools import lspci, nvidia_smi
from bee.tools.nvidia_smi import normalise_pci_address, parse
from conftest import FIXTURES, REALWORLD, SCHEMA_DIR, assert_section_valid, mangle, write_capture

H200 = FIXTURES / "nvidia-smi" / "h200-firecracker-580.xml"
H200_PROC_VERSION = FIXTURES / "nvidia-smi" / "h200-firecracker-580.proc-version"
H200_PROC_INFO = FIXTURES / "nvidia-smi" / "h200-firecracker-580.proc-information"
H200_LSPCI = FIXTURES / "lspci" / "h200-firecracker-vmm-nn-D.txt"
FIXTURE_FILES = sorted((FIXTURES / "nvidia-smi").glob("*.xml"))
REALWORLD_FILES = sorted((REALWORLD / "nvidia-smi-xml").glob("*.xml"))
H200_BDF = "0000:00:06.0"


def h200_capture(
    root: Path,
    *,
    rc: int = 0,
    stdout: str | None = None,
    per_gpu: list[tuple[str, int, str]] = (),
    extra_gpus: dict[str, str] | None = None,
) -> Path:
    """The H200 host; per_gpu: answers of `nvidia-smi -q -x -i BDF`; extra_gpus: BDF -> procfs."""
    gpus = {H200_BDF: H200_PROC_INFO.read_text(), **(extra_gpus or {})}
    return write_capture(
        root,
        [(list(nvidia_smi.ARGV), rc, H200.read_text() if stdout is None else stdout)]
        + [([*nvidia_smi.ARGV, "-i", bdf], code, out) for bdf, code, out in per_gpu],
        {
            "/proc/driver/nvidia/version": H200_PROC_VERSION.read_text(),
            **{f"/proc/driver/nvidia/gpus/{bdf}/information": text for bdf, text in gpus.items()},
        },
        {"/proc/driver/nvidia/gpus": sorted(gpus)},
        duration_s=1.5,
    )


def test_h200_is_read_in_full():
    section = parse(H200.read_text())
    assert section.errors == []
    assert (section.driver_version, section.cuda_version, section.dtd_version) == (
        "580.159.04",
        "13.0",
        13,
    )
    [gpu] = section.gpus
    assert gpu.name == "NVIDIA H200" and gpu.architecture == "Hopper"
    assert gpu.uuid == "GPU-748cab2e-6b52-16fa-e39b-eb8c7dd7f5be"
    assert gpu.serial == "1653824161852" and gpu.board_part_number == "692-2G520-0282-001"
    assert gpu.vbios_version == "96.00.A5.00.1A"
    assert (gpu.pci_bus_id, gpu.pci_address, gpu.pci_device_id) == (
        "00000000:00:06.0",
        H200_BDF,
        "2335",
    )
    assert (gpu.pcie_link_gen_current, gpu.pcie_link_gen_max) == (5, 5)
    assert (gpu.pcie_link_width_current, gpu.pcie_link_width_max) == (16, 16)
    assert gpu.memory_total_mib == 143771 and gpu.ecc_mode_current == "Enabled"
    assert gpu.ecc_volatile_uncorrectable == 0 and gpu.remapped_rows_failure is False
    assert gpu.power_limit_w == 700.0 and gpu.persistence_mode is True
    assert gpu.mig_mode_current == "Disabled" and gpu.problems == []


def test_h200_document_matches_the_schema():
    assert_section_valid("nvidia", parse(H200.read_text()))


def test_schema_describes_every_field_of_every_model():
    schema = json.loads((SCHEMA_DIR / "nvidia.schema.json").read_text())
    import dataclasses

    for cls in (nvidia_smi.NvidiaSection, nvidia_smi.Gpu):
        props = (
            schema["properties"]
            if cls is nvidia_smi.NvidiaSection
            else schema["$defs"][cls.__name__]["properties"]
        )
        assert set(props) == {f.name for f in dataclasses.fields(cls)}
        assert all(p.get("description") for p in props.values())


def _second_gpu_in_trouble(xml: str) -> str:
    """The H200 document with a second GPU whose fields read [GPU requires reset]."""
    block = re.search(r"<gpu id=.*?</gpu>", xml, re.DOTALL).group(0)
    sick = block.replace("00000000:00:06.0", "00000000:00:07.0").replace(
        "GPU-748cab2e-6b52-16fa-e39b-eb8c7dd7f5be", "[GPU requires reset]"
    )
    sick = re.sub(r"<gpu_temp>[^<]*</gpu_temp>", "<gpu_temp>[Unknown Error]</gpu_temp>", sick)
    return xml.replace("</gpu>", "</gpu>\n" + sick, 1)


def test_a_gpu_in_trouble_keeps_the_others_and_is_a_finding():
    section = parse(_second_gpu_in_trouble(H200.read_text()))
    assert [g.pci_address for g in section.gpus] == [H200_BDF, "0000:00:07.0"]
    good, sick = section.gpus
    assert good.uuid and good.problems == []
    assert sick.uuid is None and sick.temperature_c is None
    assert "uuid: [GPU requires reset]" in sick.problems
    found = nvidia_smi.findings({"nvidia": section, "pcie": None})
    assert [(f.severity, f.subject) for f in found] == [("critical", "0000:00:07.0")]


def test_a_document_cut_short_keeps_the_complete_gpus():
    xml = _second_gpu_in_trouble(H200.read_text())
    cut = xml[: xml.rindex("<gpu id=") + 400]  # the second GPU is cut in the middle
    section = parse("Unable to determine the device handle for GPU 0000:00:07.0\n" + cut)
    assert [g.uuid for g in section.gpus] == ["GPU-748cab2e-6b52-16fa-e39b-eb8c7dd7f5be"]
    assert section.driver_version == "580.159.04" and section.attached_gpus == 1
    assert section.errors == ["nvidia-smi XML does not parse; kept the complete <gpu> elements"]


@pytest.mark.parametrize("text", ["", "garbage", "<nvidia_smi_log>", "<a/>", "\x00<gpu"])
def test_bad_input_gives_an_empty_section_with_an_error(text):
    section = parse(text)
    assert section.gpus == [] and section.errors


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    for body in (text, "<nvidia_smi_log><gpu id='x'>" + text):
        assert_read_from(body, parse(body))
    gpu = nvidia_smi.parse_proc_information(text)
    assert gpu.index == 0 and gpu.problems == []
    for value in (gpu.name, gpu.uuid, gpu.vbios_version, gpu.pci_bus_id):
        assert value is None or value in text


def assert_read_from(text: str, section: nvidia_smi.NvidiaSection) -> None:
    """What any input gives: a valid section; no GPU without a <gpu> element for it; names and
    UUIDs only as the text has them; nothing read is never silent (an error says why)."""
    assert_section_valid("nvidia", section)
    assert len(section.gpus) <= text.count("<gpu")
    for gpu in section.gpus:
        assert gpu.uuid is None or gpu.uuid in text
        assert gpu.name is None or gpu.name in text
    assert section.gpus or section.errors


@settings(max_examples=40, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_raises_on_fixtures_with_lines_dropped_duplicated_or_cut(data):
    text = mangle(data, data.draw(st.sampled_from(FIXTURE_FILES)).read_text())
    assert_read_from(text, parse(text))


@pytest.mark.parametrize(
    ("bus_id", "address"),
    [
        ("00000000:07:00.0", "0000:07:00.0"),
        ("0000:3B:00.0", "0000:3b:00.0"),
        ("00010000:c1:00.1", "10000:c1:00.1"),
        ("07:00.0", "0000:07:00.0"),
        ("garbage", None),
        (None, None),
    ],
)
def test_pci_addresses_are_normalised_like_lspci(bus_id, address):
    assert normalise_pci_address(bus_id) == address


def test_collector_reads_the_h200_capture(tmp_path):
    probe = Probe(ReplayRunner(h200_capture(tmp_path)), "nvidia")
    section = nvidia_smi.collect(probe)
    assert section is not None and section.source == "nvidia-smi"
    assert [g.serial for g in section.gpus] == ["1653824161852"]
    assert probe.errors == []


NO_HANDLE = "Unable to determine the device handle for GPU0000:00:07.0: Unknown Error\n"
LOST_BDF = "0000:00:07.0"
# `nvidia-smi -q -x -i <bus id>` on the H200 machines: one GPU, and a bus id with no GPU (exit 6).
H200_BY_BDF = FIXTURES / "nvidia-smi" / "h200-firecracker-580-i-bdf.xml"
NO_DEVICE = (FIXTURES / "nvidia-smi" / "h200-firecracker-580-i-absent-bdf.stdout").read_text()


def test_collector_falls_back_to_procfs_when_nvidia_smi_fails(tmp_path):
    stdout = "Failed to initialize NVML: Driver/library version mismatch\n"
    capture = h200_capture(tmp_path, rc=18, stdout=stdout, per_gpu=[(H200_BDF, 18, stdout)])
    probe = Probe(ReplayRunner(capture), "nvidia")
    section = nvidia_smi.collect(probe)
    assert section is not None and section.source == "procfs"
    assert section.driver_version == "580.159.04"
    [gpu] = section.gpus
    assert (gpu.name, gpu.uuid, gpu.vbios_version, gpu.pci_address, gpu.minor_number) == (
        "NVIDIA H200",
        "GPU-748cab2e-6b52-16fa-e39b-eb8c7dd7f5be",
        "96.00.a5.00.1a",
        H200_BDF,
        0,
    )
    # Every GPU failed alike: a tool problem, recorded as errors, not blamed on the GPU.
    assert gpu.problems == []
    assert probe.errors == [
        "nvidia-smi -q -x: exit 18: Failed to initialize NVML: Driver/library version mismatch",
        "nvidia-smi -q -x -i 0000:00:06.0: exit 18: Failed to initialize NVML: "
        "Driver/library version mismatch",
    ]


def test_a_gpu_that_fell_off_the_bus_does_not_blank_the_others(tmp_path):
    lost_info = H200_PROC_INFO.read_text().replace(H200_BDF, LOST_BDF)
    lost_info = lost_info.replace("GPU-748cab2e", "GPU-0bad0bad").replace(
        "Minor: \t 0", "Minor: \t 1"
    )
    capture = h200_capture(
        tmp_path,
        rc=15,
        stdout=NO_HANDLE,
        per_gpu=[(H200_BDF, 0, H200_BY_BDF.read_text()), (LOST_BDF, 6, NO_DEVICE)],
        extra_gpus={LOST_BDF: lost_info},
    )
    probe = Probe(ReplayRunner(capture), "nvidia")
    section = nvidia_smi.collect(probe)
    assert section.source == "nvidia-smi per GPU" and section.cuda_version == "13.0"
    healthy, lost = section.gpus
    assert healthy.serial == "1653724032862" and healthy.memory_total_mib == 143771
    assert (lost.pci_address, lost.uuid, lost.serial) == (
        LOST_BDF,
        "GPU-0bad0bad-6b52-16fa-e39b-eb8c7dd7f5be",
        None,
    )
    assert lost.problems == [
        "nvidia-smi cannot read this GPU (nvidia-smi -q -x -i 0000:00:07.0: exit 6: "
        "No devices were found)"
    ]
    found = nvidia_smi.findings({"nvidia": section, "pcie": None})
    assert [(f.severity, f.subject) for f in found] == [("critical", lost.uuid)]
    assert_section_valid("nvidia", section)


def test_collector_takes_a_hung_nvidia_smi_as_a_timeout_and_falls_back(tmp_path):
    probe = Probe(ReplayRunner(h200_capture(tmp_path, rc=124, stdout="")), "nvidia")
    section = nvidia_smi.collect(probe)
    assert section is not None and section.source == "procfs" and len(section.gpus) == 1
    assert probe.errors == ["nvidia-smi -q -x: timed out after 1.5 s"]


def test_a_hung_nvidia_smi_is_a_critical_finding_on_every_gpu_it_left_unread(tmp_path):
    """A hang is the driver or a GPU stuck (D state): no GPU of it may look healthy, and the
    bus reconciliation, which sees every GPU listed, must not hide it (review B.1.2)."""
    probe = Probe(ReplayRunner(h200_capture(tmp_path, rc=124, stdout="")), "nvidia")
    section = nvidia_smi.collect(probe)
    [gpu] = section.gpus
    assert gpu.problems == [
        "nvidia-smi hung before reading this GPU (nvidia-smi -q -x: timed out after 1.5 s)"
    ]
    pcie = lspci.parse(H200_LSPCI.read_text())
    found = nvidia_smi.findings({"nvidia": section, "pcie": pcie})
    assert [(f.severity, f.subject) for f in found] == [("critical", gpu.uuid)]
    assert "nvidia-smi hung" in found[0].message
    assert_section_valid("nvidia", section)


def test_a_gpu_without_procfs_information_keeps_its_own_failure(tmp_path):
    """/proc/driver/nvidia/gpus/<bdf> without a readable information file and no answer to
    `-i <bdf>`: that GPU is listed by its bus id with its problem; the healthy GPU after it
    stays healthy (review B.1.1: the failure was keyed to the next GPU's index)."""
    silent = "0000:00:05.0"
    capture = write_capture(
        tmp_path,
        [
            (list(nvidia_smi.ARGV), 15, NO_HANDLE),
            ([*nvidia_smi.ARGV, "-i", silent], 6, NO_DEVICE),
            ([*nvidia_smi.ARGV, "-i", H200_BDF], 0, H200_BY_BDF.read_text()),
        ],
        {
            "/proc/driver/nvidia/version": H200_PROC_VERSION.read_text(),
            f"/proc/driver/nvidia/gpus/{H200_BDF}/information": H200_PROC_INFO.read_text(),
        },
        {"/proc/driver/nvidia/gpus": [silent, H200_BDF]},
    )
    section = nvidia_smi.collect(Probe(ReplayRunner(capture), "nvidia"))
    assert section.source == "nvidia-smi per GPU"
    lost, healthy = section.gpus
    assert (lost.index, lost.pci_address, lost.uuid, lost.name) == (0, silent, None, None)
    assert lost.problems == [
        "nvidia-smi cannot read this GPU (nvidia-smi -q -x -i 0000:00:05.0: exit 6: "
        "No devices were found)"
    ]
    assert (healthy.index, healthy.pci_address, healthy.problems) == (1, H200_BDF, [])
    assert healthy.serial == "1653724032862"
    found = nvidia_smi.findings({"nvidia": section, "pcie": None})
    assert [(f.severity, f.subject) for f in found] == [("critical", silent)]
    assert_section_valid("nvidia", section)


def test_gpus_no_nvidia_smi_call_could_read_are_a_warning_each(tmp_path):
    """Every GPU failed alike (the tool, not the GPUs): not blamed on the GPU, but its health
    was not read, so it is a warning finding, never silently healthy."""
    stdout = "Failed to initialize NVML: Driver/library version mismatch\n"
    capture = h200_capture(tmp_path, rc=18, stdout=stdout, per_gpu=[(H200_BDF, 18, stdout)])
    section = nvidia_smi.collect(Probe(ReplayRunner(capture), "nvidia"))
    [gpu] = section.gpus
    found = nvidia_smi.findings({"nvidia": section, "pcie": None})
    assert [(f.severity, f.subject) for f in found] == [("warning", gpu.uuid)]
    assert "health not read" in found[0].message


def test_collector_keeps_the_gpus_of_a_failed_call(tmp_path):
    xml = _second_gpu_in_trouble(H200.read_text())
    probe = Probe(ReplayRunner(h200_capture(tmp_path, rc=15, stdout=xml)), "nvidia")
    section = nvidia_smi.collect(probe)
    assert section is not None and section.source == "nvidia-smi" and len(section.gpus) == 2
    assert section.errors == ["nvidia-smi -q -x: exit 15"] == probe.errors


def test_collector_skips_quietly_without_the_driver(tmp_path):
    probe = Probe(ReplayRunner(write_capture(tmp_path, [], {}, {})), "nvidia")
    assert nvidia_smi.collect(probe) is None
    assert probe.errors == [] and probe.notes


def test_collector_without_nvidia_smi_is_none(tmp_path):
    files = {"/proc/driver/nvidia/version": H200_PROC_VERSION.read_text()}
    probe = Probe(ReplayRunner(write_capture(tmp_path, [], files, {})), "nvidia")
    assert nvidia_smi.collect(probe) is None and probe.errors == []


def test_pcie_reconciliation_on_the_h200_machine():
    pcie = lspci.parse(H200_LSPCI.read_text())
    section = parse(H200.read_text())
    assert nvidia_smi.findings({"pcie": pcie, "nvidia": section}) == []
    # The same bus with the driver absent: the GPU is a finding.
    [finding] = nvidia_smi.findings({"pcie": pcie, "nvidia": None})
    assert finding.subject == H200_BDF and finding.severity == "warning"
    # nvidia-smi reports no GPU at that address: a critical finding.
    empty = parse(H200.read_text().replace("00000000:00:06.0", "00000000:00:09.0"))
    found = nvidia_smi.findings({"pcie": pcie, "nvidia": empty})
    assert [(f.severity, f.subject) for f in found] == [("critical", H200_BDF)]
    assert "nvidia-smi does not report it" in found[0].message


def test_pcie_reconciliation_reads_dicts_too():
    pcie = {"devices": [{"address": "0000:41:00.0", "vendor_id": "10de", "class_id": "0302"}]}
    found = nvidia_smi.findings({"pcie": pcie, "nvidia": parse(H200.read_text())})
    assert [f.subject for f in found] == ["0000:41:00.0"]


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/nvidia-smi-xml is absent")
def test_realworld_outputs_parse_and_yield_what_a_person_sees():
    sections = {p.name: parse(p.read_text(errors="replace")) for p in REALWORLD_FILES}
    assert all(s.gpus for s in sections.values())
    assert all(g.uuid and g.name and g.vbios_version for s in sections.values() for g in s.gpus)
    v100s = sections["GuanceCloud_datakit__tesla-v100s-8gpu.xml"]
    assert len(v100s.gpus) == 8 and v100s.driver_version == "460.73.01"
    assert len({g.uuid for g in v100s.gpus}) == 8
    p100 = sections["netdata_go.d.plugin__tesla-p100.xml"].gpus[0]
    assert p100.ecc_aggregate_correctable == 3 and p100.retired_pages_pending is False
    mig = sections["netdata_go.d.plugin__a100-sxm4-mig.xml"].gpus[0]
    assert mig.mig_mode_current == "Enabled" and mig.memory_total_mib == 40960
    trimmed = sections["influxdata_telegraf__a100-sxm4-v12.xml"]
    assert trimmed.attached_gpus == 4 and len(trimmed.gpus) == 1 and trimmed.errors
    rtx = sections["netdata_go.d.plugin__rtx-4090-driver-535.xml"].gpus[0]
    assert rtx.serial is None and rtx.remapped_rows_correctable == 0


H200_AUDIT_CAPTURE = FIXTURES / "captures" / "h200-firecracker-bee-audit"


def test_replayed_h200_audit_has_the_gpu_and_no_finding(validate_document):
    """`bee audit --capture` on the H200 host, replayed: nvidia, pcie and storage agree."""
    from bee.audit import run_audit

    document = run_audit(ReplayRunner(H200_AUDIT_CAPTURE), deadline_s=30, mode="replay")
    validate_document(document)
    nvidia = document["nvidia"]
    assert nvidia["source"] == "nvidia-smi" and nvidia["driver_version"] == "580.159.04"
    [gpu] = nvidia["gpus"]
    assert gpu["pci_address"] == H200_BDF and gpu["name"] == "NVIDIA H200"
    assert gpu["serial"] == "1654024075815" and gpu["ecc_aggregate_correctable"] == 2
    assert [d["address"] for d in document["pcie"]["devices"] if d["vendor_id"] == "10de"] == [
        H200_BDF
    ]
    assert document["findings"] == [] and document["errors"] == []
    assert [(d["name"], d["health"]["verdict"]) for d in document["storage"]["disks"]] == [
        ("vda", "unknown"),
        ("vdb", "unknown"),
    ]
