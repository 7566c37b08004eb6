"""CPU and memory from /proc/cpuinfo, /sys/devices/system/cpu and /proc/meminfo without SMBIOS."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.tools import cpuinfo, dmidecode
from conftest import FIXTURES, assert_section_valid, mangle, probe_over, write_capture

H200 = FIXTURES / "captures" / "h200-firecracker-bee-audit"
QEMU = FIXTURES / "proc-cpuinfo" / "qemu-q35-2-sockets-2-cores.txt"
QEMU_MEMINFO = FIXTURES / "proc-meminfo" / "qemu-q35-1-gib.txt"
QEMU_SYS = FIXTURES / "sys-devices-system-cpu" / "qemu-q35-2-sockets-2-cores"
NO_SMBIOS = (FIXTURES / "dmidecode" / "firecracker-no-smbios.txt").read_text()
FILES = sorted(
    p
    for tool in ("proc-cpuinfo", "proc-meminfo")
    for p in (FIXTURES / tool).glob("*.txt")
    if ".expected." not in p.name
)


def test_the_h200_capture_without_smbios_replays_with_the_cpu_from_proc_cpuinfo():
    document = run_audit(ReplayRunner(H200), deadline_s=30, mode="replay")
    cpu = document["cpu"]
    assert (cpu["source"], cpu["socket_count"], cpu["core_count"], cpu["thread_count"]) == (
        "proc-cpuinfo",
        1,
        16,
        16,
    )
    assert cpu["sockets"][0]["model"] == "Intel(R) Xeon(R) Processor"
    assert {"avx512f", "amx_tile", "hypervisor"} <= set(cpu["flags"])
    # The capture holds no /proc/meminfo (bee at 7d90940 did not read it): memory stays null,
    # and the collector says why.
    assert document["memory"] is None
    assert any("/proc/meminfo" in n for n in document["collectors"]["memory"]["notes"])


def test_qemu_guest_two_sockets_of_two_cores():
    info = cpuinfo.parse(QEMU.read_text())
    assert (info.socket_count, info.core_count, info.thread_count) == (2, 4, 4)
    memory = cpuinfo.parse_meminfo(QEMU_MEMINFO.read_text())
    assert 900 * 2**20 < memory.total_bytes < 2**30  # -m 1024, less the kernel's reservations


def test_without_ids_in_cpuinfo_the_topology_comes_from_sysfs(tmp_path):
    files = {f"{cpuinfo.SYS_CPU}/{p.relative_to(QEMU_SYS)}": p.read_text()
             for p in QEMU_SYS.rglob("*") if p.is_file()}  # fmt: skip
    names = sorted({key.split("/")[5] for key in files})
    no_ids = "\n".join(
        line
        for line in QEMU.read_text().splitlines()
        if not line.startswith(("physical id", "core id"))
    )
    files["/proc/cpuinfo"] = no_ids
    capture = write_capture(
        tmp_path / "cap",
        [(["dmidecode"], 1, NO_SMBIOS, "/dev/mem: No such file or directory\n")],
        files=files,
        dirs={cpuinfo.SYS_CPU: names},
    )
    probe, _ = probe_over(capture, "cpu")
    cpu = dmidecode.collect_cpu(probe)
    assert (cpu.source, cpu.socket_count, cpu.core_count, cpu.thread_count) == (
        "proc-cpuinfo",
        2,
        4,
        4,
    )
    assert_section_valid("cpu", cpu)


def test_memory_total_from_proc_meminfo_without_smbios(tmp_path):
    capture = write_capture(
        tmp_path / "cap",
        [(["dmidecode"], 1, NO_SMBIOS, "/dev/mem: No such file or directory\n")],
        files={"/proc/meminfo": QEMU_MEMINFO.read_text()},
    )
    probe, _ = probe_over(capture, "memory")
    memory = dmidecode.collect_memory(probe)
    assert memory.source == "proc-meminfo" and memory.slots == []
    assert memory.total_bytes == cpuinfo.parse_meminfo(QEMU_MEMINFO.read_text()).total_bytes
    assert_section_valid("memory", memory)
    assert dmidecode.summary_memory({"source": "proc-meminfo", "total_bytes": 2**30}) == (
        "Memory: 1.0 GiB (kernel MemTotal; no SMBIOS slot list)"
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_never_raises_on_real_files_with_lines_dropped_duplicated_or_cut(path, data):
    parse = cpuinfo.parse if path.parent.name == "proc-cpuinfo" else cpuinfo.parse_meminfo
    parse(mangle(data, path.read_text()))


@settings(max_examples=100)
@given(text=st.text(max_size=600))
def test_never_raises_on_arbitrary_text(text):
    cpuinfo.parse(text)
    cpuinfo.parse_meminfo(text)
