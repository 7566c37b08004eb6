"""smartctl -j: SMART identity and health of ATA, SATA and SAS disks, also behind RAID HBAs.

Commands: `smartctl -j --scan-open` (which devices, with their `-d TYPE`, including
`megaraid,N` and similar for disks behind a controller) and `smartctl -j -a -d TYPE DEVICE`
per device. Fixtures cover smartmontools 7.3 (Debian 12, json_format_version 1.0).

smartctl's exit status is a bit mask (smartctl(8), RETURN VALUES): bits 0-1 mean the command
or the device open failed and there is no data; bit 2 a SMART command or checksum failed;
bits 3-7 are health and log flags, and the JSON is complete. The JSON repeats it as
`smartctl.exit_status`; `decode_exit_status` names the bits.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field, replace
from typing import Any

from bee.jsonvalue import integer as _int
from bee.jsonvalue import text as _text
from bee.probe import Probe

TIMEOUT_S = 45.0
SCAN_ARGV = ("smartctl", "-j", "--scan-open")

EXIT_FLAGS = (
    (0x01, "command_line_error"),
    (0x02, "device_open_failed"),
    (0x04, "smart_command_failed"),
    (0x08, "disk_failing"),
    (0x10, "prefail_attribute_below_threshold"),
    (0x20, "attribute_below_threshold_in_past"),
    (0x40, "error_log_has_errors"),
    (0x80, "self_test_log_has_errors"),
)
NO_DATA_BITS = 0x03  # the command did not parse or the device could not be opened

# ATA attribute IDs that mean media trouble, by their smartctl names.
ATTR_REALLOCATED = 5  # Reallocated_Sector_Ct
ATTR_REPORTED_UNCORRECT = 187  # Reported_Uncorrect
ATTR_PENDING = 197  # Current_Pending_Sector
ATTR_OFFLINE_UNCORRECTABLE = 198  # Offline_Uncorrectable
ATTR_UDMA_CRC = 199  # UDMA_CRC_Error_Count (cabling, not media)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScannedDevice:
    """One line of `smartctl --scan-open`: `/dev/bus/0 -d megaraid,0 # /dev/bus/0 [...]`."""

    name: str
    type: str | None
    protocol: str | None
    info_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmartScan:
    devices: list[ScannedDevice] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTest:
    """The newest entry of the self-test log."""

    type: str | None
    status: str | None
    passed: bool | None
    lifetime_hours: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmartReport:
    device_name: str | None
    device_type: str | None  # the -d TYPE smartctl used: sat, scsi, nvme, sat+megaraid,0 ...
    protocol: str | None  # ATA | SCSI | NVMe
    model: str | None
    model_family: str | None
    vendor: str | None  # SCSI vendor
    serial: str | None
    firmware: str | None
    wwn: str | None  # 0x5000c500... as smartctl prints it
    capacity_bytes: int | None
    logical_block_size_bytes: int | None
    rotation_rate_rpm: int | None  # 0 = solid state
    form_factor: str | None
    smart_available: bool | None
    smart_enabled: bool | None
    smart_passed: bool | None  # the overall-health self-assessment
    power_on_hours: int | None
    power_cycles: int | None
    temperature_c: int | None
    temperature_trip_c: int | None  # SCSI drive trip temperature
    reallocated_sectors: int | None
    pending_sectors: int | None
    offline_uncorrectable: int | None
    reported_uncorrectable: int | None
    udma_crc_errors: int | None
    failing_attributes: list[str]  # attributes at or below threshold now (WHEN_FAILED=now)
    past_failing_attributes: list[str]  # ... in the past
    sas_grown_defects: int | None
    scsi_uncorrected_read_errors: int | None
    scsi_uncorrected_write_errors: int | None
    scsi_uncorrected_verify_errors: int | None
    nvme_critical_warning: int | None
    nvme_percentage_used: int | None
    nvme_available_spare_pct: int | None
    nvme_available_spare_threshold_pct: int | None
    nvme_media_errors: int | None
    self_test: SelfTest | None
    exit_status: int | None
    exit_flags: list[str]
    messages: list[str]  # smartctl's own messages (errors and warnings)
    smartctl_version: str | None
    json_format_version: str | None
    errors: list[str] = field(default_factory=list)
    # The ATA error log's count (`ata_smart_error_log.summary.count`, or `.extended.count` with
    # -x): errors the drive logged over its life, kept even where no attribute fails.
    ata_error_log_count: int | None = None
    # SCSI/SAS start-stop cycle counter page: accumulated and specified over the drive's life.
    sas_start_stop_cycles: int | None = None
    sas_start_stop_cycles_specified: int | None = None
    sas_load_unload_cycles: int | None = None
    sas_load_unload_cycles_specified: int | None = None

    @property
    def has_data(self) -> bool:
        """False when smartctl could not open the device or parse its command line."""
        if self.exit_status is not None and self.exit_status & NO_DATA_BITS:
            return False
        return self.has_health or self.serial is not None or self.model is not None

    @property
    def has_health(self) -> bool:
        """Whether anything here speaks to the disk's health (a RAID volume has nothing)."""
        return any(
            value is not None
            for value in (
                self.smart_passed,
                self.reallocated_sectors,
                self.pending_sectors,
                self.offline_uncorrectable,
                self.sas_grown_defects,
                self.scsi_uncorrected_read_errors,
                self.nvme_critical_warning,
                self.self_test,
            )
        ) or bool(self.failing_attributes or self.past_failing_attributes)


