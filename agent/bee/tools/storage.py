"""The storage section: lsblk for the disks, smartctl and nvme-cli for their health.

Flow: `lsblk` lists the whole disks; `smartctl -j --scan-open` lists what smartctl can open,
including disks that only a RAID controller can reach (`-d megaraid,N`, `cciss,N`, ...);
`/sys/class/nvme` lists the NVMe controllers. Then, at most MAX_WORKERS at a time,
`smartctl -j -a` runs per ATA/SCSI device and `nvme id-ctrl` + `nvme smart-log` per NVMe
controller. Each disk gets a health verdict (ok | warning | failing | unknown) with reasons a
person can act on without knowing SMART.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from bee import document
from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector
from bee.summary import human_bytes
from bee.tools import lsblk, nvme, smartctl
from bee.tools.dmidecode import is_placeholder
from bee.tools.lsblk import BlockChild, BlockDisk
from bee.tools.nvme import NvmeController, NvmeHealth
from bee.tools.smartctl import ScannedDevice, SmartReport

MAX_WORKERS = 8
Verdict = Literal["ok", "warning", "failing", "unknown"]

# Thresholds for a warning (not a failure): drives keep working past them, but a person should
# plan a replacement. Sources: NVMe base spec (percentage used may pass 100), common HDD
# operating limits (most are specified up to 60 °C; 65 °C and above is too hot for any).
ENDURANCE_WARNING_PCT = 90
TEMPERATURE_WARNING_C = 65

RAID_VOLUME_REASON = "a RAID controller's logical drive: see its member disks"

NVME_CONTROLLER = re.compile(r"^nvme(\d+)$")
NVME_NAMESPACE = re.compile(r"^nvme(\d+)(?:c\d+)?n(\d+)$")  # nvme0n1, nvme0c0n1 (multipath)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskHealth:
    verdict: Verdict
    reasons: list[str]
    source: str | None  # smartctl | nvme-cli | None (no health data)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvmeInfo:
    controller: str  # nvme0
    device: str  # /dev/nvme0
    namespaces: list[str]  # block devices of this controller: nvme0n1, ...
    identity: NvmeController | None  # nvme id-ctrl
    health: NvmeHealth | None  # nvme smart-log


@dataclass(frozen=True, slots=True, kw_only=True)
class Disk:
    name: str  # sda, nvme0n1; for a disk behind a RAID controller: bus0-megaraid,0
    path: str | None
    type: str | None  # lsblk TYPE (disk, rom, mpath), "raid-member" or "nvme-controller"
    model: str | None
    vendor: str | None
    serial: str | None
    wwn: str | None
    firmware: str | None
    size_bytes: int | None
    transport: str | None  # sata, sas, nvme, usb, ...
    hctl: str | None
    rotational: bool | None
    removable: bool | None
    read_only: bool | None
    is_boot_medium: bool
    behind_raid_controller: bool
    smartctl_device: str | None  # how smartctl reached it: "/dev/bus/0 -d megaraid,0"
    children: list[BlockChild]
    health: DiskHealth
    smart: SmartReport | None
    nvme: NvmeInfo | None
    # Identity strings that are no identity ("REDACTED", all zeros, "0123456789012"): kept here,
    # and the field itself is None.
    placeholders: dict[str, str] = field(default_factory=dict)
    # Not one of the machine's drives, so not counted as a disk (its members are, when RAID).
    is_raid_volume: bool = False
    is_removable_media: bool = False  # floppy, optical, USB stick, BMC virtual media
    seen_by: list[str] = field(default_factory=list)  # the listings that hold it: lsblk, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSection:
    disks: list[Disk] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # loop, zram, ram devices lsblk listed


# -- health -------------------------------------------------------------------------------


def smart_health(report: SmartReport) -> tuple[Verdict, list[str]]:
    """Verdict from a smartctl report (ATA, SCSI, or NVMe read through smartctl)."""
    if not report.has_data:
        detail = report.messages[0] if report.messages else ", ".join(report.exit_flags)
        return "unknown", [f"smartctl could not read the device ({detail or 'no data'})"]
    if not report.has_health:
        if report.smart_available is False:
            return "unknown", ["the device does not support SMART"]
        return "unknown", ["smartctl reports no SMART health for this device"]
    failing: list[str] = []
    warning: list[str] = []
    if report.smart_passed is False:
        failing.append("SMART overall health self-assessment FAILED: replace the disk")
    flags = set(report.exit_flags)
    if report.failing_attributes:
        failing.append(
            "SMART attributes at or below the failure threshold now: "
            + ", ".join(report.failing_attributes)
        )
    elif "prefail_attribute_below_threshold" in flags:
        failing.append("a pre-failure SMART attribute is at or below its threshold")
    if "disk_failing" in flags and report.smart_passed is not False:
        failing.append("smartctl reports the disk is failing")
    test = report.self_test
    if test is not None and test.passed is False:
        failing.append(f"the last self-test failed ({test.status or 'no detail'})")
    elif "self_test_log_has_errors" in flags:
        warning.append("the self-test log records failed tests")
    for count, what in (
        (report.reallocated_sectors, "reallocated sectors"),
        (report.pending_sectors, "sectors pending reallocation (unreadable)"),
        (report.offline_uncorrectable, "offline uncorrectable sectors"),
        (report.reported_uncorrectable, "uncorrectable errors reported to the host"),
        (report.sas_grown_defects, "grown defects (SAS)"),
        (report.scsi_uncorrected_read_errors, "uncorrected read errors (SAS)"),
        (report.scsi_uncorrected_write_errors, "uncorrected write errors (SAS)"),
        (report.scsi_uncorrected_verify_errors, "uncorrected verify errors (SAS)"),
        (report.nvme_media_errors, "media errors (NVMe)"),
        (report.udma_crc_errors, "interface CRC errors (check the cable or backplane)"),
    ):
        if count:
            warning.append(f"{count} {what}")
    if report.past_failing_attributes:
        warning.append(
            "SMART attributes were below the failure threshold in the past: "
            + ", ".join(report.past_failing_attributes)
        )
    elif "attribute_below_threshold_in_past" in flags:
        warning.append("a SMART attribute was below its threshold in the past")
    if "error_log_has_errors" in flags:
        warning.append("the device error log has entries")
    if report.nvme_critical_warning:
        failing.extend(_nvme_warning_reasons(report.nvme_critical_warning))
    used = report.nvme_percentage_used
    if used is not None and used >= ENDURANCE_WARNING_PCT:
        warning.append(f"{used}% of the rated write endurance is used")
    warning.extend(_temperature_reasons(report.temperature_c, report.temperature_trip_c))
    return _verdict(failing, warning)


def nvme_health(
    health: NvmeHealth | None, identity: NvmeController | None
) -> tuple[Verdict, list[str]]:
    if health is None or not health.has_health:
        # `{}`, or a layout this parser does not know: no health data is not healthy.
        return "unknown", ["nvme smart-log gave no health data"]
    failing = _nvme_warning_reasons(health.critical_warning)
    warning: list[str] = []
    spare, threshold = health.available_spare_pct, health.available_spare_threshold_pct
    if (
        spare is not None
        and threshold is not None
        and spare < threshold
        and not (health.critical_warning or 0) & 0x01
    ):
        failing.append(f"available spare {spare}% is below its threshold {threshold}%")
    used = health.percentage_used
    if used is not None and used >= 100:
        warning.append(f"the rated write endurance is used up ({used}%)")
    elif used is not None and used >= ENDURANCE_WARNING_PCT:
        warning.append(f"{used}% of the rated write endurance is used")
    if health.media_errors:
        warning.append(f"{health.media_errors} media errors (unrecovered data integrity errors)")
    limit = identity.warning_temperature_c if identity else None
    if not (health.critical_warning or 0) & 0x02:
        warning.extend(_temperature_reasons(health.temperature_c, limit))
    return _verdict(failing, warning)


_NVME_WARNING_TEXT = {
    "available_spare_below_threshold": "available spare is below its threshold: replace",
    "temperature_outside_threshold": "temperature is outside its threshold",
    "reliability_degraded": "reliability is degraded by media or internal errors: replace",
    "read_only": "the drive has put its media in read-only mode: replace",
    "volatile_memory_backup_failed": "the volatile memory backup failed",
    "persistent_memory_region_read_only": "the persistent memory region is read-only",
}


def _nvme_warning_reasons(value: int | None) -> list[str]:
    return [
        f"NVMe critical warning: {_NVME_WARNING_TEXT[name]}"
        for name in nvme.decode_critical_warning(value)
    ]


def _temperature_reasons(current: int | None, limit: int | None) -> list[str]:
    if current is None:
        return []
    if limit is not None and limit > 0:
        if current >= limit:
            return [f"temperature {current} °C is at or above the drive's limit of {limit} °C"]
        return []
    if current >= TEMPERATURE_WARNING_C:
        return [f"temperature {current} °C is too hot (warning from {TEMPERATURE_WARNING_C} °C)"]
    return []


def _verdict(failing: list[str], warning: list[str]) -> tuple[Verdict, list[str]]:
    if failing:
        return "failing", failing + warning
    if warning:
        return "warning", warning
    return "ok", []


# -- joining ------------------------------------------------------------------------------

T = TypeVar("T")


def _is_nvme(device: ScannedDevice) -> bool:
    return (device.type or "").lower() == "nvme" or (device.protocol or "").lower() == "nvme"


def _behind_controller(device: ScannedDevice) -> bool:
    # megaraid,N  sat+megaraid,N  cciss,N  areca,N/E  3ware,N  hpt,L/M/N  aacraid,H,L,ID ...
    return "," in (device.type or "")


def _smartctl_device(device: ScannedDevice) -> str:
    return f"{device.name} -d {device.type}" if device.type else device.name


def _nvme_controllers(probe: Probe, block: lsblk.BlockDevices | None) -> dict[str, list[str]]:
    """Controller name -> its namespaces' block device names."""
    controllers: dict[str, list[str]] = {}
    for entry in probe.list_dir("/sys/class/nvme") or []:
        if not NVME_CONTROLLER.match(entry):
            continue
        names = []
        for sub in probe.list_dir(f"/sys/class/nvme/{entry}") or []:
            match = NVME_NAMESPACE.match(sub)
            if match:
                names.append(f"nvme{match.group(1)}n{match.group(2)}")
        controllers[entry] = sorted(set(names))
    for disk in block.disks if block else []:
        match = NVME_NAMESPACE.match(disk.name)
        if not match or any(disk.name in names for names in controllers.values()):
            continue
        # No sysfs view (or a multipath head without controller links): nvmeXnY -> nvmeX.
        controllers.setdefault(f"nvme{match.group(1)}", []).append(disk.name)
    return controllers


