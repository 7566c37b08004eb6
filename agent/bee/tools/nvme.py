"""nvme-cli: NVMe controller identity and health.

Commands, per controller character device (/dev/nvme0 ...): `nvme id-ctrl -o json DEV` and
`nvme smart-log -o json DEV`. Fixtures cover nvme-cli 2.3 (Debian 12).

Key names and value types moved between versions, all accepted here:
- nvme-cli 1.x prints `"key" : value`; 2.x `"key":value` (same names: sn, mn, fr, tnvmcap, nn;
  critical_warning, temperature, avail_spare, spare_thresh, percent_used, ...).
- 128-bit counters (data_units_*, power_on_hours, ...) come as numbers, as strings, or (some
  builds) as floats; old versions printed `nan`.
- 2.11 in verbose mode prints `critical_warning` as an object `{"value": N, ...}`.
- smartctl's NVMe names (available_spare, available_spare_threshold, percentage_used) too.
`temperature` is in Kelvin; `data_units_*` count units of 1000 x 512 bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bee.jsonvalue import integer as _int
from bee.jsonvalue import text as _text
from bee.probe import Probe

TIMEOUT_S = 20.0
KELVIN_OFFSET = 273
DATA_UNIT_BYTES = 1000 * 512

CRITICAL_WARNING_FLAGS = (
    (0x01, "available_spare_below_threshold"),
    (0x02, "temperature_outside_threshold"),
    (0x04, "reliability_degraded"),
    (0x08, "read_only"),
    (0x10, "volatile_memory_backup_failed"),
    (0x20, "persistent_memory_region_read_only"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvmeController:
    """`nvme id-ctrl`: what the controller says it is."""

    model: str | None  # mn
    serial: str | None  # sn
    firmware: str | None  # fr
    vendor_id: str | None  # vid, 4 hex digits
    subsystem_vendor_id: str | None  # ssvid
    controller_id: int | None  # cntlid
    nvme_version: str | None  # ver, e.g. "1.4"
    total_capacity_bytes: int | None  # tnvmcap (0 on controllers without capacity management)
    unallocated_capacity_bytes: int | None  # unvmcap
    namespace_count: int | None  # nn: how many namespaces the controller supports
    subsystem_nqn: str | None  # subnqn
    warning_temperature_c: int | None  # wctemp
    critical_temperature_c: int | None  # cctemp
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class NvmeHealth:
    """`nvme smart-log`: the SMART / Health Information log page (02h)."""

    critical_warning: int | None
    critical_warning_flags: list[str]
    temperature_c: int | None
    temperature_kelvin: int | None
    available_spare_pct: int | None
    available_spare_threshold_pct: int | None
    percentage_used: int | None  # of rated endurance; may exceed 100
    media_errors: int | None
    error_log_entries: int | None
    unsafe_shutdowns: int | None
    power_cycles: int | None
    power_on_hours: int | None
    data_units_read: int | None
    data_units_written: int | None
    data_read_bytes: int | None
    data_written_bytes: int | None
    warning_temperature_minutes: int | None
    critical_temperature_minutes: int | None
    errors: list[str] = field(default_factory=list)

    @property
    def has_health(self) -> bool:
        """Any of the fields a health verdict rests on (`{}` or an unknown layout has none)."""
        fields = (self.critical_warning, self.available_spare_pct, self.percentage_used)
        return any(value is not None for value in (*fields, self.media_errors))


def decode_critical_warning(value: int | None) -> list[str]:
    if value is None or value < 0:
        return []
    return [name for bit, name in CRITICAL_WARNING_FLAGS if value & bit]


def _hex4(value: Any) -> str | None:
    number = _int(value)
    if number is None and isinstance(value, str) and value.strip().lower().startswith("0x"):
        try:
            number = int(value.strip(), 16)
        except ValueError:
            number = None
    return f"{number:04x}" if number is not None and 0 <= number <= 0xFFFF else None


def _first(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


# Old nvme-cli printed unquoted `nan` (and `-nan`, `inf`) for 128-bit counters: not JSON.
_BARE_NAN = re.compile(r"([:\[,]\s*)-?(?:nan|inf)\b", re.IGNORECASE)


def _load(text: str, what: str) -> tuple[dict[str, Any], list[str]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        try:
            data = json.loads(_BARE_NAN.sub(r"\1null", text))
        except (ValueError, RecursionError):
            return {}, [f"nvme {what} output is not JSON: {exc}"]
    if not isinstance(data, dict):
        return {}, [f"nvme {what} output is not a JSON object"]
    return data, []


def _celsius(kelvin: int | None) -> int | None:
    return kelvin - KELVIN_OFFSET if kelvin is not None and kelvin > 0 else None


def _version(value: Any) -> str | None:
    # ver: 66304 = 0x00010300 -> major 1, minor 3 (tertiary shown only when set)
    number = _int(value)
    if number is None or number <= 0 or number > 0xFFFFFFFF:
        return None
    major, minor, tertiary = number >> 16, (number >> 8) & 0xFF, number & 0xFF
    return f"{major}.{minor}" + (f".{tertiary}" if tertiary else "")


def parse_id_ctrl(text: str) -> NvmeController:
    data, errors = _load(text, "id-ctrl")
    return NvmeController(
        model=_text(data.get("mn")),
        serial=_text(data.get("sn")),
        firmware=_text(data.get("fr")),
        vendor_id=_hex4(data.get("vid")),
        subsystem_vendor_id=_hex4(data.get("ssvid")),
        controller_id=_int(data.get("cntlid")),
        nvme_version=_version(data.get("ver")),
        total_capacity_bytes=_int(data.get("tnvmcap")),
        unallocated_capacity_bytes=_int(data.get("unvmcap")),
        namespace_count=_int(data.get("nn")),
        subsystem_nqn=_text(data.get("subnqn")),
        warning_temperature_c=_celsius(_int(data.get("wctemp"))),
        critical_temperature_c=_celsius(_int(data.get("cctemp"))),
        errors=errors,
    )


def parse_smart_log(text: str) -> NvmeHealth:
    data, errors = _load(text, "smart-log")
    warning_raw = data.get("critical_warning")
    if isinstance(warning_raw, dict):  # nvme-cli 2.11 verbose: {"value": 0, "available_spare": 0..}
        warning_raw = warning_raw.get("value")
    warning = _int(warning_raw)
    kelvin = _int(data.get("temperature"))
    read_units = _int(data.get("data_units_read"))
    written_units = _int(data.get("data_units_written"))
    return NvmeHealth(
        critical_warning=warning,
        critical_warning_flags=decode_critical_warning(warning),
        temperature_c=_celsius(kelvin),
        temperature_kelvin=kelvin,
        available_spare_pct=_int(_first(data, "avail_spare", "available_spare")),
        available_spare_threshold_pct=_int(
            _first(data, "spare_thresh", "available_spare_threshold")
        ),
        percentage_used=_int(_first(data, "percent_used", "percentage_used")),
        media_errors=_int(data.get("media_errors")),
        error_log_entries=_int(data.get("num_err_log_entries")),
        unsafe_shutdowns=_int(data.get("unsafe_shutdowns")),
        power_cycles=_int(data.get("power_cycles")),
        power_on_hours=_int(data.get("power_on_hours")),
        data_units_read=read_units,
        data_units_written=written_units,
        data_read_bytes=read_units * DATA_UNIT_BYTES if read_units is not None else None,
        data_written_bytes=written_units * DATA_UNIT_BYTES if written_units is not None else None,
        warning_temperature_minutes=_int(data.get("warning_temp_time")),
        critical_temperature_minutes=_int(data.get("critical_comp_time")),
        errors=errors,
    )


def _run_json(probe: Probe, argv: tuple[str, ...]) -> str | None:
    result = probe.run(argv, timeout_s=TIMEOUT_S)
    if result.not_found or not result.ok or not result.stdout.strip():
        return None
    return result.stdout


def collect_controller(
    probe: Probe, device: str
) -> tuple[NvmeController | None, NvmeHealth | None]:
    """id-ctrl and smart-log of one controller (`/dev/nvme0`); None for what failed."""
    ident = health = None
    text = _run_json(probe, ("nvme", "id-ctrl", "-o", "json", device))
    if text is not None:
        ident = parse_id_ctrl(text)
        for message in ident.errors:
            probe.error(f"nvme id-ctrl {device}: {message}")
    text = _run_json(probe, ("nvme", "smart-log", "-o", "json", device))
    if text is not None:
        health = parse_smart_log(text)
        for message in health.errors:
            probe.error(f"nvme smart-log {device}: {message}")
        if not health.has_health:
            if not health.errors:
                probe.error(f"nvme smart-log {device}: no health fields in the output")
            health = None  # unknown, not ok; the storage collector then asks smartctl
    return ident, health


PARSERS = {"nvme-id-ctrl": parse_id_ctrl, "nvme-smart-log": parse_smart_log}
