"""nvidia-smi -q -x: NVIDIA GPUs, with /proc/driver/nvidia as the fallback.

Skipped quietly when the driver is not loaded (/proc/driver/nvidia/version missing) or
nvidia-smi is not installed. The XML (DTD nvsmi_device_v11..v13 seen; parsed with stdlib
ElementTree, the DTD is never fetched) has one `<gpu id="00000000:07:00.0">` per GPU.
Missing values read `N/A`, `[N/A]`, `[Not Supported]`; a GPU in trouble shows
`[GPU requires reset]`, `[Unknown Error]` or `[GPU is lost]` in its fields. When the whole
document does not parse (cut short, an error printed in the middle), each complete `<gpu>`
element is parsed on its own, so one GPU that fell off the bus does not blank the others.
When nvidia-smi yields no GPU at all, it is asked again per GPU (`nvidia-smi -q -x -i <bdf>`,
bus ids from /proc/driver/nvidia/gpus), so the healthy GPUs still answer in full; a GPU that does
not answer keeps what /proc/driver/nvidia/gpus/<bdf>/information gives (model, UUID, VBIOS, bus
location) and, when others did answer, a problem entry.

`findings` reconciles with the pcie section: an NVIDIA display or 3D controller on the bus that
nvidia-smi does not report is a finding.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from typing import Any

from bee import document
from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector
from bee.runner import CommandResult, first_line
from bee.summary import counted
from bee.tools.dmidecode import is_placeholder

ARGV = ("nvidia-smi", "-q", "-x")
# Without persistence mode every call initialises each GPU (~1.5 s per GPU); 8-16 GPUs fit.
TIMEOUT_S = 60.0
PER_GPU_TIMEOUT_S = 20.0
PROC_VERSION = "/proc/driver/nvidia/version"
PROC_GPUS = "/proc/driver/nvidia/gpus"
NVIDIA_VENDOR_ID = "10de"
GPU_CLASS_IDS = ("0300", "0302")  # VGA compatible controller, 3D controller

MISSING = frozenset({"n/a", "[n/a]", "not supported", "[not supported]", "none", ""})
# Values that mean the GPU (not the field) is in trouble.
TROUBLE = ("requires reset", "unknown error", "gpu is lost", "not found")

_DTD = re.compile(r"nvsmi_device_v(\d+)\.dtd")
_DRIVER = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    index: int  # position in nvidia-smi's list (or the fallback's bus order)
    pci_address: str | None  # normalised like lspci -D: 0000:07:00.0
    pci_bus_id: str | None  # as nvidia-smi prints it: 00000000:07:00.0
    pci_device_id: str | None  # 4 hex digits (2330 for H100 SXM5)
    pci_subsystem_id: str | None  # 8 hex digits, subsystem device + vendor
    name: str | None
    brand: str | None
    architecture: str | None
    uuid: str | None
    serial: str | None
    board_part_number: str | None
    vbios_version: str | None
    minor_number: int | None  # /dev/nvidia<N>
    persistence_mode: bool | None
    mig_mode_current: str | None  # Enabled | Disabled
    mig_mode_pending: str | None
    pcie_link_gen_current: int | None
    pcie_link_gen_max: int | None
    pcie_link_width_current: int | None  # lanes
    pcie_link_width_max: int | None
    memory_total_mib: int | None
    ecc_mode_current: str | None  # Enabled | Disabled
    ecc_mode_pending: str | None
    ecc_volatile_correctable: int | None  # since the driver loaded
    ecc_volatile_uncorrectable: int | None
    ecc_aggregate_correctable: int | None  # over the GPU's life
    ecc_aggregate_uncorrectable: int | None
    retired_pages_single_bit: int | None  # pre-Ampere page retirement
    retired_pages_double_bit: int | None
    retired_pages_pending: bool | None
    remapped_rows_correctable: int | None  # Ampere and later row remapping
    remapped_rows_uncorrectable: int | None
    remapped_rows_pending: bool | None  # a reset is needed to apply a remap
    remapped_rows_failure: bool | None  # remapping failed: the GPU needs service
    power_limit_w: float | None  # the limit in force
    power_default_limit_w: float | None
    power_max_limit_w: float | None
    power_draw_w: float | None
    temperature_c: int | None
    problems: list[str]  # fields that read [GPU requires reset], [Unknown Error], ...
    # NVSwitch systems (HGX): <fabric><state> Not Started | In Progress | Completed, <status>
    # Success or an error; None ("N/A") elsewhere. The health section judges it.
    fabric_state: str | None = None
    fabric_status: str | None = None
    # Identity fields that are no identity ("0000000000000", "REDACTED"): raw value; field None.
    placeholders: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaSection:
    source: str  # nvidia-smi | nvidia-smi per GPU | procfs
    driver_version: str | None
    cuda_version: str | None
    attached_gpus: int | None  # what nvidia-smi says is attached; may exceed len(gpus)
    dtd_version: int | None  # nvsmi_device_v<N>.dtd
    gpus: list[Gpu] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- values -------------------------------------------------------------------------------


def _raw(node: ET.Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _trouble(value: str | None) -> bool:
    return value is not None and any(t in value.lower() for t in TROUBLE)


def _text(node: ET.Element | None, path: str) -> str | None:
    value = _raw(node, path)
    if value is None or value.lower() in MISSING or _trouble(value):
        return None
    return value


def _number(value: str | None) -> float | None:
    # "81920 MiB", "27 C", "500.00 W", "16x"
    if value is None:
        return None
    match = re.match(r"^\s*(-?\d+(?:\.\d+)?)", value)
    return float(match.group(1)) if match else None


def _int(node: ET.Element | None, path: str) -> int | None:
    number = _number(_text(node, path))
    return int(number) if number is not None else None


def _float(node: ET.Element | None, path: str) -> float | None:
    return _number(_text(node, path))


def _yes_no(node: ET.Element | None, path: str) -> bool | None:
    value = (_text(node, path) or "").lower()
    if value in ("yes", "enabled", "on", "true"):
        return True
    if value in ("no", "disabled", "off", "false"):
        return False
    return None


def _first_int(node: ET.Element | None, *paths: str) -> int | None:
    for path in paths:
        value = _int(node, path)
        if value is not None:
            return value
    return None


def _first_float(node: ET.Element | None, *paths: str) -> float | None:
    for path in paths:
        value = _float(node, path)
        if value is not None:
            return value
    return None


def _gpu_blocks(body: str) -> list[str]:
    """Every complete `<gpu ...>...</gpu>` in order, scanning forward only: the regex this
    replaced (`<gpu\\s[^>]*>.*?</gpu>`) was quadratic on many unclosed `<gpu ` tags."""
    blocks: list[str] = []
    at = 0
    while (start := body.find("<gpu", at)) >= 0:
        at = start + 4
        if at >= len(body) or not body[at].isspace():
            continue
        tag_end = body.find(">", at)
        end = body.find("</gpu>", tag_end + 1) if tag_end >= 0 else -1
        if end < 0:
            break  # no later start can be complete either
        blocks.append(body[start : end + len("</gpu>")])
        at = end + len("</gpu>")
    return blocks


def normalise_pci_address(bus_id: str | None) -> str | None:
    """00000000:07:00.0 (nvidia-smi) or 0000:07:00.0 -> 0000:07:00.0; VMD domains keep 5 digits."""
    if not bus_id:
        return None
    match = re.match(
        r"^\s*(?:([0-9A-Fa-f]{1,8}):)?([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})\.([0-7])\s*$", bus_id
    )
    if not match:
        return None
    domain = int(match.group(1) or "0", 16)
    bus, dev, fn = int(match.group(2), 16), int(match.group(3), 16), match.group(4)
    return f"{domain:04x}:{bus:02x}:{dev:02x}.{fn}"


def _ecc_total(node: ET.Element | None, scope: str, kind: str) -> int | None:
    """ECC counts of one scope (volatile | aggregate), kind correctable | uncorrectable.

    v11: <volatile><single_bit>..<total>3</total></single_bit><double_bit>..</double_bit>
    v12: <volatile><sram_correctable>0</..><sram_uncorrectable>0</..><dram_correctable>..
    newer v12/v13: sram_uncorrectable split into sram_uncorrectable_parity and _secded.
    None when the GPU reports none of them (no ECC, N/A).
    """
    base = node.find(f"ecc_errors/{scope}") if node is not None else None
    if base is None:
        return None
    legacy = _int(base, "single_bit/total" if kind == "correctable" else "double_bit/total")
    if legacy is not None:
        return legacy
    if kind == "correctable":
        parts = ["sram_correctable", "dram_correctable"]
    elif base.find("sram_uncorrectable") is not None:
        parts = ["sram_uncorrectable", "dram_uncorrectable"]
    else:
        parts = ["sram_uncorrectable_parity", "sram_uncorrectable_secded", "dram_uncorrectable"]
    numbers = [v for v in (_int(base, p) for p in parts) if v is not None]
    return sum(numbers) if numbers else None


def _device_id(value: str | None) -> str | None:
    # <pci_device_id>233010DE</pci_device_id>: device 2330, vendor 10de (0x prefix on Windows)
    digits = (value or "").lower().removeprefix("0x")
    return digits[:4] if re.fullmatch(r"[0-9a-f]{8}", digits) else None


def _problems(gpu: ET.Element) -> list[str]:
    found: list[str] = []
    for element in gpu.iter():
        value = (element.text or "").strip()
        if _trouble(value):
            entry = f"{element.tag}: {value}"
            if entry not in found:
                found.append(entry)
    return found[:20]


def parse_gpu(gpu: ET.Element, index: int) -> Gpu:
    bus_id = gpu.get("id") or _text(gpu, "pci/pci_bus_id")
    device_id = _text(gpu, "pci/pci_device_id")  # 233010DE: device 2330, vendor 10de
    link = gpu.find("pci/pci_gpu_link_info")
    power = gpu.find("gpu_power_readings")
    if power is None:
        power = gpu.find("power_readings")
    retired = gpu.find("retired_pages")
    remapped = gpu.find("remapped_rows")
    return Gpu(
        index=index,
        pci_address=normalise_pci_address(bus_id),
        pci_bus_id=bus_id,
        pci_device_id=_device_id(device_id),
        pci_subsystem_id=(_text(gpu, "pci/pci_sub_system_id") or "").lower().removeprefix("0x")
        or None,
        name=_text(gpu, "product_name"),
        brand=_text(gpu, "product_brand"),
        architecture=_text(gpu, "product_architecture"),
        uuid=_text(gpu, "uuid"),
        serial=_text(gpu, "serial"),
        board_part_number=_text(gpu, "board_part_number"),
        vbios_version=_text(gpu, "vbios_version"),
        minor_number=_int(gpu, "minor_number"),
        persistence_mode=_yes_no(gpu, "persistence_mode"),
        mig_mode_current=_text(gpu, "mig_mode/current_mig"),
        mig_mode_pending=_text(gpu, "mig_mode/pending_mig"),
        pcie_link_gen_current=_first_int(
            link, "pcie_gen/current_link_gen", "pcie_gen/device_current_link_gen"
        ),
        pcie_link_gen_max=_first_int(link, "pcie_gen/max_link_gen", "pcie_gen/max_device_link_gen"),
        pcie_link_width_current=_int(link, "link_widths/current_link_width"),
        pcie_link_width_max=_int(link, "link_widths/max_link_width"),
        memory_total_mib=_int(gpu, "fb_memory_usage/total"),
        ecc_mode_current=_text(gpu, "ecc_mode/current_ecc"),
        ecc_mode_pending=_text(gpu, "ecc_mode/pending_ecc"),
        ecc_volatile_correctable=_ecc_total(gpu, "volatile", "correctable"),
        ecc_volatile_uncorrectable=_ecc_total(gpu, "volatile", "uncorrectable"),
        ecc_aggregate_correctable=_ecc_total(gpu, "aggregate", "correctable"),
        ecc_aggregate_uncorrectable=_ecc_total(gpu, "aggregate", "uncorrectable"),
        retired_pages_single_bit=_int(retired, "multiple_single_bit_retirement/retired_count"),
        retired_pages_double_bit=_int(retired, "double_bit_retirement/retired_count"),
        retired_pages_pending=_first_yes_no(retired, "pending_retirement", "pending_blacklist"),
        remapped_rows_correctable=_int(remapped, "remapped_row_corr"),
        remapped_rows_uncorrectable=_int(remapped, "remapped_row_unc"),
        remapped_rows_pending=_yes_no(remapped, "remapped_row_pending"),
        remapped_rows_failure=_yes_no(remapped, "remapped_row_failure"),
        power_limit_w=_first_float(
            power, "current_power_limit", "enforced_power_limit", "power_limit"
        ),
        power_default_limit_w=_float(power, "default_power_limit"),
        power_max_limit_w=_float(power, "max_power_limit"),
        power_draw_w=_first_float(power, "power_draw", "instant_power_draw", "average_power_draw"),
        temperature_c=_int(gpu, "temperature/gpu_temp"),
        problems=_problems(gpu),
        fabric_state=_text(gpu, "fabric/state"),
        fabric_status=_text(gpu, "fabric/status"),
    )


def _without_placeholders(gpu: Gpu) -> Gpu:
    marks = {
        name: value
        for name in ("serial", "uuid", "board_part_number")
        if (value := getattr(gpu, name)) and is_placeholder(value)
    }
    return replace(gpu, placeholders=marks, **dict.fromkeys(marks)) if marks else gpu


def _first_yes_no(node: ET.Element | None, *paths: str) -> bool | None:
    for path in paths:
        value = _yes_no(node, path)
        if value is not None:
            return value
    return None


# -- parse --------------------------------------------------------------------------------


def _fromstring(text: str) -> ET.Element | None:
    try:
        return ET.fromstring(text)
    except (ET.ParseError, ValueError, RecursionError):
        return None


def _header(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>([^<]*)</{tag}>", text)
    if not match:
        return None
    value = match.group(1).strip()
    return None if value.lower() in MISSING or _trouble(value) else value


def parse(text: str) -> NvidiaSection:
    """`nvidia-smi -q -x`; never raises. A broken document keeps the GPUs that parse."""
    errors: list[str] = []
    start = text.find("<nvidia_smi_log")
    body = text[start:] if start >= 0 else text
    dtd = _DTD.search(text)
    root = _fromstring(body) if start >= 0 else None
    gpus: list[Gpu] = []
    if root is not None and root.tag == "nvidia_smi_log":
        for index, element in enumerate(root.findall("gpu")):
            gpus.append(_without_placeholders(parse_gpu(element, index)))
        driver, cuda = _text(root, "driver_version"), _text(root, "cuda_version")
        attached = _int(root, "attached_gpus")
    else:
        if start < 0:
            errors.append("no <nvidia_smi_log> document in the output")
        else:
            errors.append("nvidia-smi XML does not parse; kept the complete <gpu> elements")
        for block in _gpu_blocks(body):
            element = _fromstring(block)
            if element is not None:
                gpus.append(_without_placeholders(parse_gpu(element, len(gpus))))
        driver, cuda = _header(body, "driver_version"), _header(body, "cuda_version")
        attached_text = _header(body, "attached_gpus")
        attached = (
            int(attached_text)
            if attached_text and attached_text.isascii() and attached_text.isdigit()
            else None
        )
    if attached is not None and attached > len(gpus):
        errors.append(f"nvidia-smi says {attached} GPUs are attached but describes {len(gpus)}")
    return NvidiaSection(
        source="nvidia-smi",
        driver_version=driver,
        cuda_version=cuda,
        attached_gpus=attached,
        dtd_version=int(dtd.group(1)) if dtd else None,
        gpus=gpus,
        errors=errors,
    )


def parse_proc_information(text: str, index: int = 0) -> Gpu:
    """/proc/driver/nvidia/gpus/<bdf>/information: `Model: \t\t NVIDIA H100 80GB HBM3` lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and value.strip():
            values.setdefault(key.strip().lower(), value.strip())

    def get(key: str) -> str | None:
        value = values.get(key)
        return None if value is None or value.lower() in MISSING or _trouble(value) else value

    minor = get("device minor")
    bus = get("bus location")
    return Gpu(
        index=index,
        pci_address=normalise_pci_address(bus),
        pci_bus_id=bus,
        pci_device_id=None,
        pci_subsystem_id=None,
        name=get("model"),
        brand=None,
        architecture=None,
        uuid=get("gpu uuid"),
        serial=None,
        board_part_number=None,
        vbios_version=get("video bios"),
        minor_number=int(minor) if minor and minor.isascii() and minor.isdigit() else None,
        persistence_mode=None,
        mig_mode_current=None,
        mig_mode_pending=None,
        pcie_link_gen_current=None,
        pcie_link_gen_max=None,
        pcie_link_width_current=None,
        pcie_link_width_max=None,
        memory_total_mib=None,
        ecc_mode_current=None,
        ecc_mode_pending=None,
        ecc_volatile_correctable=None,
        ecc_volatile_uncorrectable=None,
        ecc_aggregate_correctable=None,
        ecc_aggregate_uncorrectable=None,
        retired_pages_single_bit=None,
        retired_pages_double_bit=None,
        retired_pages_pending=None,
        remapped_rows_correctable=None,
        remapped_rows_uncorrectable=None,
        remapped_rows_pending=None,
        remapped_rows_failure=None,
        power_limit_w=None,
        power_default_limit_w=None,
        power_max_limit_w=None,
        power_draw_w=None,
        temperature_c=None,
        problems=[],
    )