def _result(probe: Probe, future: Future[T], what: str) -> T | None:
    try:
        return future.result()
    except Exception as exc:  # a parser bug must not lose the other disks
        probe.error(f"{what}: {type(exc).__name__}: {exc}")
        return None


def _run_all(probe: Probe, jobs: dict[str, Callable[[], T]]) -> dict[str, T | None]:
    if not jobs:
        return {}
    workers = min(MAX_WORKERS, len(jobs))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bee-storage") as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
    return {key: _result(probe, future, key) for key, future in futures.items()}


def collect(probe: Probe) -> StorageSection | None:
    block = lsblk.collect(probe)
    scan = smartctl.collect_scan(probe)
    controllers = _nvme_controllers(probe, block)
    if block is None and scan is None and not controllers:
        return None
    scanned = scan.devices if scan else []
    smart_devices = [d for d in scanned if not _is_nvme(d)]

    quiet = _no_smart_expected(block)
    jobs: dict[str, Callable[[], Any]] = {}
    for device in smart_devices:
        jobs[f"smartctl {_smartctl_device(device)}"] = lambda d=device: smartctl.collect_device(
            probe, d, expect_no_smart=d.name in quiet
        )
    for ctrl in controllers:
        jobs[f"nvme {ctrl}"] = lambda c=ctrl: nvme.collect_controller(probe, f"/dev/{c}")
    results = _run_all(probe, jobs)

    nvme_info: dict[str, NvmeInfo] = {}
    fallback: dict[str, Callable[[], Any]] = {}
    for ctrl, namespaces in controllers.items():
        identity, health = results.get(f"nvme {ctrl}") or (None, None)
        nvme_info[ctrl] = NvmeInfo(
            controller=ctrl,
            device=f"/dev/{ctrl}",
            namespaces=namespaces,
            identity=identity,
            health=health,
        )
        if health is None:  # nvme-cli missing or failed: ask smartctl, when it lists the device
            for device in scanned:
                if _is_nvme(device) and device.name == f"/dev/{ctrl}":
                    fallback[ctrl] = lambda d=device: smartctl.collect_device(probe, d)
    nvme_smart = _run_all(probe, fallback)

    reports: dict[str, SmartReport] = {}
    for device in smart_devices:
        report = results.get(f"smartctl {_smartctl_device(device)}")
        if isinstance(report, SmartReport):
            reports[_smartctl_device(device)] = report

    disks: list[Disk] = []
    matched: set[str] = set()  # smartctl devices that are one of lsblk's disks
    raid_present = any(_behind_controller(d) for d in smart_devices)
    for blk in block.disks if block else []:
        device_key = _scanned_for_block(blk, smart_devices, reports)
        if device_key:
            matched.add(device_key)
        report_key = device_key if device_key in reports else None
        report = reports.get(report_key) if report_key else None
        ctrl = _controller_of(blk.name, controllers)
        info = nvme_info.get(ctrl) if ctrl else None
        if report is None and ctrl in nvme_smart and isinstance(nvme_smart[ctrl], SmartReport):
            report = nvme_smart[ctrl]
        seen = ["lsblk", *(["smartctl"] if device_key else []), *(["sysfs"] if ctrl else [])]
        disks.append(_disk_from_block(blk, report, report_key, info, raid_present, seen=seen))

    # Every disk another tool lists and lsblk does not is kept, saying so: the ones smartctl
    # reaches through a RAID controller, and any other when lsblk failed, printed nothing or
    # missed it (a dying disk can hang lsblk's probing: it must not vanish from the audit).
    for device in smart_devices:
        key = _smartctl_device(device)
        if key in matched:
            continue
        behind = _behind_controller(device)
        missed = not behind and block is not None
        disks.append(_smartctl_only_disk(device, reports.get(key), behind=behind, missed=missed))

    listed = {d.name for d in disks}
    for ctrl, info in nvme_info.items():
        if not info.namespaces:  # no namespace block device (none attached, or all detached)
            disks.append(_bare_controller(info, nvme_smart.get(ctrl), name=ctrl))
        for namespace in info.namespaces:
            if namespace not in listed:  # in /sys/class/nvme, not in lsblk's list
                disks.append(_bare_controller(info, nvme_smart.get(ctrl), name=namespace))
    if block is None and disks:
        probe.note("lsblk gave no list: the disks are the ones smartctl and /sys/class/nvme list")
    return StorageSection(
        disks=[_without_placeholders(d) for d in disks], skipped=block.skipped if block else []
    )


