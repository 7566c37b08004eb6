"""The health section: kernel log events, PCIe AER and EDAC counters, NVLink and fabric state."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.serialize import to_jsonable
from bee.tools import aer, edac, health, kernel_log, nvidia_smi_nvlink
from conftest import FIXTURES, REALWORLD, assert_section_valid, mangle, probe_over, write_capture

LOG_FIXTURES = sorted(
    p for p in (FIXTURES / "kernel-log").glob("*.txt") if ".expected." not in p.name
)
NVLINK_FIXTURES = sorted(
    p for p in (FIXTURES / "nvidia-smi-nvlink").glob("*.txt") if ".expected." not in p.name
)
REALWORLD_LOGS = sorted((REALWORLD / "kernel-log").glob("*"))
REALWORLD_NVLINK = sorted((REALWORLD / "nvidia-smi-nvlink").glob("*"))
QEMU_LOG = FIXTURES / "kernel-log" / "qemu-q35-dmesg-kernel-decode-iso.txt"
QEMU_AER = FIXTURES / "aer" / "qemu-q35-root-port"
DENIED = "Operation not permitted\n"
PARSERS = {"kernel-log": kernel_log.parse, "nvidia-smi-nvlink": nvidia_smi_nvlink.parse}


# -- kernel log ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind", "subject", "code", "severity"),
    [
        (
            "[1084456.074562] NVRM: Xid (PCI:0000:09:00): 79, pid=0, GPU has fallen off the bus.",
            "xid", "0000:09:00", 79, "critical",
        ),
        (
            "kern  :warn  : 2024-11-15T12:02:03,470068+00:00 NVRM: Xid (PCI:0000:19:00): 13, pid="
            "'<unknown>', name=<unknown>, Graphics SM Warp Exception",
            "xid", "0000:19:00", 13, "info",
        ),
        (
            "kernel: nvidia-nvswitch3: SXid (PCI:0000:86:00.0): 20034, Fatal, Link 44 "
            "LTSSM Fault Up",
            "sxid", "0000:86:00.0", 20034, "warning",
        ),
        (
            "<3>[74889.542031] pcieport 0000:00:02.0: AER: Uncorrected (Fatal) error "
            "received: id=0010",
            "aer", "0000:00:02.0", None, "critical",
        ),
        (
            "Sep 19 16:18:02 bubz kernel: [68183.615790] pcieport 0000:00:03.1: AER: "
            "Correctable error"
            " message received from 0000:00:00.0",
            "aer", "0000:00:03.1", None, "info",
        ),
        (
            "[Sat Aug 13 09:31:18 2022] mce: [Hardware Error]: Machine check events logged",
            "mce", "cpu", None, "warning",
        ),
        (
            "6,1234,5678901,-;mce: [Hardware Error]: PROCESSOR 0:50657 Uncorrected error",
            "mce", "cpu", None, "critical",
        ),
        (
            "[  10.1] EDAC MC0: 1 UE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 "
            "(channel:1)",
            "edac", "memory", None, "critical",
        ),
    ],
)  # fmt: skip
def test_kernel_log_lines_in_every_layout(line, kind, subject, code, severity):
    [event] = kernel_log.parse(line).events
    assert (event.kind, event.subject, event.code, event.severity) == (
        kind,
        subject,
        code,
        severity,
    )
    assert event.raw == line.strip()


def test_ordinary_lines_and_detail_dumps_are_not_events():
    text = "\n".join(
        [
            "[    0.000000] Linux version 6.1.0-56-amd64",
            "[    0.5] pcieport 0000:00:01.0: AER: enabled with IRQ 24",
            "[Sat Aug 13 09:31:18 2022] EDAC skx MC1: HANDLING MCE MEMORY ERROR",
            "[Sat Aug 13 09:31:18 2022] EDAC skx MC1: CPU 0: Machine Check Event: 0 Bank 8: 9c00",
        ]
    )
    log = kernel_log.parse(text)
    assert log.events == [] and log.line_count == 4


def test_repeated_lines_are_one_finding_with_the_count_and_the_first_raw_line():
    lines = [
        f"[{n}.0] NVRM: Xid (PCI:0000:38:00): 13, pid={n}, Graphics Exception" for n in range(700)
    ]
    log = kernel_log.parse("\n".join(lines))
    assert (log.event_count, len(log.events)) == (700, kernel_log.MAX_EVENTS)
    [finding] = kernel_log.findings(log)
    assert "700 lines since boot" in finding.message
    assert (finding.raw, finding.persistence) == (lines[0], "since_boot")


def test_qemu_guest_kernel_log_is_clean():
    log = kernel_log.parse(QEMU_LOG.read_text())
    assert log.line_count > 100
    assert all(e.kind != "xid" for e in log.events)


@pytest.mark.skipif(not REALWORLD_LOGS, reason="no ../shared/realworld")
@pytest.mark.parametrize("path", REALWORLD_LOGS, ids=lambda p: p.name)
def test_realworld_kernel_logs(path):
    log = kernel_log.parse(path.read_text(errors="replace"))
    if "mcelog" in path.name:
        assert log.events == []  # mcelog's own text layout, not a kernel log
    else:
        assert log.events and kernel_log.findings(log)


# -- nvlink ----------------------------------------------------------------------------------


def test_nvlink_one_link_down_is_critical_and_all_down_is_unknown():
    status = nvidia_smi_nvlink.parse(NVLINK_FIXTURES[0].read_text())
    findings = nvidia_smi_nvlink.findings(status)
    severities = sorted(f.severity for f in findings)
    assert severities == ["critical", "info"]
    critical = next(f for f in findings if f.severity == "critical")
    assert "1 of 18 links inactive (link 7)" in critical.message
    assert next(f for f in findings if f.severity == "info").message.startswith("NVLink: UNKNOWN")


@pytest.mark.skipif(not REALWORLD_NVLINK, reason="no ../shared/realworld")
@pytest.mark.parametrize("path", REALWORLD_NVLINK, ids=lambda p: p.name)
def test_realworld_nvlink(path):
    status = nvidia_smi_nvlink.parse(path.read_text(errors="replace"))
    if "topo" in path.name:
        assert status.gpus == []  # `nvidia-smi topo -m`, another command
    else:
        assert status.gpus and all(g.uuid and g.uuid.startswith("GPU-") for g in status.gpus)


# -- AER and EDAC ----------------------------------------------------------------------------


def test_aer_counters_fatal_is_critical_nonfatal_warning_correctable_data():
    files = {
        "/sys/bus/pci/devices/0000:3b:00.0/aer_dev_correctable": "RxErr 3\nTOTAL_ERR_COR 3\n",
        "/sys/bus/pci/devices/0000:3b:00.0/aer_dev_fatal": "DLP 0\nSurpDn 0\nTOTAL_ERR_FATAL 0\n",
        "/sys/bus/pci/devices/0000:3b:00.0/aer_dev_nonfatal": "CmpltTO 2\nTOTAL_ERR_NONFATAL 2\n",
    }
    device = aer.read_device(files.get, "0000:3b:00.0")
    assert (device.correctable_total, device.fatal_total, device.nonfatal_total) == (3, 0, 2)
    [finding] = aer.findings([device])
    assert (finding.severity, finding.persistence) == ("warning", "since_boot")
    assert "CmpltTO 2" in finding.message
    assert aer.read_device(files.get, "0000:00:00.0") is None


def test_edac_counts_per_controller_and_dimm():
    base = "/sys/devices/system/edac/mc"
    files = {
        f"{base}/mc0/mc_name": "Skylake Socket#0 IMC#0\n",
        f"{base}/mc0/ce_count": "5\n",
        f"{base}/mc0/ue_count": "0\n",
        f"{base}/mc0/seconds_since_reset": "312\n",
        f"{base}/mc0/dimm0/dimm_label": "CPU_SrcID#0_MC#0_Chan#0_DIMM#0\n",
        f"{base}/mc0/dimm0/dimm_ce_count": "5\n",
        f"{base}/mc0/dimm0/dimm_ue_count": "0\n",
    }
    dirs = {base: ["mc0", "power"], f"{base}/mc0": ["dimm0", "ce_count", "uevent"]}
    [mc] = edac.read_controllers(files.get, dirs.get)
    assert (mc.ce_count, mc.ue_count, mc.seconds_since_reset, mc.dimms[0].ce_count) == (
        5,
        0,
        312,
        5,
    )
    [finding] = edac.findings([mc])
    assert finding.severity == "warning" and "CPU_SrcID#0_MC#0_Chan#0_DIMM#0: 5" in finding.message
    assert edac.read_controllers(files.get, {}.get) is None


# -- the collector ---------------------------------------------------------------------------


def test_collect_from_the_qemu_guest_capture(tmp_path):
    files = {
        "/proc/uptime": "41.50 70.10\n",
        **{
            f"/sys/bus/pci/devices/0000:00:01.0/{name}": (QEMU_AER / name).read_text()
            for name in aer.FILES + aer.ROOT_PORT_FILES
            if (QEMU_AER / name).exists()
        },
    }
    capture = write_capture(
        tmp_path / "cap",
        [(list(health.KERNEL_LOG_ARGV), 0, QEMU_LOG.read_text())],
        files=files,
        dirs={"/sys/bus/pci/devices": ["0000:00:00.0", "0000:00:01.0"]},
    )
    probe, _ = probe_over(capture, "health")
    section = health.collect(probe)
    assert probe.errors == []
    assert section.uptime_s == 41.5 and section.edac_controllers is None and section.nvlink is None
    [port] = section.aer_devices
    assert port.pci_address == "0000:00:01.0" and port.fatal_total == 0
    assert_section_valid("health", section)
    assert health.summary_line(to_jsonable(section)).startswith("Health: kernel log")


def test_an_unreadable_kernel_log_is_an_error(tmp_path):
    capture = write_capture(
        tmp_path / "cap",
        [(list(health.KERNEL_LOG_ARGV), 1, "", "dmesg: read kernel buffer failed: " + DENIED)],
    )  # fmt: skip
    probe, _ = probe_over(capture, "health")
    assert health.collect(probe).kernel_log is None
    assert any("Operation not permitted" in e for e in probe.errors)


def test_fabric_unknown_without_fabric_manager_and_failed_when_completed_badly():
    def gpu(state, status):
        return SimpleNamespace(uuid="GPU-1", index=0, fabric_state=state, fabric_status=status)

    nvidia = SimpleNamespace(
        gpus=[gpu("In Progress", None), gpu("Completed", "Failure"), gpu(None, None)]
    )
    found = health.fabric_findings(nvidia)
    assert [f.severity for f in found] == ["info", "critical"]
    assert "UNKNOWN" in found[0].message


# -- every parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("tool", sorted(PARSERS))
@settings(max_examples=100)
@given(text=st.text(max_size=600))
def test_never_raises_on_arbitrary_text(tool, text):
    PARSERS[tool](text)


@pytest.mark.parametrize(
    "path", [*LOG_FIXTURES, *NVLINK_FIXTURES], ids=lambda p: f"{p.parent.name}/{p.name}"
)
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(path, data):
    PARSERS[path.parent.name](mangle(data, path.read_text()))


@pytest.mark.parametrize("tool", sorted(PARSERS))
@pytest.mark.parametrize(
    "text", ["[" * 50_000, "kernel: " * 10_000, "Xid (PCI:" * 10_000, "<" * 50_000, "a;" * 40_000]
)
def test_adversarial_long_lines_parse(tool, text):
    PARSERS[tool](text)