def driver_version_from_proc(text: str | None) -> str | None:
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..."
    # "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build ..."
    match = _DRIVER.search(text or "")
    return match.group(1) if match else None


# -- collect ------------------------------------------------------------------------------


def _failure(result: CommandResult) -> str:
    """One line for a failed nvidia-smi call; never quotes the XML it may have printed."""
    if result.timed_out or result.error or result.not_found:
        return result.describe_failure()
    detail = first_line(result.stderr) or (
        "" if "<nvidia_smi_log" in result.stdout else first_line(result.stdout)
    )
    suffix = f": {detail}" if detail else ""
    return f"{' '.join(result.argv)}: exit {result.returncode}{suffix}"


def _per_gpu(
    probe: Probe, driver: str | None, errors: list[str], *, hung: str | None
) -> NvidiaSection:
    """The whole call gave no GPU: ask nvidia-smi about each GPU the driver knows, by bus id.

    A GPU that fell off the bus breaks `nvidia-smi -q -x` for all; asked one by one, the
    healthy GPUs answer in full. Those that do not keep what /proc/driver/nvidia knows. After
    a hang (`hung`: why) nvidia-smi is not asked again and every GPU carries the hang.
    """
    gpus: list[Gpu] = []
    failed: dict[int, str] = {}
    header: NvidiaSection | None = None
    for entry in sorted(probe.list_dir(PROC_GPUS) or []):
        text = probe.read_text(f"{PROC_GPUS}/{entry}/information")
        # The directory is the driver's word that a GPU is there, even with no readable
        # information: it is listed by its bus id, so a failure below stays its own.
        gpu = parse_proc_information(text or "", len(gpus))
        if gpu.pci_address is None:
            gpu = replace(gpu, pci_address=normalise_pci_address(entry), pci_bus_id=entry)
        if hung is not None:
            gpu = replace(gpu, problems=[f"nvidia-smi hung before reading this GPU ({hung})"])
        else:
            result = probe.run((*ARGV, "-i", entry), timeout_s=PER_GPU_TIMEOUT_S, check=False)
            one = parse(result.stdout) if result.stdout.strip() else None
            if one is not None and one.gpus:
                gpu, header = replace(one.gpus[0], index=len(gpus)), header or one
            else:
                message = _failure(result)
                errors.append(message)
                probe.error(message)
                failed[len(gpus)] = message
        gpus.append(gpu)
    if header is not None:
        # Others answered, so these GPUs themselves are in trouble, not the tool.
        for index, message in failed.items():
            problem = f"nvidia-smi cannot read this GPU ({message})"
            gpus[index] = replace(gpus[index], problems=[*gpus[index].problems, problem])
    return NvidiaSection(
        source="nvidia-smi per GPU" if header is not None else "procfs",
        driver_version=(header.driver_version if header else None) or driver,
        cuda_version=header.cuda_version if header else None,
        attached_gpus=None,
        dtd_version=header.dtd_version if header else None,
        gpus=gpus,
        errors=errors,
    )