def _without_placeholders(disk: Disk) -> Disk:
    marks = {
        name: value
        for name in ("serial", "model", "vendor", "wwn")
        if (value := getattr(disk, name)) and is_placeholder(value)
    }
    return replace(disk, placeholders=marks, **dict.fromkeys(marks)) if marks else disk


def _no_smart_expected(block: lsblk.BlockDevices | None) -> set[str]:
    """Device nodes where smartctl failing is normal: USB sticks, the boot medium."""
    return {
        disk.path or f"/dev/{disk.name}"
        for disk in (block.disks if block else [])
        if disk.is_boot_medium or disk.transport == "usb" or disk.removable
    }


def _controller_of(name: str, controllers: dict[str, list[str]]) -> str | None:
    for ctrl, names in controllers.items():
        if name in names:
            return ctrl
    return None


def _scanned_for_block(
    blk: BlockDisk, devices: list[ScannedDevice], reports: dict[str, SmartReport]
) -> str | None:
    """The smartctl device that is this block disk, whether or not smartctl could read it."""
    paths = {p for p in (blk.path, f"/dev/{blk.kname or blk.name}", f"/dev/{blk.name}") if p}
    for device in devices:
        if device.name in paths and not _behind_controller(device):
            return _smartctl_device(device)
    # A disk the controller passes through (JBOD) is also listed as megaraid,N: same serial.
    if blk.serial:
        for device in devices:
            key = _smartctl_device(device)
            report = reports.get(key)
            if report is not None and report.serial == blk.serial:
                return key
    return None