def decode_exit_status(status: int | None) -> list[str]:
    if status is None or status < 0:
        return []
    return [name for bit, name in EXIT_FLAGS if status & bit]


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
            data = data[key]
        elif isinstance(data, dict):
            data = data.get(key)
        else:
            return None
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _load(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, f"smartctl output is not JSON: {exc}"


def parse_scan(text: str) -> SmartScan:
    """`smartctl -j --scan-open`."""
    data, error = _load(text)
    if error:
        return SmartScan(errors=[error])
    devices = []
    for entry in _list(_get(data, "devices")):
        name = _text(_get(entry, "name"))
        if name is None:
            continue
        devices.append(
            ScannedDevice(
                name=name,
                type=_text(_get(entry, "type")),
                protocol=_text(_get(entry, "protocol")),
                info_name=_text(_get(entry, "info_name")),
            )
        )
    return SmartScan(devices=devices)


def _wwn(data: dict[str, Any]) -> str | None:
    # "wwn": {"naa": 5, "oui": 9528, "id": 22817852457} -> 0x5002538e40a22954
    wwn = _dict(data.get("wwn"))
    naa, oui, ident = _int(wwn.get("naa")), _int(wwn.get("oui")), _int(wwn.get("id"))
    if naa is None or oui is None or ident is None:
        return _text(data.get("logical_unit_id"))
    if not (0 <= naa < 16 and 0 <= oui < 1 << 24 and 0 <= ident < 1 << 36):
        return None
    return f"0x{naa:x}{oui:06x}{ident:09x}"


def _attribute_raw(entry: dict[str, Any]) -> int | None:
    # The raw value may pack several fields; its string starts with the count smartctl shows:
    # "raw": {"value": 0, "string": "0"}, or "string": "12 (0 3 0 0)".
    raw = _dict(entry.get("raw"))
    head = (_text(raw.get("string")) or "").split(" ", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else _int(raw.get("value"))


def _self_test(data: dict[str, Any]) -> SelfTest | None:
    # ATA: "ata_smart_self_test_log": {"standard": {"table": [{"type": {"string": ...},
    #   "status": {"value": 0, "string": "Completed without error", "passed": true},
    #   "lifetime_hours": 19497}, ...]}} -- newest first.
    log = _dict(data.get("ata_smart_self_test_log"))
    for kind in ("extended", "standard"):
        entry = _dict(_get(log, kind, "table", 0))
        if entry:
            status = _dict(entry.get("status"))
            return SelfTest(
                type=_text(_get(entry, "type", "string")),
                status=_text(status.get("string")),
                passed=_bool(status.get("passed")),
                lifetime_hours=_int(entry.get("lifetime_hours")),
            )
    # SCSI: "scsi_self_test_0": {"code": {"string": "Background long"},
    #   "result": {"value": 0, "string": "Completed"}, "power_on_time": {"hours": 90}}
    scsi = _dict(data.get("scsi_self_test_0"))
    if scsi:
        value = _int(_get(scsi, "result", "value"))
        return SelfTest(
            type=_text(_get(scsi, "code", "string")),
            status=_text(_get(scsi, "result", "string")),
            # 0 completed; 1-2 aborted; 3 unknown error; 4-7 failed in a segment; 15 running
            passed=None if value is None or value in (1, 2, 15) else value == 0,
            lifetime_hours=_int(_get(scsi, "power_on_time", "hours")),
        )
    # NVMe through smartctl: "nvme_self_test_log": {"table": [{"self_test_result":
    #   {"value": 0, "string": "Completed without error"}, "power_on_hours": 1234}]}
    entry = _dict(_get(data, "nvme_self_test_log", "table", 0))
    if entry:
        value = _int(_get(entry, "self_test_result", "value"))
        return SelfTest(
            type=_text(_get(entry, "self_test_code", "string")),
            status=_text(_get(entry, "self_test_result", "string")),
            passed=None if value is None or value in (1, 2, 3, 15) else value == 0,
            lifetime_hours=_int(entry.get("power_on_hours")),
        )
    return None


def parse(text: str) -> SmartReport:
    """`smartctl -j -a [-d TYPE] DEVICE` (also -x, -H, -A, -i subsets)."""
    data, error = _load(text)
    errors = [error] if error else []
    if not isinstance(data, dict):
        if not error:
            errors.append("smartctl output is not a JSON object")
        data = {}
    smartctl = _dict(data.get("smartctl"))
    status = _int(smartctl.get("exit_status"))
    messages = [
        m for m in (_text(_get(entry, "string")) for entry in _list(smartctl.get("messages"))) if m
    ]
    version = _list(smartctl.get("version"))
    fmt = _list(data.get("json_format_version"))

    attrs: dict[int, dict[str, Any]] = {}
    failing: list[str] = []
    past: list[str] = []
    for entry in _list(_get(data, "ata_smart_attributes", "table")):
        if not isinstance(entry, dict) or _int(entry.get("id")) is None:
            continue
        ident = _int(entry.get("id"))
        assert ident is not None
        attrs[ident] = entry
        label = f"{ident} {_text(entry.get('name')) or 'Unknown_Attribute'}"
        when = (_text(entry.get("when_failed")) or "").lower()
        if when == "now":
            failing.append(label)
        elif when == "past":
            past.append(label)

    def attr(ident: int) -> int | None:
        return _attribute_raw(attrs[ident]) if ident in attrs else None

    errlog = _dict(data.get("scsi_error_counter_log"))
    cycles = _dict(data.get("scsi_start_stop_cycle_counter"))
    nvme_log = _dict(data.get("nvme_smart_health_information_log"))
    capacity = _int(_get(data, "user_capacity", "bytes"))
    if capacity is None:
        capacity = _int(data.get("nvme_total_capacity"))
    vendor = _text(data.get("scsi_vendor")) or _text(data.get("vendor"))
    model = (
        _text(data.get("model_name"))
        or _text(data.get("scsi_model_name"))
        or _text(data.get("scsi_product"))
        or _text(data.get("product"))
    )
    # SCSI devices without temperature support report `"temperature": {"current": 0}`.
    temperature = _int(_get(data, "temperature", "current")) or None
    if temperature is None:
        temperature = _int(nvme_log.get("temperature")) or None
    trip = _int(_get(data, "temperature", "drive_trip"))  # smartctl < 7.3
    if trip is None:
        trip = _int(_get(data, "scsi_temperature", "drive_trip"))  # 7.3: {"drive_trip": 0}
    return SmartReport(
        device_name=_text(_get(data, "device", "name")),
        device_type=_text(_get(data, "device", "type")),
        protocol=_text(_get(data, "device", "protocol")),
        model=model,
        model_family=_text(data.get("model_family")),
        vendor=vendor,
        serial=_text(data.get("serial_number")),
        firmware=(
            _text(data.get("firmware_version"))
            or _text(data.get("scsi_revision"))
            or _text(data.get("revision"))
        ),
        wwn=_wwn(data),
        capacity_bytes=capacity,
        logical_block_size_bytes=_int(data.get("logical_block_size")),
        rotation_rate_rpm=_int(data.get("rotation_rate")),
        form_factor=_text(_get(data, "form_factor", "name")),
        smart_available=_bool(_get(data, "smart_support", "available")),
        smart_enabled=_bool(_get(data, "smart_support", "enabled")),
        smart_passed=_bool(_get(data, "smart_status", "passed")),
        power_on_hours=_int(_get(data, "power_on_time", "hours")),
        power_cycles=_int(data.get("power_cycle_count")),
        temperature_c=temperature,
        temperature_trip_c=trip or None,
        reallocated_sectors=attr(ATTR_REALLOCATED),
        pending_sectors=attr(ATTR_PENDING),
        offline_uncorrectable=attr(ATTR_OFFLINE_UNCORRECTABLE),
        reported_uncorrectable=attr(ATTR_REPORTED_UNCORRECT),
        udma_crc_errors=attr(ATTR_UDMA_CRC),
        failing_attributes=failing,
        past_failing_attributes=past,
        sas_grown_defects=_int(data.get("scsi_grown_defect_list")),
        scsi_uncorrected_read_errors=_int(_get(errlog, "read", "total_uncorrected_errors")),
        scsi_uncorrected_write_errors=_int(_get(errlog, "write", "total_uncorrected_errors")),
        scsi_uncorrected_verify_errors=_int(_get(errlog, "verify", "total_uncorrected_errors")),
        nvme_critical_warning=_int(nvme_log.get("critical_warning")),
        nvme_percentage_used=_int(nvme_log.get("percentage_used")),
        nvme_available_spare_pct=_int(nvme_log.get("available_spare")),
        nvme_available_spare_threshold_pct=_int(nvme_log.get("available_spare_threshold")),
        nvme_media_errors=_int(nvme_log.get("media_errors")),
        self_test=_self_test(data),
        exit_status=status,
        exit_flags=decode_exit_status(status),
        messages=messages,
        smartctl_version=".".join(str(v) for v in version if _int(v) is not None) or None,
        json_format_version=".".join(str(v) for v in fmt if _int(v) is not None) or None,
        errors=errors,
        ata_error_log_count=_int(
            _get(data, "ata_smart_error_log", "extended", "count")
            if _get(data, "ata_smart_error_log", "extended", "count") is not None
            else _get(data, "ata_smart_error_log", "summary", "count")
        ),
        sas_start_stop_cycles=_int(_get(cycles, "accumulated_start_stop_cycles")),
        sas_start_stop_cycles_specified=_int(
            _get(cycles, "specified_cycle_count_over_device_lifetime")
        ),
        sas_load_unload_cycles=_int(_get(cycles, "accumulated_load_unload_cycles")),
        sas_load_unload_cycles_specified=_int(
            _get(cycles, "specified_load_unload_count_over_device_lifetime")
        ),
    )


def device_argv(device: ScannedDevice) -> tuple[str, ...]:
    argv: tuple[str, ...] = ("smartctl", "-j", "-a")
    if device.type:
        argv += ("-d", device.type)
    return (*argv, device.name)


def collect_scan(probe: Probe) -> SmartScan | None:
    """The devices smartctl can open; None when smartctl is not installed."""
    result = probe.run(SCAN_ARGV, timeout_s=TIMEOUT_S, check=False)
    if result.not_found:
        return None
    if result.timed_out:
        probe.error(result.describe_failure())
        return SmartScan()
    scan = parse_scan(result.stdout)
    for message in scan.errors:
        probe.error(f"{' '.join(SCAN_ARGV)}: {message}")
    return scan


def collect_device(
    probe: Probe, device: ScannedDevice, *, expect_no_smart: bool = False
) -> SmartReport | None:
    """One device; a non-zero exit with only health/log bits still yields the report.

    expect_no_smart: a USB stick or the boot medium, where smartctl often cannot open the
    device (unknown USB bridge); a failure there is a note, not an error.
    """
    argv = device_argv(device)
    result = probe.run(argv, timeout_s=TIMEOUT_S, check=False)
    if result.not_found:
        return None
    if result.timed_out or not result.stdout.strip():
        probe.error(result.describe_failure())
        return None
    report = parse(result.stdout)
    status = result.returncode
    if status < 0:
        # Killed by a signal (a crash after the report, an OOM kill): not a bit mask. Keep
        # the report and the status it states; the kill itself is an error.
        probe.error(f"{' '.join(argv)}: killed by {_signal_name(-status)}")
        status = report.exit_status if report.exit_status is not None else 0
    elif report.exit_status is None or report.exit_status != status:
        # The process's own status is the authority (the JSON can be cut short).
        report = _replace_status(report, status)
    detail = f": {report.messages[0]}" if report.messages else ""
    if status & NO_DATA_BITS:
        flags = ", ".join(decode_exit_status(status & NO_DATA_BITS))
        record = probe.note if expect_no_smart else probe.error
        record(f"{' '.join(argv)}: exit {status} ({flags}){detail}")
    elif status & 0x04:
        # Common and harmless on healthy SAS disks and behind RAID HBAs: a note, not an error.
        probe.note(f"{' '.join(argv)}: exit {status} (smart_command_failed){detail}")
    for message in report.errors:
        probe.error(f"{' '.join(argv)}: {message}")
    return report


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _replace_status(report: SmartReport, status: int) -> SmartReport:
    return replace(report, exit_status=status, exit_flags=decode_exit_status(status))


# parse_scan is not a `bee parse` tool (the CLI lists its tools); it is tested on its own.
PARSERS = {"smartctl": parse}