def collect(probe: Probe) -> NvidiaSection | None:
    version_text = probe.read_text(PROC_VERSION)
    if version_text is None:
        probe.note("NVIDIA driver not loaded (no /proc/driver/nvidia/version); skipped")
        return None
    driver = driver_version_from_proc(version_text)
    result = probe.run(ARGV, timeout_s=TIMEOUT_S, check=False)
    if result.not_found:
        return None
    errors: list[str] = [] if result.ok else [_failure(result)]
    # A failed call that printed no XML has said why in _failure; parsing adds nothing.
    has_xml = result.ok or "<nvidia_smi_log" in result.stdout
    section = parse(result.stdout) if result.stdout.strip() and has_xml else None
    if section is not None:
        errors.extend(section.errors)
    for message in errors:
        probe.error(message)
    if section is None or not section.gpus:
        # After a hang, asking again per GPU would only hang again: procfs alone then.
        return _per_gpu(probe, driver, errors, hung=errors[0] if result.timed_out else None)
    return NvidiaSection(
        source=section.source,
        driver_version=section.driver_version or driver,
        cuda_version=section.cuda_version,
        attached_gpus=section.attached_gpus,
        dtd_version=section.dtd_version,
        gpus=section.gpus,
        errors=errors,
    )


# -- findings -----------------------------------------------------------------------------