def _health(
    report: SmartReport | None,
    info: NvmeInfo | None,
    *,
    disk_type: str | None,
    raid_volume: bool = False,
    removable_media: bool = False,
    is_boot_medium: bool = False,
) -> DiskHealth:
    if info is not None and info.health is not None:
        verdict, reasons = nvme_health(info.health, info.identity)
        return DiskHealth(verdict=verdict, reasons=reasons, source="nvme-cli")
    if report is not None:
        verdict, reasons = smart_health(report)
        if verdict == "unknown" and raid_volume:
            reasons.append(RAID_VOLUME_REASON)
        return DiskHealth(verdict=verdict, reasons=reasons, source="smartctl")
    if is_boot_medium:
        reason = "the medium bee booted from; no SMART data"
    elif raid_volume:
        reason = RAID_VOLUME_REASON
    elif disk_type == "rom":
        reason = "an optical drive; no SMART data"
    elif removable_media:
        reason = "removable media (floppy, USB stick or BMC virtual media); no SMART data"
    elif info is not None:
        reason = "nvme-cli gave no health data for this controller"
    else:
        reason = "no SMART data: smartctl does not list this device (virtual or unsupported)"
    return DiskHealth(verdict="unknown", reasons=[reason], source=None)


def _is_raid_volume(blk: BlockDisk, report: SmartReport | None, raid_present: bool) -> bool:
    """A logical drive of the RAID controller whose member disks smartctl lists: a block disk
    without SMART health of its own (a member passed through as JBOD has the member's)."""
    if not raid_present or blk.is_boot_medium or blk.type != "disk":
        return False
    if blk.transport in ("nvme", "usb") or blk.removable:
        return False
    return report is None or not report.has_health


