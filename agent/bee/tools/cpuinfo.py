"""/proc/cpuinfo and /proc/meminfo: CPU and memory when the firmware gives no SMBIOS table.

Used when dmidecode finds no SMBIOS entry point (many VMs, Firecracker, some ARM boards) or is
missing: the cpu and memory sections then come from the kernel, marked with their source.
x86 /proc/cpuinfo has one block per logical CPU:

    processor	: 0
    vendor_id	: GenuineIntel
    model name	: Intel(R) Xeon(R) Processor
    physical id	: 0
    core id		: 0
    cpu cores	: 16
    flags		: fpu vme ... avx512f ... hypervisor ...

Sockets are the distinct `physical id`s, cores the distinct (physical id, core id) pairs,
threads the `processor` blocks. Where cpuinfo lacks the ids (ARM, some hypervisors) the
topology comes from /sys/devices/system/cpu/cpu<N>/topology/{physical_package_id,core_id}.
/proc/meminfo's MemTotal is the memory the kernel manages: a little less than what is installed
(firmware and kernel reservations), so it is a total, never a DIMM list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.jsonvalue import integer as _int
from bee.tools.dmidecode import Cpu, CpuSocket, Memory

SYS_CPU = "/sys/devices/system/cpu"
# Flags an operator or a spec asks about: vector units, crypto, virtualisation, AMX.
FLAGS_THAT_MATTER = (
    "avx", "avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
    "aes", "sha_ni", "vmx", "svm", "hypervisor", "sse4_2", "fma", "popcnt", "lm", "nx",
    "asimd", "sve", "sve2",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuInfo:
    vendor: str | None  # "GenuineIntel", "AuthenticAMD"; ARM: "CPU implementer" 0x41
    model: str | None  # "model name": "Intel(R) Xeon(R) Platinum 8480+"
    family: int | None
    model_number: int | None
    stepping: int | None
    microcode: str | None
    mhz: float | None  # the first CPU's current clock
    socket_count: int | None  # distinct physical ids; None when cpuinfo has none
    core_count: int | None  # distinct (physical id, core id)
    thread_count: int  # logical CPUs
    flags: list[str]  # the FLAGS_THAT_MATTER this CPU has
    flag_count: int  # all flags


def _blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip().lower(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def parse(text: str) -> CpuInfo:
    blocks = [b for b in _blocks(text) if "processor" in b]
    first = blocks[0] if blocks else {}
    sockets = {b["physical id"] for b in blocks if "physical id" in b}
    cores = {(b.get("physical id"), b["core id"]) for b in blocks if "core id" in b}
    flags = (first.get("flags") or first.get("features") or "").split()
    try:
        mhz = float(first.get("cpu mhz", ""))
    except ValueError:
        mhz = None
    return CpuInfo(
        vendor=first.get("vendor_id") or first.get("cpu implementer") or None,
        model=first.get("model name") or None,
        family=_int(first.get("cpu family")),
        model_number=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        microcode=first.get("microcode") or None,
        mhz=mhz,
        socket_count=len(sockets) or None,
        core_count=len(cores) or None,
        thread_count=len(blocks),
        flags=[f for f in FLAGS_THAT_MATTER if f in flags],
        flag_count=len(flags),
    )


def sysfs_topology(
    read: Callable[[str], str | None], list_dir: Callable[[str], list[str] | None]
) -> tuple[int | None, int | None, int]:
    """(sockets, cores, threads) of the online CPUs from /sys/devices/system/cpu."""
    packages: set[str] = set()
    cores: set[tuple[str, str]] = set()
    threads = 0
    for name in list_dir(SYS_CPU) or []:
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        package = (read(f"{SYS_CPU}/{name}/topology/physical_package_id") or "").strip()
        core = (read(f"{SYS_CPU}/{name}/topology/core_id") or "").strip()
        if not package and not core:
            continue  # offline CPUs have no topology directory
        threads += 1
        packages.add(package)
        cores.add((package, core))
    return (len(packages) or None), (len(cores) or None), threads


@dataclass(frozen=True, slots=True, kw_only=True)
class MemInfo:
    total_bytes: int | None  # MemTotal
    available_bytes: int | None  # MemAvailable
    hugepages_total: int | None
    hugepage_size_bytes: int | None


def parse_meminfo(text: str) -> MemInfo:
    """`MemTotal:       16318480 kB` lines; values in kB are kibibytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        words = rest.split()
        # ASCII digits, and few of them: "²" is a digit int() refuses, 4,301 digits too.
        if not sep or not words or not (words[0].isascii() and words[0].isdigit()):
            continue
        if len(words[0]) > 30:
            continue
        scale = 1024 if len(words) > 1 and words[1].lower() == "kb" else 1
        values.setdefault(key.strip(), int(words[0]) * scale)
    return MemInfo(
        total_bytes=values.get("MemTotal"),
        available_bytes=values.get("MemAvailable"),
        hugepages_total=values.get("HugePages_Total"),
        hugepage_size_bytes=values.get("Hugepagesize"),
    )


# -- the fallback sections --------------------------------------------------------------------


def cpu_section(
    read: Callable[[str], str | None], list_dir: Callable[[str], list[str] | None]
) -> Cpu | None:
    """The cpu section from /proc/cpuinfo and sysfs topology, when SMBIOS has no type 4."""
    text = read("/proc/cpuinfo")
    info = parse(text) if text else None
    sockets, cores, threads = sysfs_topology(read, list_dir)
    if info is None and not threads:
        return None
    socket_count = (info.socket_count if info else None) or sockets or 1
    core_count = (info.core_count if info else None) or cores
    thread_count = (info.thread_count if info else 0) or threads
    per_socket = [
        CpuSocket(
            designation=f"socket {n}",
            populated=True,
            enabled=True,
            status=None,
            type=None,
            manufacturer=info.vendor if info else None,
            model=info.model if info else None,
            family=str(info.family) if info and info.family is not None else None,
            signature=(
                f"Family {info.family}, Model {info.model_number}, Stepping {info.stepping}"
                if info and info.family is not None
                else None
            ),
            cpuid=None,
            max_speed_mhz=None,
            current_speed_mhz=int(info.mhz) if info and info.mhz else None,
            external_clock_mhz=None,
            core_count=core_count // socket_count if core_count else None,
            core_enabled=None,
            thread_count=thread_count // socket_count if thread_count else None,
            serial=None,
            part_number=None,
            asset_tag=None,
            upgrade=None,
            characteristics=[],
            placeholders={},
        )
        for n in range(socket_count)
    ]
    return Cpu(
        sockets=per_socket,
        socket_count=socket_count,
        populated_count=socket_count,
        core_count=core_count,
        thread_count=thread_count or None,
        source="proc-cpuinfo",
        flags=info.flags if info else [],
    )


def memory_section(
    read: Callable[[str], str | None], virtual_machine: bool | None
) -> Memory | None:
    """The memory section from /proc/meminfo, when SMBIOS has no types 16/17: a total only."""
    text = read("/proc/meminfo")
    info = parse_meminfo(text) if text else None
    if info is None or info.total_bytes is None:
        return None
    return Memory(
        arrays=[],
        slots=[],
        slot_count=0,
        populated_count=0,
        empty_count=0,
        phantom_slot_count=0,
        total_bytes=info.total_bytes,
        virtual_machine=virtual_machine,
        source="proc-meminfo",
    )