def _field(item: Any, name: str) -> Any:
    if isinstance(item, dict):
        return item.get(name)
    return getattr(item, name, None)


def _bus_gpus(pcie: Any) -> list[Any]:
    devices = _field(pcie, "devices")
    if not isinstance(devices, list | tuple):
        return []
    found = []
    for device in devices:
        vendor = str(_field(device, "vendor_id") or "").lower().removeprefix("0x")
        class_id = str(_field(device, "class_id") or "").lower().removeprefix("0x")
        if vendor == NVIDIA_VENDOR_ID and class_id[:4] in GPU_CLASS_IDS:
            found.append(device)
    return found


def findings(sections: dict[str, object]) -> list[Finding]:
    section = sections.get("nvidia")
    nvidia = section if isinstance(section, NvidiaSection) else None
    found: list[Finding] = []
    reported = {g.pci_address for g in nvidia.gpus if g.pci_address} if nvidia else set()
    for device in _bus_gpus(sections.get("pcie")):
        address = normalise_pci_address(str(_field(device, "address") or ""))
        if address is None or address in reported:
            continue
        label = _field(device, "device") or _field(device, "device_id") or "GPU"
        why = (
            "nvidia-smi does not report it"
            if nvidia is not None
            else "the NVIDIA driver is not loaded or nvidia-smi is missing"
        )
        found.append(
            Finding(
                source="nvidia",
                severity="critical" if nvidia is not None else "warning",
                subject=address,
                message=f"NVIDIA {label} at {address} is on the PCIe bus but {why}",
            )
        )
    for gpu in nvidia.gpus if nvidia else []:
        found.extend(_gpu_findings(gpu, unread=nvidia.source == "procfs"))
    found.extend(_duplicate_uuids(nvidia.gpus if nvidia else []))
    return found