def _is_removable_media(blk: BlockDisk) -> bool:
    # RM is the SCSI removable-medium bit: floppies (QEMU's default fd0), CD/DVD drives,
    # USB sticks, and the virtual floppy and CD a BMC attaches over USB. Hot-swap bays do
    # not set it.
    return bool(blk.removable) or blk.type == "rom" or blk.name.startswith("fd")


def _disk_from_block(
    blk: BlockDisk,
    report: SmartReport | None,
    report_key: str | None,
    info: NvmeInfo | None,
    raid_present: bool,
    *,
    seen: list[str],
) -> Disk:
    ident = info.identity if info else None
    volume = _is_raid_volume(blk, report, raid_present)
    removable = _is_removable_media(blk)
    return Disk(
        name=blk.name,
        path=blk.path or f"/dev/{blk.name}",
        type=blk.type,
        model=blk.model or (report.model if report else None) or (ident.model if ident else None),
        vendor=blk.vendor or (report.vendor if report else None),
        serial=blk.serial
        or (report.serial if report else None)
        or (ident.serial if ident else None),
        wwn=blk.wwn or (report.wwn if report else None),
        firmware=(ident.firmware if ident else None)
        or (report.firmware if report else None)
        or blk.revision,
        size_bytes=blk.size_bytes
        if blk.size_bytes is not None
        else (report.capacity_bytes if report else None),
        transport=blk.transport,
        hctl=blk.hctl,
        rotational=blk.rotational,
        removable=blk.removable,
        read_only=blk.read_only,
        is_boot_medium=blk.is_boot_medium,
        behind_raid_controller=False,
        smartctl_device=report_key,
        children=blk.children,
        health=_health(
            report,
            info,
            disk_type=blk.type,
            raid_volume=volume,
            removable_media=removable,
            is_boot_medium=blk.is_boot_medium,
        ),
        smart=report,
        nvme=info,
        is_raid_volume=volume,
        is_removable_media=removable,
        seen_by=seen,
    )


def _smartctl_only_disk(
    device: ScannedDevice, report: SmartReport | None, *, behind: bool, missed: bool
) -> Disk:
    base = device.name.removeprefix("/dev/").replace("/", "")
    rpm = report.rotation_rate_rpm if report else None
    rotating = rpm != 0 if rpm is not None else None
    health = (
        _health(report, None, disk_type=None)
        if report is not None
        else DiskHealth(verdict="unknown", reasons=["smartctl gave no data"], source=None)
    )
    if missed:
        health = replace(health, reasons=[*health.reasons, "lsblk does not list this disk"])
    return Disk(
        name=f"{base}-{device.type}" if behind else base,
        path=None if behind else device.name,
        type="raid-member" if behind else None,
        model=report.model if report else None,
        vendor=report.vendor if report else None,
        serial=report.serial if report else None,
        wwn=report.wwn if report else None,
        firmware=report.firmware if report else None,
        size_bytes=report.capacity_bytes if report else None,
        transport=report.protocol.lower() if report and report.protocol else None,
        hctl=None,
        rotational=rotating,
        removable=None,
        read_only=None,
        is_boot_medium=False,
        behind_raid_controller=behind,
        smartctl_device=_smartctl_device(device),
        children=[],
        health=health,
        smart=report,
        nvme=None,
        seen_by=["smartctl"],
    )


