"""A synthetic big GPU server, as a bee capture directory assembled from real fixtures.

    python3 -m buildtools.bench.bighost --out DIR [--gpus 8 --disks 24 --nvme 8 --dimms 32
        --sockets 2 --pci 300 --psus 2] [--fixtures fixtures] [--raw DIR ...] [--no-verify]

No such machine is at hand, so the capture is built directly in the replay format of
`bee.capture` (`manifest.json`, `commands/NNN.stdout`, `fs/<path>`): for every command the
collectors issue, the output a big host would print, made by scaling one real output of that
tool from `fixtures/<tool>/` (the seed). What is changed is only what must differ per device:
`<gpu>` elements get their own bus ids, UUIDs, serials and minor numbers; DIMM records their
own handles, locators and serials; disks their names, serials and WWNs; lspci records their
addresses. The sysfs attributes the PCIe collector reads (class, ids, NUMA node, link speed and
width, driver and IOMMU group links) are written in the kernel's format from the lspci record
they belong to; `/proc/cpuinfo` and `/sys/class/dmi/id` from the chosen SMBIOS records.

The generator then replays the capture through the real agent (`bee.audit.run_audit` over a
`bee.capture.ReplayRunner`) and fails unless the document counts exactly the requested GPUs,
DIMM slots, disks, NVMe drives, PCI functions and PSUs, every command the collectors asked for
was in the capture, and every command in the capture was asked for. A collector whose argv
changes therefore breaks this generator loudly instead of leaving a host nobody reads.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "agent"
if str(AGENT) not in sys.path:
    sys.path.insert(0, str(AGENT))

from bee import capture as bee_capture  # noqa: E402  (the agent lives in agent/, not installed)
from bee.tools import bmc as bee_bmc  # noqa: E402
from bee.tools import boot as bee_boot  # noqa: E402
from bee.tools import dmidecode as bee_dmidecode  # noqa: E402
from bee.tools import health as bee_health  # noqa: E402
from bee.tools import ipmitool as bee_ipmitool  # noqa: E402
from bee.tools import ipmitool_sdr as bee_ipmitool_sdr  # noqa: E402
from bee.tools import ipmitool_sel as bee_ipmitool_sel  # noqa: E402
from bee.tools import lsblk as bee_lsblk  # noqa: E402
from bee.tools import nvidia_smi as bee_nvidia_smi  # noqa: E402
from bee.tools import nvidia_smi_nvlink as bee_nvlink  # noqa: E402
from bee.tools import smartctl as bee_smartctl  # noqa: E402
from bee.tools import supported_gpus as bee_supported_gpus  # noqa: E402

DEFAULT_FIXTURES = REPO / "fixtures"
# The boot section's files come from this capture under fixtures/captures/ as they are.
BOOT_SEED = "boot-qemu-q35-ovmf-secureboot-shim-grub"
# Per-call delays of the real tools on a big server (seconds); the bench's slow shims use them,
# and they are the `duration_s` of each command in the generated manifest.
DEFAULT_DELAYS: dict[str, float] = {
    "dmidecode": 0.2,
    "lspci": 0.2,
    "lsblk": 0.1,
    "smartctl": 0.3,
    "nvme": 0.1,
    "ipmitool": 2.0,
    "nvidia-smi": 3.0,
}
PCI_LINKS: dict[str, tuple[str, int]] = {
    # kind -> (current = max link speed as the kernel prints it, width)
    "gpu": ("32.0 GT/s PCIe", 16),
    "nvme": ("16.0 GT/s PCIe", 4),
    "hba": ("8.0 GT/s PCIe", 8),
    "nic": ("16.0 GT/s PCIe", 16),
}
PCI_DRIVERS = {"gpu": "nvidia", "nvme": "nvme", "bridge": "pcieport"}
DISKS_PER_HBA = 16
NICS_PER_SOCKET = 2


class BigHostError(Exception):
    """The big host cannot be built or does not replay as asked; the message is one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What the synthetic server has."""

    sockets: int = 2
    dimms: int = 32
    disks: int = 24  # SATA/SAS, behind HBAs
    nvme: int = 8
    gpus: int = 8
    pci: int = 300  # PCI functions in all
    psus: int = 2

    def scaled(self, factor: int) -> Shape:
        """Every count times factor (the BMC keeps its PSUs: a chassis has what it has)."""
        return replace(
            self,
            sockets=self.sockets * factor,
            dimms=self.dimms * factor,
            disks=self.disks * factor,
            nvme=self.nvme * factor,
            gpus=self.gpus * factor,
            pci=self.pci * factor,
        )

    def check(self) -> None:
        for name, value in asdict(self).items():
            if value < 0 or (name == "sockets" and value < 1):
                raise BigHostError(
                    f"--{name} must be {'at least 1' if name == 'sockets' else '>= 0'}"
                )
        if self.dimms % self.sockets:
            raise BigHostError(f"--dimms {self.dimms} does not split over {self.sockets} sockets")
        if self.pci < 2 * self.endpoints():
            raise BigHostError(
                f"--pci {self.pci} is too few: {self.endpoints()} endpoints need a root port each"
            )

    def hbas(self) -> int:
        return -(-self.disks // DISKS_PER_HBA)

    def nics(self) -> int:
        return NICS_PER_SOCKET * self.sockets

    def endpoints(self) -> int:
        return self.gpus + self.nvme + self.hbas() + self.nics()


# -- seeds: one real output per tool ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    path: Path
    text: str


# capture.sh's file names (fixtures/capture.sh) -> the fixture directory of the same output.
RAW_NAMES: dict[str, tuple[str, ...]] = {
    "dmidecode": ("dmidecode.out",),
    "lspci": ("lspci-vmm-nn-D.out",),
    "lsblk": ("lsblk-J-b.out",),
    "smartctl": ("smartctl-j-a-*.out",),
    "nvme-id-ctrl": ("nvme-id-ctrl-*.out",),
    "nvme-smart-log": ("nvme-smart-log-*.out",),
    "ipmitool-fru": ("ipmitool-fru.out",),
    "nvidia-smi": ("nvidia-smi-q-x.out",),
}


@dataclass(frozen=True, slots=True)
class Sources:
    """Where seeds come from: the fixtures tree, and optionally raw `fixtures/capture.sh`
    output directories (e.g. dist/guest-capture/qemu-q35/capture-sh) not yet made fixtures."""

    fixtures: Path = DEFAULT_FIXTURES
    raw: tuple[Path, ...] = ()

    def files(self, tool: str) -> list[Path]:
        found = []
        directory = self.fixtures / tool
        if directory.is_dir():
            found += sorted(
                p
                for p in directory.iterdir()
                if p.suffix in (".txt", ".json", ".xml", ".out")
                and not p.name.endswith(".expected.json")
                and p.is_file()
            )
        for raw in self.raw:
            for pattern in RAW_NAMES.get(tool, ()):
                found += sorted(p for p in raw.glob(pattern) if p.is_file() and p.stat().st_size)
        return found

    def describe(self, tool: str) -> str:
        where = f"{self.fixtures / tool}/"
        return where + "".join(f" or {raw}/" for raw in self.raw)


def proc_version_beside(xml: Path) -> Path | None:
    """/proc/driver/nvidia/version captured on the machine that printed this XML."""
    # fixtures/nvidia-smi/<case>.proc-version, also for variants of a case (<case>-i-bdf.xml)
    beside = [p for p in xml.parent.glob("*.proc-version") if xml.stem.startswith(p.stem)]
    if beside:
        return max(beside, key=lambda p: len(p.stem))
    raw = xml.parent / "fs/proc/driver/nvidia/version"  # a capture.sh directory
    return raw if raw.is_file() else None


def is_handwritten(path: Path) -> bool:
    """fixtures/README.md: hand-written regression cases are named `handwritten-...`."""
    return path.name.startswith("handwritten")


def pick_seed(sources: Sources, tool: str, score: Callable[[str], int], what: str) -> Seed:
    """The fixture of `tool` with the highest positive score; captured outputs always win over
    hand-written cases, which are used only where no captured output has what is needed."""
    best: tuple[tuple[bool, int], Seed] | None = None
    for path in sources.files(tool):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            value = score(text)
        except (ValueError, KeyError, TypeError, AttributeError):
            value = 0
        rank = (not is_handwritten(path), value)
        if value > 0 and (best is None or rank > best[0]):
            best = (rank, Seed(path, text))
    if best is None:
        raise BigHostError(f"no fixture in {sources.describe(tool)} has {what}")
    return best[1]


# -- dmidecode -------------------------------------------------------------------------------

_HANDLE = re.compile(r"^Handle (0x[0-9A-Fa-f]+), DMI type (\d+), (\d+) bytes")


@dataclass(slots=True)
class DmiRecord:
    dmi_type: int
    lines: list[str]

    def get(self, key: str) -> str | None:
        prefix = f"\t{key}:"
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None

    def set(self, key: str, value: str) -> None:
        prefix = f"\t{key}:"
        for i, line in enumerate(self.lines):
            if line.startswith(prefix):
                self.lines[i] = f"{prefix} {value}"
                return

    def with_handle(self, handle: int) -> DmiRecord:
        lines = list(self.lines)
        match = _HANDLE.match(lines[0])
        assert match
        lines[0] = f"Handle 0x{handle:04X}, DMI type {self.dmi_type}, {match.group(3)} bytes"
        return DmiRecord(self.dmi_type, lines)


def split_dmidecode(text: str) -> tuple[list[str], list[DmiRecord]]:
    """Header lines (version, SMBIOS version) and the records, in table order."""
    header: list[str] = []
    records: list[DmiRecord] = []
    current: list[str] | None = None
    for line in text.splitlines():
        match = _HANDLE.match(line)
        if match:
            current = [line]
            records.append(DmiRecord(int(match.group(2)), current))
        elif current is not None:
            if line.strip():
                current.append(line)
            else:
                current = None
        elif line.strip() and not records:
            header.append(line)
    return header, records


def _dimm_populated(record: DmiRecord) -> bool:
    size = record.get("Size") or ""
    return record.dmi_type == 17 and bool(size) and "No Module" not in size and size != "0"


def _cpu_populated(record: DmiRecord) -> bool:
    return record.dmi_type == 4 and "Populated" in (record.get("Status") or "")


def _dmidecode_score(text: str) -> int:
    """A server table: board, populated sockets and DIMMs (more DIMMs, better)."""
    _, records = split_dmidecode(text)
    types = {r.dmi_type for r in records}
    dimms = sum(_dimm_populated(r) for r in records)
    if not {1, 2} <= types or not any(_cpu_populated(r) for r in records) or not dimms:
        return 0
    return 1 + dimms


def dmidecode_output(header: list[str], records: list[DmiRecord]) -> str:
    """What `dmidecode` prints: the header, a blank line, each record and a blank line."""
    parts = ["\n".join(header), ""]
    for record in records:
        parts.append("\n".join(record.lines))
        parts.append("")
    return "\n".join(parts) + "\n"


def build_cpus(records: list[DmiRecord], sockets: int) -> list[DmiRecord]:
    template = next(r for r in records if _cpu_populated(r))
    cpus = []
    for i in range(sockets):
        cpu = template.with_handle(0x0400 + i)
        cpu.set("Socket Designation", f"CPU{i + 1}")
        if cpu.get("Serial Number") not in (None, "Not Specified"):
            cpu.set("Serial Number", _serial("cpu", i, 16))
        cpus.append(cpu)
    return cpus


def build_memory(records: list[DmiRecord], shape: Shape) -> list[DmiRecord]:
    """Per socket one type 16 array and its share of the type 17 devices, all populated."""
    array = next((r for r in records if r.dmi_type == 16), None)
    dimm = next(r for r in records if _dimm_populated(r))
    per_socket = shape.dimms // shape.sockets
    out: list[DmiRecord] = []
    for s in range(shape.sockets):
        array_handle = 0x1000 + s
        if array is not None:
            arr = array.with_handle(array_handle)
            arr.set("Number Of Devices", str(per_socket))
            out.append(arr)
        for k in range(per_socket):
            i = s * per_socket + k
            channel, slot = divmod(k, 2)
            device = dimm.with_handle(0x1100 + i)
            device.set("Array Handle", f"0x{array_handle:04X}")
            device.set("Locator", f"CPU{s + 1}_DIMM_{chr(ord('A') + channel % 26)}{slot + 1}")
            device.set("Bank Locator", f"P{s}_Node{s}_Channel{channel}_Dimm{slot}")
            device.set("Serial Number", _serial("dimm", i, 8))
            device.set(
                "Asset Tag", f"CPU{s + 1}_DIMM_{chr(ord('A') + channel % 26)}{slot + 1}_AssetTag"
            )
            out.append(device)
    return out


# -- lspci and sysfs ---------------------------------------------------------------------------

_ID = re.compile(r"\[([0-9a-fA-F]{4})\]\s*$")


@dataclass(slots=True)
class PciRecord:
    pairs: list[tuple[str, str]]

    def get(self, tag: str) -> str | None:
        return next((v for t, v in self.pairs if t == tag), None)

    def ident(self, tag: str) -> str | None:
        match = _ID.search(self.get(tag) or "")
        return match.group(1).lower() if match else None


def split_lspci(text: str) -> list[PciRecord]:
    records: list[PciRecord] = []
    pairs: list[tuple[str, str]] = []
    for line in [*text.splitlines(), ""]:
        tag, sep, value = line.partition(":")
        if sep and line.strip() and "\t" in line:
            pairs.append((tag.strip(), value.strip()))
        elif not line.strip() and pairs:
            if any(t == "Slot" for t, _ in pairs) and all(
                _ID.search(v) for t, v in pairs if t in ("Class", "Vendor", "Device")
            ):
                records.append(PciRecord(pairs))
            pairs = []
    return records


def _pci_kind(record: PciRecord) -> str:
    cls = record.ident("Class") or ""
    if record.ident("Vendor") == "10de" and cls in ("0300", "0302"):
        return "gpu"
    return {"0108": "nvme", "0107": "hba", "0106": "hba", "0104": "hba", "0200": "nic"}.get(
        cls, "bridge" if cls == "0604" else "other"
    )


def _lspci_score(text: str) -> int:
    return len(split_lspci(text))


@dataclass(slots=True)
class PciFunction:
    address: str
    kind: str
    socket: int
    record: PciRecord
    link: tuple[str, int] | None


class PciAllocator:
    """Addresses on a host with one PCI domain per socket: bus 00 for integrated functions and
    root ports, one bus per endpoint from 01 up."""

    def __init__(self) -> None:
        self._bus0: dict[int, int] = {}
        self._bus: dict[int, int] = {}

    def on_bus0(self, socket: int) -> str:
        n = self._bus0.get(socket, 0)
        self._bus0[socket] = n + 1
        bus, rest = 0xFF - (n // 256 - 1) if n >= 256 else 0, n % 256
        device, function = divmod(rest, 8)
        return f"{socket:04x}:{bus:02x}:{device:02x}.{function}"

    def endpoint(self, socket: int) -> str:
        n = self._bus.get(socket, 0) + 1
        self._bus[socket] = n
        if n >= 0xF0:
            raise BigHostError(f"socket {socket} has more than {0xEF} endpoint buses")
        return f"{socket:04x}:{n:02x}:00.0"


def build_pci(seeds: list[Seed], shape: Shape) -> list[PciFunction]:
    pool: dict[str, list[PciRecord]] = {}
    seen: set[tuple[str | None, ...]] = set()
    for seed in seeds:
        for record in split_lspci(seed.text):
            key = (record.ident("Vendor"), record.ident("Device"), record.ident("Class"))
            if key not in seen:
                seen.add(key)
                pool.setdefault(_pci_kind(record), []).append(record)
    if shape.gpus and not pool.get("gpu"):
        raise BigHostError("no lspci fixture has an NVIDIA GPU record to clone")
    filler = pool.get("other") or pool.get("bridge") or next(iter(pool.values()), [])
    if not filler:
        raise BigHostError("the lspci fixtures hold no record")
    bridge = (pool.get("bridge") or filler)[0]
    alloc = PciAllocator()
    functions: list[PciFunction] = []

    def endpoints(kind: str, count: int) -> None:
        templates = pool.get(kind)
        if not templates:
            return  # e.g. no NVMe controller in any lspci fixture: those drives get no function
        for i in range(count):
            socket = i * shape.sockets // max(count, 1)
            link = PCI_LINKS.get(kind)
            functions.append(PciFunction(alloc.on_bus0(socket), "bridge", socket, bridge, link))
            record = templates[i % len(templates)]
            functions.append(PciFunction(alloc.endpoint(socket), kind, socket, record, link))

    endpoints("gpu", shape.gpus)
    endpoints("nvme", shape.nvme)
    endpoints("hba", shape.hbas())
    endpoints("nic", shape.nics())
    rest = shape.pci - len(functions)
    for i in range(rest):
        socket = i * shape.sockets // max(rest, 1)
        functions.append(
            PciFunction(alloc.on_bus0(socket), "other", socket, filler[i % len(filler)], None)
        )
    return sorted(functions, key=lambda f: f.address)


# The driver's own list as Debian ships it (fixtures/README.md), for the nvidia_driver section.
SUPPORTED_GPUS_GZ = REPO / "fixtures/supported-gpus/debian-trixie-nvidia-driver-550.163.01.json.gz"


def nvidia_image_files(cap: CaptureBuilder, gpu_buses: list[str], version: str) -> None:
    """What a bee image with NVIDIA holds: both flavours' manifests, the driver's list, the
    loader's record, and the GPUs the loaded driver registered."""
    nvidia = bee_supported_gpus.NVIDIA_DIR
    for flavour in ("open", "proprietary"):
        manifest = {"version": version, "flavour": flavour, "modules": ["nvidia.ko"]}
        cap.file(f"{nvidia}/{flavour}/manifest.json", json.dumps(manifest) + "\n")
    listed = gzip.decompress(SUPPORTED_GPUS_GZ.read_bytes()).decode("utf-8")
    cap.file(bee_supported_gpus.SUPPORTED_GPUS, listed)
    cap.file(bee_supported_gpus.LOADER_RECORD, "status=loaded\nflavour=open\nmessage=\n")
    cap.dirs[bee_supported_gpus.PROC_GPUS] = sorted(gpu_buses)