def _duplicate_uuids(gpus: list[Gpu]) -> list[Finding]:
    """Two GPUs with one UUID: a cloned or misread identity; neither can be tracked."""
    by_uuid: dict[str, list[Gpu]] = {}
    for gpu in gpus:
        if gpu.uuid:
            by_uuid.setdefault(gpu.uuid, []).append(gpu)
    return [
        Finding(
            source="nvidia",
            severity="warning",
            subject=uuid,
            message=f"{len(same)} GPUs report the same UUID "
            f"({', '.join(g.pci_address or f'GPU {g.index}' for g in same)})",
        )
        for uuid, same in by_uuid.items()
        if len(same) > 1
    ]


def _gpu_findings(gpu: Gpu, *, unread: bool) -> list[Finding]:
    """unread: no nvidia-smi call read this GPU (only /proc/driver/nvidia listed it)."""
    subject = gpu.uuid or gpu.pci_address or f"GPU {gpu.index}"
    label = f"GPU {gpu.index} ({gpu.name or 'unknown'}, {gpu.pci_address or 'no bus id'})"
    # (severity, text, persistence): remapped rows, retired pages and aggregate ECC live in the
    # GPU's InfoROM and survive reboots; volatile ECC counts since the driver loaded.
    problems: list[tuple[str, str, str]] = []
    if gpu.problems:
        problems.append(("critical", "reports " + "; ".join(gpu.problems[:3]), "current"))
    elif unread:
        # Every call failed alike (the tool, not this GPU): unknown, never healthy.
        text = "health not read: nvidia-smi gave no data (see errors)"
        problems.append(("warning", text, "current"))
    if gpu.remapped_rows_failure:
        problems.append(("critical", "row remapping failed: the GPU needs service", "persistent"))
    if gpu.ecc_volatile_uncorrectable:
        text = f"{gpu.ecc_volatile_uncorrectable} uncorrectable ECC errors since boot"
        problems.append(("critical", text, "since_boot"))
    if gpu.remapped_rows_pending:
        problems.append(("warning", "a row remap is pending: reset the GPU", "persistent"))
    if gpu.retired_pages_pending:
        problems.append(("warning", "a page retirement is pending: reset the GPU", "persistent"))
    if gpu.ecc_aggregate_uncorrectable and not gpu.ecc_volatile_uncorrectable:
        text = f"{gpu.ecc_aggregate_uncorrectable} uncorrectable ECC errors in its life"
        problems.append(("warning", text, "persistent"))
    return [
        Finding(
            source="nvidia",
            severity=severity,  # type: ignore[arg-type]
            subject=subject,
            message=f"{label} {text}",
            persistence=persistence,  # type: ignore[arg-type]
        )
        for severity, text, persistence in problems
    ]


PARSERS = {"nvidia-smi": parse}


def summary(section: object) -> str:
    gpus = document.items(section, "gpus")
    if not gpus:
        return "GPUs: none reported"
    driver = document.text(section, "driver_version") or "?"
    return f"GPUs: {counted([document.text(g, 'name') or '?' for g in gpus])}, driver {driver}"


COLLECTORS = (
    Collector(
        name="nvidia",
        order=60,
        collects="NVIDIA GPUs: nvidia-smi -q -x, or /proc/driver/nvidia",
        collect=collect,
        findings=findings,
        summary=summary,
        parsers=PARSERS,
    ),
)