def _bare_controller(info: NvmeInfo, report: Any, *, name: str) -> Disk:
    """An NVMe controller (name nvme0) or namespace (nvme0n1) known from /sys/class/nvme only."""
    ident = info.identity
    smart = report if isinstance(report, SmartReport) else None
    return Disk(
        name=name,
        path=f"/dev/{name}",
        type="nvme-controller" if name == info.controller else "disk",
        model=ident.model if ident else None,
        vendor=None,
        serial=ident.serial if ident else None,
        wwn=None,
        firmware=ident.firmware if ident else None,
        size_bytes=(ident.total_capacity_bytes or None) if ident else None,  # 0: not managed
        transport="nvme",
        hctl=None,
        rotational=False,
        removable=None,
        read_only=None,
        is_boot_medium=False,
        behind_raid_controller=False,
        smartctl_device=None,
        children=[],
        health=_health(smart, info, disk_type=None),
        smart=smart,
        nvme=info,
        seen_by=["sysfs"],
    )


# -- findings -----------------------------------------------------------------------------


def findings(sections: dict[str, object]) -> list[Finding]:
    section = sections.get("storage")
    if not isinstance(section, StorageSection):
        return []
    found = []
    for disk in section.disks:
        verdict = disk.health.verdict
        if verdict not in ("failing", "warning"):
            continue
        what = " ".join(p for p in (disk.model, f"S/N {disk.serial}" if disk.serial else "") if p)
        found.append(
            Finding(
                source="storage",
                severity="critical" if verdict == "failing" else "warning",
                subject=disk.name,
                message=f"{disk.name} ({what or 'unknown model'}) is {verdict}: "
                + "; ".join(disk.health.reasons),
                # SMART attributes and the NVMe health log live on the drive: they outlive
                # reboots, so a live image sees the drive's history.
                persistence="persistent",
            )
        )
    return found + _duplicate_serials(section.disks)


def _duplicate_serials(disks: list[Disk]) -> list[Finding]:
    """Two disks with one serial: a cloned or misread identity, or one disk seen twice (two
    multipath paths to one LUN share serial and WWN)."""
    by_serial: dict[str, list[Disk]] = {}
    for disk in disks:
        if disk.serial and disk.type not in ("mpath", "raid-member"):
            by_serial.setdefault(disk.serial, []).append(disk)
    found = []
    for serial, same in by_serial.items():
        if len(same) < 2:
            continue
        names = ", ".join(d.name for d in same)
        one_wwn = len({d.wwn for d in same}) == 1 and same[0].wwn is not None
        found.append(
            Finding(
                source="storage",
                severity="info" if one_wwn else "warning",
                subject=serial,
                message=f"{len(same)} disks report serial {serial} ({names})"
                + ("; one WWN too: probably one disk on several paths" if one_wwn else ""),
            )
        )
    return found


# -- console summary and registration ---------------------------------------------------------


def summary(section: object) -> str:
    # The medium bee booted from (the live CD/USB), RAID logical drives (their members are
    # counted) and removable media are listed in the document, not counted as disks here.
    listed = document.items(section, "disks")
    volumes = sum(1 for d in listed if d.get("is_raid_volume") is True)
    media = sum(1 for d in listed if d.get("is_removable_media") and not d.get("is_boot_medium"))
    disks = [d for d in listed if not _not_a_drive(d)]
    apart = [f"{n} {what}" for n, what in ((volumes, "RAID volume"), (media, "removable")) if n]
    tail = f"; not counted: {', '.join(apart)}" if apart else ""
    if not disks:
        return "Disks: none reported" + tail
    total = sum(document.number(d, "size_bytes") or 0 for d in disks)
    verdicts = Counter(document.text(d, "health", "verdict") or "?" for d in disks)
    health = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    return f"Disks: {len(disks)}, {human_bytes(total)} ({health}){tail}"


def _not_a_drive(disk: dict[str, Any]) -> bool:
    return any(
        disk.get(k) is True for k in ("is_boot_medium", "is_raid_volume", "is_removable_media")
    )


COLLECTORS = (
    Collector(
        name="storage",
        order=40,
        collects="disks and their health: lsblk, smartctl, nvme-cli",
        collect=collect,
        findings=findings,
        summary=summary,
        parsers={**lsblk.PARSERS, **smartctl.PARSERS, **nvme.PARSERS},
    ),
)