def lspci_output(functions: list[PciFunction]) -> str:
    blocks = []
    for function in functions:
        lines = [f"Slot:\t{function.address}"]
        for tag, value in function.record.pairs:
            if tag in ("Slot", "PhySlot", "IOMMUGroup", "Driver", "Module"):
                continue
            shown = str(function.socket) if tag == "NUMANode" else value
            lines.append(f"{tag}:\t{shown}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


def pci_sysfs(functions: list[PciFunction], cap: CaptureBuilder) -> None:
    base = "/sys/bus/pci/devices"
    cap.dirs[base] = [f.address for f in functions]
    for group, function in enumerate(functions):
        record, path = function.record, f"{base}/{function.address}"
        class_id = (record.ident("Class") or "ff00") + (record.get("ProgIf") or "00").lower()
        values = {
            "class": f"0x{class_id}",
            "vendor": f"0x{record.ident('Vendor')}",
            "device": f"0x{record.ident('Device')}",
            "subsystem_vendor": f"0x{record.ident('SVendor') or '0000'}",
            "subsystem_device": f"0x{record.ident('SDevice') or '0000'}",
            "revision": f"0x{(record.get('Rev') or '00').lower()}",
            "numa_node": str(function.socket),
        }
        if function.link is not None:
            speed, width = function.link
            values.update(
                current_link_speed=speed,
                max_link_speed=speed,
                current_link_width=str(width),
                max_link_width=str(width),
            )
        for name, value in values.items():
            cap.file(f"{path}/{name}", value + "\n")
        cap.links[f"{path}/iommu_group"] = f"../../../kernel/iommu_groups/{group}"
        driver = PCI_DRIVERS.get(function.kind) or record.get("Driver")
        if function.kind == "hba":
            driver = "mpt3sas" if record.ident("Class") == "0107" else "ahci"
        if driver:
            cap.links[f"{path}/driver"] = f"../../../bus/pci/drivers/{driver}"


# -- network -----------------------------------------------------------------------------------

NET_FIXTURE_CASE = "firecracker-virtio-net"  # fixtures/{ethtool,ethtool-i,ethtool-permaddr,ip-addr}


def network_capture(functions: list[PciFunction], cap: CaptureBuilder, fixtures: Path) -> int:
    """One port per NIC function: sysfs, `ip -d -j addr show` and the three ethtool calls,
    cloned from this build host's captured virtio port (fixtures/*/firecracker-virtio-net*)."""
    try:
        info = (fixtures / "ethtool-i" / f"{NET_FIXTURE_CASE}.txt").read_text(encoding="utf-8")
        settings = (fixtures / "ethtool" / f"{NET_FIXTURE_CASE}.txt").read_text(encoding="utf-8")
        links = json.loads((fixtures / "ip-addr" / f"{NET_FIXTURE_CASE}-d.json").read_text())
    except (OSError, ValueError) as exc:
        raise BigHostError(f"no network fixture to clone: {exc}") from None
    template = next((link for link in links if link.get("ifname") == "eth0"), None)
    if template is None:
        raise BigHostError("the ip-addr fixture has no eth0 to clone")
    names, entries = [], [link for link in links if link.get("ifname") == "lo"]
    for n, function in enumerate(f for f in functions if f.kind == "nic"):
        name, mac = f"ens{n + 1}", f"02:be:e0:00:{n // 256:02x}:{n % 256:02x}"
        names.append(name)
        base = f"/sys/class/net/{name}"
        cap.links[base] = (
            f"../../devices/pci{function.address[:4]}:00/{function.address}/net/{name}"
        )
        cap.links[f"{base}/device"] = f"../../../{function.address}"
        cap.links[f"{base}/device/driver"] = "../../../../bus/pci/drivers/virtio-pci"
        values = {"address": mac, "type": "1", "operstate": "up", "carrier": "1", "mtu": "9000",
                  "speed": "100000", "duplex": "full", "flags": "0x1003"}  # fmt: skip
        for key, value in values.items():
            cap.file(f"{base}/{key}", value + "\n")
        entry = copy.deepcopy(template)
        entry.update(ifname=name, ifindex=n + 2, address=mac, parentbus="pci")
        entry.update(parentdev=function.address, addr_info=[])
        entries.append(entry)
        bus = "bus-info: " + function.address
        cap.command(["ethtool", "-i", name], re.sub(r"(?m)^bus-info:.*$", bus, info))
        cap.command(["ethtool", "-P", name], f"Permanent address: {mac}\n")
        cap.command(["ethtool", name], settings.replace("eth0", name))
    cap.dirs["/sys/class/net"] = sorted(["lo", *names])
    cap.links["/sys/class/net/lo"] = "../../devices/virtual/net/lo"
    cap.command(["ip", "-d", "-j", "addr", "show"], json.dumps(entries) + "\n")
    return len(names)


# -- storage -----------------------------------------------------------------------------------


def _lsblk_disks(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)
    return [
        d for d in data.get("blockdevices") or [] if isinstance(d, dict) and d.get("type") == "disk"
    ]


def _lsblk_score(text: str) -> int:
    disks = _lsblk_disks(text)
    return (1 if disks else 0) + sum(
        1 for d in disks if str(d.get("name", "")).startswith(("sd", "nvme"))
    )


def _smart_protocol(text: str) -> str:
    data = json.loads(text)
    if not isinstance(data.get("smartctl"), dict) or "devices" in data:
        return ""
    return str((data.get("device") or {}).get("protocol") or "")


def _disk_letters(i: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the kernel's sd naming."""
    name = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        name = chr(ord("a") + rest) + name
    return name


@dataclass(frozen=True, slots=True)
class DiskPlan:
    name: str  # sda, nvme0n1
    protocol: str  # ATA | SCSI | NVMe
    smart_type: str  # sat | scsi | nvme
    serial: str
    hctl: str | None


def plan_disks(shape: Shape, protocols: Sequence[str]) -> list[DiskPlan]:
    plans = []
    for i in range(shape.disks):
        protocol = protocols[i % len(protocols)]
        plans.append(
            DiskPlan(
                name=f"sd{_disk_letters(i)}",
                protocol=protocol,
                smart_type="sat" if protocol == "ATA" else "scsi",
                serial=_serial("disk", i, 12),
                hctl=f"{i // DISKS_PER_HBA}:0:{i % DISKS_PER_HBA}:0",
            )
        )
    for i in range(shape.nvme):
        plans.append(
            DiskPlan(
                name=f"nvme{i}n1",
                protocol="NVMe",
                smart_type="nvme",
                serial=_serial("nvme", i, 14),
                hctl=None,
            )
        )
    return plans


def lsblk_output(plans: list[DiskPlan], seed: Seed) -> str:
    disks = _lsblk_disks(seed.text)
    sata = next((d for d in disks if str(d.get("name", "")).startswith("sd")), disks[0])
    nvme = next((d for d in disks if str(d.get("name", "")).startswith("nvme")), disks[0])
    columns = [c.lower() for c in bee_lsblk.COLUMNS.split(",")]
    nodes = []
    for i, plan in enumerate(plans):
        template = nvme if plan.protocol == "NVMe" else sata
        values: dict[str, Any] = {
            "name": plan.name,
            "kname": plan.name,
            "path": f"/dev/{plan.name}",
            "type": "disk",
            "serial": plan.serial,
            "wwn": f"0x5000c500{i:08x}",
            "tran": {"NVMe": "nvme", "ATA": "sata", "SCSI": "sas"}[plan.protocol],
            "hctl": plan.hctl,
            "pkname": None,
            "fstype": None,
            "mountpoint": None,
        }
        node = {c: values[c] if c in values else template.get(c) for c in columns}
        nodes.append(node)
    return json.dumps({"blockdevices": nodes}, indent=3) + "\n"


def smartctl_scan_output(plans: list[DiskPlan], template: dict[str, Any]) -> str:
    devices = []
    for plan in plans:
        dev = (
            f"/dev/{plan.name.removesuffix('n1')}"
            if plan.protocol == "NVMe"
            else f"/dev/{plan.name}"
        )
        info = f"{dev} [SAT]" if plan.smart_type == "sat" else dev
        devices.append(
            {"name": dev, "info_name": info, "type": plan.smart_type, "protocol": plan.protocol}
        )
    header = copy.deepcopy(template.get("smartctl") or {})
    header.update(argv=list(bee_smartctl.SCAN_ARGV), exit_status=0)
    document = {
        "json_format_version": template.get("json_format_version", [1, 0]),
        "smartctl": header,
        "devices": devices,
    }
    return json.dumps(document, indent=2) + "\n"


def smartctl_device_output(
    plan: DiskPlan, template: dict[str, Any], index: int
) -> tuple[list[str], str, int]:
    dev = f"/dev/{plan.name}"
    argv = ["smartctl", "-j", "-a", "-d", plan.smart_type, dev]
    data = copy.deepcopy(template)
    smart = data.setdefault("smartctl", {})
    smart["argv"] = argv
    info = f"{dev} [SAT]" if plan.smart_type == "sat" else dev
    data["device"] = {
        "name": dev,
        "info_name": info,
        "type": plan.smart_type,
        "protocol": plan.protocol,
    }
    data["serial_number"] = plan.serial
    if isinstance(data.get("wwn"), dict):
        data["wwn"] = {"naa": 5, "oui": 0x000C50, "id": 0x100000000 + index}
    if "logical_unit_id" in data:
        data["logical_unit_id"] = f"0x5000c500{index:08x}"
    rc = int(smart.get("exit_status", 0) or 0)
    return argv, json.dumps(data, indent=2) + "\n", rc


# -- BMC, GPUs, host ---------------------------------------------------------------------------

_FRU = re.compile(r"^FRU Device Description\s*:\s*(?P<name>.*?)\s*\(ID (?P<id>\d+)\)\s*$")


def split_fru(text: str) -> list[tuple[str, int, list[str]]]:
    """(name, FRU id, lines) per FRU device of `ipmitool fru`."""
    blocks: list[tuple[str, int, list[str]]] = []
    for line in text.splitlines():
        match = _FRU.match(line)
        if match:
            blocks.append((match.group("name"), int(match.group("id")), [line]))
        elif blocks:
            blocks[-1][2].append(line)
    return blocks


def _is_psu(lines: list[str]) -> bool:
    """Whether the agent's own FRU parser takes this FRU device for a power supply."""
    return bool(bee_ipmitool.parse("\n".join(lines) + "\n").power_supplies)


def _fru_score(text: str) -> int:
    return sum(1 for _, _, lines in split_fru(text) if _is_psu(lines))


def fru_output(seed: Seed, psus: int) -> str:
    blocks = split_fru(seed.text)
    others = [b for b in blocks if not _is_psu(b[2])]
    supplies = [b for b in blocks if _is_psu(b[2])]
    used = {fru_id for _, fru_id, _ in others}
    out: list[list[str]] = [list(lines) for _, _, lines in others]
    next_id = max([*used, *(i for _, i, _ in supplies), 0]) + 1
    for k in range(psus):
        name, fru_id, lines = supplies[k % len(supplies)]
        lines = list(lines)
        if k >= len(supplies):
            fru_id, next_id = next_id, next_id + 1
            name = f"PS{k + 1}"
        lines[0] = f"FRU Device Description : {name} (ID {fru_id})"
        for i, line in enumerate(lines):
            key, sep, _ = line.partition(":")
            if sep and key.strip() in ("Board Serial", "Product Serial"):
                lines[i] = f"{key}: {_serial('psu', k, 14)}"
        out.append(lines)
    return "\n".join("\n".join(b).rstrip("\n") + "\n" for b in out)


_GPU = re.compile(r"(?s)(\t*<gpu id=\"[^\"]*\">.*?</gpu>\n?)")


def _nvidia_score(text: str) -> int:
    return len(_GPU.findall(text))


def nvidia_output(seed: Seed, buses: list[str]) -> str:
    """The seed's document with its <gpu> elements replaced by one clone per bus address."""
    found = list(_GPU.finditer(seed.text))
    template = found[0].group(1)
    head, tail = seed.text[: found[0].start()], seed.text[found[-1].end() :]
    gpus = []
    for i, address in enumerate(buses):
        domain, bus, devfn = address.split(":")
        device = devfn.split(".")[0]
        bus_id = f"{int(domain, 16):08X}:{bus.upper()}:{devfn.upper()}"
        replacements = {
            "pci_bus": bus.upper(),
            "pci_device": device.upper(),
            "pci_domain": f"{int(domain, 16):04X}",
            "pci_bus_id": bus_id,
            "uuid": f"GPU-{uuid.uuid5(uuid.NAMESPACE_OID, f'bee-bighost-gpu-{i}')}",
            "serial": str(1650000000000 + i),
            "minor_number": str(i),
            "module_id": str(i + 1),
        }
        block = re.sub(r'<gpu id="[^"]*">', f'<gpu id="{bus_id}">', template, count=1)
        for tag, value in replacements.items():
            block = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", block, count=1)
        gpus.append(block)
    head = re.sub(
        r"<attached_gpus>\d+</attached_gpus>", f"<attached_gpus>{len(buses)}</attached_gpus>", head
    )
    return head + "".join(gpus) + tail


def driver_version(xml: str) -> str:
    match = re.search(r"<driver_version>([^<]+)</driver_version>", xml)
    return match.group(1).strip() if match else "0.0"


# -- the capture directory ---------------------------------------------------------------------


@dataclass(slots=True)
class CaptureBuilder:
    """The content of a bee-capture/1 directory, written in one go."""

    delays: dict[str, float]
    commands: list[tuple[list[str], str, int]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def command(self, argv: Sequence[str], stdout: str, returncode: int = 0) -> None:
        for arg in argv:
            if not arg or any(c in arg for c in " '\"\\$`\n\t"):
                raise BigHostError(f"argument {arg!r} cannot be served by a shell shim")
        self.commands.append((list(argv), stdout, returncode))

    def file(self, path: str, text: str) -> None:
        self.files[path] = text

    def write(self, out: Path, meta: dict[str, Any]) -> None:
        """Into out.partial, then renamed: a half-written host never replaces a whole one."""
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        (partial / "commands").mkdir(parents=True)
        entries = []
        for number, (argv, stdout, rc) in enumerate(self.commands):
            names = {}
            for stream, text in (("stdout", stdout), ("stderr", "")):
                names[stream] = f"commands/{number:03d}.{stream}"
                (partial / names[stream]).write_text(text, encoding="utf-8")
            entries.append(
                {
                    "argv": argv,
                    "returncode": rc,
                    "stdout": names["stdout"],
                    "stderr": names["stderr"],
                    "duration_s": self.delays.get(argv[0], 0.0),
                    "timed_out": False,
                    "stdout_truncated": False,
                    "stderr_truncated": False,
                    "not_found": False,
                    "error": None,
                }
            )
        files = {}
        for path, text in sorted(self.files.items()):
            name = "fs" + os.path.normpath("/" + path)
            target = partial / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            files[path] = name
        manifest = {
            "format": bee_capture.FORMAT,
            **meta,
            "commands": entries,
            "files": files,
            "dirs": dict(sorted(self.dirs.items())),
            "links": dict(sorted(self.links.items())),
        }
        (partial / bee_capture.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)


def _serial(kind: str, index: int, length: int) -> str:
    digest = hashlib.sha256(f"bee-bighost/{kind}/{index}".encode()).hexdigest().upper()
    return digest[:length]


@dataclass(frozen=True, slots=True)
class Seeds:
    dmidecode: Seed
    lspci: list[Seed]
    lsblk: Seed
    smartctl: list[Seed]  # one per protocol (ATA, SCSI), at least one
    nvme_id_ctrl: Seed
    nvme_smart_log: Seed
    ipmitool_fru: Seed
    nvidia_smi: Seed
    ipmitool_mc: Seed
    ipmitool_lan: Seed
    ipmitool_sel: Seed
    ipmitool_sdr: Seed
    kernel_log: Seed
    nvlink: Seed

    def paths(self) -> dict[str, list[str]]:
        def rel(seed: Seed) -> str:
            try:
                return str(seed.path.relative_to(REPO))
            except ValueError:
                return str(seed.path)

        return {
            "dmidecode": [rel(self.dmidecode)],
            "lspci": [rel(s) for s in self.lspci],
            "lsblk": [rel(self.lsblk)],
            "smartctl": [rel(s) for s in self.smartctl],
            "nvme-id-ctrl": [rel(self.nvme_id_ctrl)],
            "nvme-smart-log": [rel(self.nvme_smart_log)],
            "ipmitool-fru": [rel(self.ipmitool_fru)],
            "nvidia-smi": [rel(self.nvidia_smi)],
            "ipmitool-mc-info": [rel(self.ipmitool_mc)],
            "ipmitool-lan": [rel(self.ipmitool_lan)],
            "ipmitool-sel": [rel(self.ipmitool_sel)],
            "ipmitool-sdr": [rel(self.ipmitool_sdr)],
            "kernel-log": [rel(self.kernel_log)],
            "nvidia-smi-nvlink": [rel(self.nvlink)],
        }


def _json_object_score(key: str) -> Callable[[str], int]:
    def score(text: str) -> int:
        data = json.loads(text)
        return 1 if isinstance(data, dict) and key in data else 0

    return score


def find_seeds(sources: Sources) -> Seeds:
    """One real output per tool, chosen by content (fails naming what no fixture has)."""
    lspci = [
        Seed(p, p.read_text(encoding="utf-8", errors="replace")) for p in sources.files("lspci")
    ]
    lspci = [s for s in lspci if _lspci_score(s.text)]
    if any(not is_handwritten(s.path) for s in lspci):
        lspci = [s for s in lspci if not is_handwritten(s.path)]
    if not lspci:
        raise BigHostError(f"no fixture in {sources.describe('lspci')} is `lspci -vmm -nn` output")
    smart = []
    for protocol in ("ATA", "SCSI"):
        try:
            smart.append(
                pick_seed(
                    sources,
                    "smartctl",
                    lambda t, p=protocol: int(_smart_protocol(t) == p),
                    f"a {protocol} disk",
                )
            )
        except BigHostError:
            continue
    if not smart:
        where = sources.describe("smartctl")
        raise BigHostError(f"no fixture in {where} is `smartctl -j -a` of an ATA or SCSI disk")
    return Seeds(
        dmidecode=pick_seed(sources, "dmidecode", _dmidecode_score, "a board, a CPU and a DIMM"),
        lspci=lspci,
        lsblk=pick_seed(sources, "lsblk", _lsblk_score, "a disk"),
        smartctl=smart,
        nvme_id_ctrl=pick_seed(sources, "nvme-id-ctrl", _json_object_score("sn"), "a controller"),
        nvme_smart_log=pick_seed(
            sources, "nvme-smart-log", _json_object_score("critical_warning"), "a smart log"
        ),
        ipmitool_fru=pick_seed(sources, "ipmitool-fru", _fru_score, "a power supply"),
        nvidia_smi=pick_seed(sources, "nvidia-smi", _nvidia_score, "a <gpu>"),
        ipmitool_mc=pick_seed(sources, "ipmitool-mc-info", _has("Firmware Revision"), "a BMC"),
        ipmitool_lan=pick_seed(sources, "ipmitool-lan", _has("MAC Address"), "a LAN channel"),
        ipmitool_sel=pick_seed(sources, "ipmitool-sel", _has(" | "), "an event"),
        ipmitool_sdr=pick_seed(sources, "ipmitool-sdr", _has("h | "), "an sdr elist sensor"),
        kernel_log=pick_seed(sources, "kernel-log", _has("Linux version"), "a boot"),
        nvlink=pick_seed(sources, "nvidia-smi-nvlink", _has("GB/s"), "an active link"),
    )


def healthy_sel(text: str) -> str:
    """The seed's SEL entries that are no fault: the big host is a healthy server."""
    keep = {e.raw for e in bee_ipmitool_sel.parse(text).entries if e.severity is None}
    return "".join(line for line in text.splitlines(keepends=True) if line.rstrip() in keep)


def healthy_sdr(text: str) -> str:
    """The seed's sensors that read as no fault."""
    keep = {s.raw for s in bee_ipmitool_sdr.parse(text).sensors if s.severity is None}
    return "".join(line for line in text.splitlines(keepends=True) if line.rstrip() in keep)


def _has(marker: str) -> Callable[[str], int]:
    return lambda text: int(marker in text)


def nvlink_output(seed: Seed, xml: str) -> str:
    """`nvidia-smi nvlink -s` for the host's GPUs: the seed's first GPU's link lines each."""
    links = next(g.links for g in bee_nvlink.parse(seed.text).gpus if g.links)
    lines = []
    for gpu in bee_nvidia_smi.parse(xml).gpus:
        lines.append(f"GPU {gpu.index}: {gpu.name} (UUID: {gpu.uuid})")
        lines += [f"\t {link.raw}" for link in links if link.active]
    return "\n".join(lines) + "\n"


def generate(
    shape: Shape,
    out: Path,
    *,
    fixtures: Path = DEFAULT_FIXTURES,
    raw: Sequence[Path] = (),
    delays: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the capture directory; returns its manifest's `bighost` block."""
    shape.check()
    seeds = find_seeds(Sources(fixtures, tuple(raw)))
    notes = [
        f"{path} is a hand-written fixture (no captured output had what is needed)"
        for paths in seeds.paths().values()
        for path in paths
        if is_handwritten(Path(path))
    ]
    cap = CaptureBuilder(delays=dict(DEFAULT_DELAYS | (delays or {})))

    # SMBIOS: board as captured, CPUs and DIMMs scaled.
    header, records = split_dmidecode(seeds.dmidecode.text)
    board = [r for r in records if r.dmi_type in (0, 1, 2, 3)]
    cpus = build_cpus(records, shape.sockets)
    smbios = board + cpus + build_memory(records, shape)
    # The PSUs are the BMC's: this SMBIOS table has no type 39.
    cap.command(list(bee_dmidecode.SMBIOS_ARGV), dmidecode_output(header, smbios))
    for dmi_type, pairs in bee_dmidecode.SYSFS_FIELDS.items():
        record = next((r for r in board if r.dmi_type == dmi_type), None)
        for key, name in pairs:
            value = record.get(key) if record else None
            if value is not None and name != "chassis_type":
                cap.file(f"{bee_dmidecode.SYSFS_DMI}/{name}", value + "\n")
    model = cpus[0].get("Version") or "CPU"
    threads = int(cpus[0].get("Thread Count") or 2)
    cpuinfo = []
    for n in range(shape.sockets * threads):
        cpuinfo.append(
            f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
            f"physical id\t: {n // threads}\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic"
            " sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx"
            " pdpe1gb rdtscp lm constant_tsc\n"
        )
    cap.file("/proc/cpuinfo", "\n".join(cpuinfo) + "\n")

    # PCIe.
    functions = build_pci(seeds.lspci, shape)
    cap.command(["lspci", "-vmm", "-nn", "-D"], lspci_output(functions))
    pci_sysfs(functions, cap)
    for kind, wanted in (("nvme", shape.nvme), ("hba", shape.hbas()), ("nic", shape.nics())):
        made = sum(1 for f in functions if f.kind == kind)
        if made < wanted:
            notes.append(f"no lspci fixture has a {kind} record: {wanted - made} fewer of them")

    network_capture(functions, cap, fixtures)
    cap.file("/proc/cmdline", "BOOT_IMAGE=/live/vmlinuz boot=live components quiet\n")

    # Storage.
    protocols = [_smart_protocol(s.text) for s in seeds.smartctl]
    templates = {p: json.loads(s.text) for p, s in zip(protocols, seeds.smartctl, strict=True)}
    plans = plan_disks(shape, protocols)
    cap.command(list(bee_lsblk.ARGV), lsblk_output(plans, seeds.lsblk))
    cap.command(list(bee_smartctl.SCAN_ARGV), smartctl_scan_output(plans, templates[protocols[0]]))
    for i, plan in enumerate(p for p in plans if p.protocol != "NVMe"):
        argv, text, rc = smartctl_device_output(plan, templates[plan.protocol], i)
        cap.command(argv, text, rc)
    id_ctrl = json.loads(seeds.nvme_id_ctrl.text)
    controllers = [f"nvme{i}" for i in range(shape.nvme)]
    cap.dirs["/sys/class/nvme"] = controllers
    for i, ctrl in enumerate(controllers):
        ident = dict(id_ctrl, sn=_serial("nvme", i, 14))
        cap.command(
            ["nvme", "id-ctrl", "-o", "json", f"/dev/{ctrl}"], json.dumps(ident, indent=2) + "\n"
        )
        cap.command(["nvme", "smart-log", "-o", "json", f"/dev/{ctrl}"], seeds.nvme_smart_log.text)
        cap.dirs[f"/sys/class/nvme/{ctrl}"] = [
            "address", "cntlid", "dev", "device", "firmware_rev", "model", f"{ctrl}n1",
            "serial", "state", "subsysnqn", "transport",
        ]  # fmt: skip

    # BMC.
    cap.command(list(bee_ipmitool.FRU_ARGV), fru_output(seeds.ipmitool_fru, shape.psus))
    cap.command(list(bee_bmc.MC_INFO_ARGV), seeds.ipmitool_mc.text)
    for channel in bee_bmc.LAN_CHANNELS:
        argv = ["ipmitool", "lan", "print", str(channel)]
        if channel == bee_bmc.LAN_CHANNELS[0]:
            cap.command(argv, seeds.ipmitool_lan.text)
        else:
            cap.command(argv, "", 1)  # "Invalid channel N" on stderr: not a LAN channel
    cap.command(list(bee_bmc.SEL_ARGV), healthy_sel(seeds.ipmitool_sel.text))
    cap.command(list(bee_bmc.SDR_ARGV), healthy_sdr(seeds.ipmitool_sdr.text))
    cap.command(list(bee_health.KERNEL_LOG_ARGV), seeds.kernel_log.text)
    dev = sorted(
        ["console", "ipmi0", "mem", "null", "nvidiactl", "zero"]
        + [f"nvidia{i}" for i in range(shape.gpus)]
        + controllers
        + [p.name for p in plans]
    )
    cap.dirs["/dev"] = dev

    # GPUs.
    gpu_buses = [f.address for f in functions if f.kind == "gpu"]
    xml = nvidia_output(seeds.nvidia_smi, gpu_buses)
    cap.command(list(bee_nvidia_smi.ARGV), xml)
    cap.command(list(bee_nvlink.ARGV), nvlink_output(seeds.nvlink, xml))
    proc_version = proc_version_beside(seeds.nvidia_smi.path)
    if proc_version is not None:
        cap.file(bee_nvidia_smi.PROC_VERSION, proc_version.read_text(encoding="utf-8"))
    else:
        cap.file(
            bee_nvidia_smi.PROC_VERSION,
            f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {driver_version(xml)}"
            "  Release Build  (bee-bighost)\n",
        )
        notes.append(f"{bee_nvidia_smi.PROC_VERSION} written from the XML's driver version")
    nvidia_image_files(cap, gpu_buses, driver_version(xml))

    # Boot: as the QEMU guest booted by OVMF with Secure Boot recorded it.
    booted = fixtures / "captures" / BOOT_SEED
    boot_manifest = json.loads((booted / bee_capture.MANIFEST).read_text(encoding="utf-8"))
    for path in (bee_boot.CMDLINE, bee_boot.SECURE_BOOT_VAR, bee_boot.LOCKDOWN):
        cap.file(path, (booted / boot_manifest["files"][path]).read_text(encoding="utf-8"))
    cap.dirs["/sys/firmware"] = boot_manifest["dirs"]["/sys/firmware"]

    # Host identity.
    name = f"bighost-{shape.gpus}g{shape.disks + shape.nvme}d"
    cap.file("/proc/sys/kernel/hostname", name + "\n")
    cap.file("/proc/sys/kernel/osrelease", "6.1.0-56-amd64\n")
    cap.file("/proc/sys/kernel/random/boot_id", f"{uuid.uuid5(uuid.NAMESPACE_OID, name)}\n")
    cap.file("/etc/machine-id", hashlib.md5(name.encode()).hexdigest() + "\n")

    meta = {
        "bighost": {
            "shape": asdict(shape),
            "seeds": seeds.paths(),
            "delays_s": cap.delays,
            "generator": "buildtools/bench/bighost.py",
            "notes": notes,
        }
    }
    cap.write(out, {"bee_version": "synthetic", "captured_at": None, **meta})
    return meta["bighost"]


# -- verification through the real agent -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    sockets: int | None
    dimm_slots: int | None
    sata_sas_disks: int | None
    nvme_disks: int | None
    gpus: int | None
    pci_functions: int | None
    psus: int | None


def _count(section: Any, key: str, keep: Callable[[Any], bool] = lambda _: True) -> int | None:
    if not isinstance(section, dict) or not isinstance(section.get(key), list):
        return None
    return sum(1 for item in section[key] if keep(item))


def _name(item: Any) -> str:
    return str(item.get("name") or "") if isinstance(item, dict) else ""


def count(document: dict[str, Any]) -> Counts:
    storage = document.get("storage")
    pcie = document.get("pcie")
    return Counts(
        sockets=_count(document.get("cpu"), "sockets"),
        dimm_slots=_count(document.get("memory"), "slots"),
        sata_sas_disks=_count(storage, "disks", lambda d: _name(d).startswith("sd")),
        nvme_disks=_count(storage, "disks", lambda d: _name(d).startswith("nvme")),
        gpus=_count(document.get("nvidia"), "gpus"),
        pci_functions=pcie.get("device_count") if isinstance(pcie, dict) else None,
        psus=_count(document.get("psu"), "power_supplies"),
    )


def expected_counts(shape: Shape) -> Counts:
    return Counts(
        sockets=shape.sockets,
        dimm_slots=shape.dimms,
        sata_sas_disks=shape.disks,
        nvme_disks=shape.nvme,
        gpus=shape.gpus,
        pci_functions=shape.pci,
        psus=shape.psus,
    )


def replay(capture_dir: Path) -> dict[str, Any]:
    """The document the real agent makes of the capture (in this process), as JSON reads it."""
    from bee.audit import run_audit
    from bee.serialize import dumps

    document = run_audit(bee_capture.ReplayRunner(capture_dir), mode="replay")
    return json.loads(dumps(document))


def problems(capture_dir: Path, shape: Shape, document: dict[str, Any] | None = None) -> list[str]:
    """Why the capture is not the host asked for; empty when it is."""
    if document is None:
        document = replay(capture_dir)
    found: list[str] = []
    manifest = json.loads((capture_dir / bee_capture.MANIFEST).read_text(encoding="utf-8"))
    captured = {tuple(c["argv"]) for c in manifest["commands"]}
    asked = {tuple(c["argv"]) for c in document.get("commands") or []}
    for argv in sorted(asked - captured):
        found.append(f"a collector asked for `{' '.join(argv)}`, which the generator does not make")
    for argv in sorted(captured - asked):
        found.append(f"no collector asked for `{' '.join(argv)}` (did its argv change?)")
    want, got = asdict(expected_counts(shape)), asdict(count(document))
    for key, value in want.items():
        if got[key] != value:
            found.append(f"{key}: the agent counted {got[key]}, expected {value}")
    return found


def _iter_counts(counts: Counts) -> Iterator[str]:
    for key, value in asdict(counts).items():
        yield f"{key}={value}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m buildtools.bench.bighost",
        description="Write a synthetic big GPU server as a bee capture directory (for --replay).",
    )
    parser.add_argument("--out", type=Path, required=True, help="capture directory to write")
    defaults = Shape()
    for name in ("gpus", "disks", "nvme", "dimms", "sockets", "pci", "psus"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name), metavar="N")
    parser.add_argument(
        "--fixtures", type=Path, default=DEFAULT_FIXTURES, help="real outputs to scale (fixtures/)"
    )
    parser.add_argument(
        "--raw",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also take seeds from a fixtures/capture.sh output directory (repeatable)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the replay through the agent"
    )
    args = parser.parse_args(argv)
    shape = Shape(
        **{
            n: getattr(args, n)
            for n in ("gpus", "disks", "nvme", "dimms", "sockets", "pci", "psus")
        }
    )
    try:
        info = generate(shape, args.out, fixtures=args.fixtures, raw=args.raw)
        print(
            f"bighost: wrote {args.out} from {sum(len(v) for v in info['seeds'].values())} fixtures"
        )
        if not args.no_verify:
            document = replay(args.out)
            counts = " ".join(_iter_counts(count(document)))
            print(f"bighost: the agent counts {counts}", flush=True)
            issues = problems(args.out, shape, document)
            for issue in issues:
                print(f"bighost: {issue}", file=sys.stderr)
            if issues:
                return 1
    except BigHostError as exc:
        print(f"bighost: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bighost: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bighost: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
