"""ipmitool sel elist: the BMC's System Event Log, the one history that survives reboots.

Command: `ipmitool sel elist` (ipmitool 1.8.x). One entry per line, `|` separated:

       29 | 06/04/2014 | 09:49:51 | Power Supply PS1 Status | Power Supply AC lost | Asserted
       3a | 12/14/22 | 23:09:44 CET | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted
        1 |  Pre-Init  |0000000093| Processor CPU0_Status | Presence detected | Asserted
       7e | 05/28/2026 | 05:01:09 | Temperature #0x17 |  | Asserted
        5 | 01/02/2020 | 01:02:03 | Temperature CPU1 | Upper Critical going high | Asserted
          | Reading 96 > Threshold 95 degrees C         (one line, wrapped here)

Vendors and versions differ: record ids are hex, dates have two or four digit years, times
carry AM/PM or a zone, `Pre-Init` entries give seconds since the BMC started instead of a date,
a sixth field carries the reading, and the event text may itself hold `|`
(`Uncorrectable ECC (UnCorrectable ECC |  DIMMD7)`). The direction is the field that says
Asserted or Deasserted; what lies between the sensor and it is the event. `ipmitool -c sel
elist` prints the same fields comma separated. `sel list` has the same layout (no sensor names).
The sensor field starts with the IPMI sensor type ("Power Supply", "Memory", "Drive Slot /
Bay"), followed by the sensor's name or `#0x..` number. Every entry keeps its raw line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.findings import Finding, Severity

# IPMI 2.0 table 42-3, as ipmitool names the sensor types (both spellings seen in 1.8.x).
SENSOR_TYPES = tuple(
    sorted(
        (
            "Temperature", "Voltage", "Current", "Fan", "Physical Security",
            "Platform Security", "Processor", "Power Supply", "Power Unit", "Cooling Device",
            "Other", "Memory", "Drive Slot / Bay", "Drive Slot", "POST Memory Resize",
            "System Firmwares", "System Firmware Progress", "Event Logging Disabled",
            "Watchdog1", "Watchdog", "System Event", "Critical Interrupt", "Button",
            "Module / Board", "Microcontroller", "Add-in Card", "Chassis", "Chip Set",
            "Other FRU", "Cable / Interconnect", "Terminator", "System Boot Initiated",
            "Boot Error", "OS Boot", "OS Critical Stop", "Slot / Connector",
            "System ACPI Power State", "Watchdog2", "Platform Alert", "Entity Presence",
            "Monitor ASIC", "LAN", "Management Subsys Health", "Management Subsystem Health",
            "Battery", "Session Audit", "Version Change", "FRU State", "Unknown", "OEM",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
DIRECTIONS = {"asserted": "asserted", "deasserted": "deasserted"}

# (sensor types the rule applies to, or () for any; phrase in the event, lower case; severity).
# First match wins, so the longer phrase comes before the shorter one it contains.
_POWER = ("power supply",)
_MEMORY = ("memory",)
_CPU = ("processor",)
_DRIVE = ("drive slot / bay", "drive slot")
_BUS = ("critical interrupt",)
EVENT_RULES: tuple[tuple[tuple[str, ...], str, Severity], ...] = (
    (_POWER, "failure detected", "critical"),
    (_POWER, "predictive failure", "warning"),
    (_POWER, "ac lost", "critical"),
    (_POWER, "out-of-range", "warning"),
    (_POWER, "config error", "warning"),
    ((), "redundancy lost", "critical"),
    ((), "insufficient resources", "critical"),
    ((), "redundancy degraded", "warning"),
    ((), "non-redundant", "warning"),
    (_MEMORY, "uncorrectable ecc", "critical"),
    (_MEMORY, "correctable ecc", "warning"),
    (_MEMORY, "parity", "critical"),
    (_MEMORY, "memory scrub failed", "critical"),
    (_MEMORY, "memory device disabled", "warning"),
    (_MEMORY, "critical overtemperature", "critical"),
    (_MEMORY, "configuration error", "warning"),
    (_CPU, "ierr", "critical"),
    (_CPU, "thermal trip", "critical"),
    (_CPU, "frb", "critical"),
    (_CPU, "uncorrectable machine check", "critical"),
    (_CPU, "uncorrectable cpu-complex", "critical"),
    (_CPU, "correctable machine check", "warning"),
    (_CPU, "machine check", "critical"),
    (_CPU, "configuration error", "warning"),
    (_CPU, "disabled", "warning"),
    (_CPU, "throttled", "warning"),
    (_DRIVE, "drive fault", "critical"),
    (_DRIVE, "in failed array", "critical"),
    (_DRIVE, "predictive failure", "warning"),
    (_DRIVE, "rebuild/remap aborted", "warning"),
    (_BUS, "bus uncorrectable", "critical"),
    (_BUS, "bus fatal", "critical"),
    (_BUS, "pci perr", "critical"),
    (_BUS, "pci serr", "critical"),
    (_BUS, "bus correctable", "warning"),
    (("os critical stop",), "run-time critical stop", "critical"),
    # Threshold events of any sensor (temperature, voltage, fan speed, current).
    ((), "non-recoverable going", "critical"),
    ((), "non-critical going", "warning"),
    ((), "critical going", "critical"),
)


def classify_event(sensor_type: str | None, event: str) -> Severity | None:
    """The severity of an event (or a discrete sensor state), None when it is not a fault."""
    kind = (sensor_type or "").lower()
    text = event.lower()
    for types, phrase, severity in EVENT_RULES:
        if (not types or kind in types) and phrase in text:
            return severity
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class SelEntry:
    record_id: str  # as printed: "29", "3a", "fe3c" (hex)
    date: str | None  # as printed: "06/04/2014", "12/14/22"; None for Pre-Init
    time: str | None  # as printed: "09:49:51", "23:09:44 CET"
    timestamp: str | None  # "2014-06-04T09:49:51", BMC clock, zone unknown; None if unreadable
    pre_init: bool  # logged before the BMC's clock was set
    pre_init_seconds: int | None  # the seconds since BMC start that Pre-Init entries print
    sensor_type: str | None  # "Power Supply", "Memory", ...; None when not a known type
    sensor: str  # the whole sensor field: "Power Supply PS1 Status", "Memory #0x2b"
    event: str  # "Power Supply AC lost"; may be empty
    direction: str | None  # "asserted" | "deasserted"; None when the line has neither
    extra: str | None  # fields after the direction: "Reading 96 > Threshold 95 degrees C"
    severity: Severity | None  # what bee makes of it; None: not a fault
    raw: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sel:
    entries: list[SelEntry]
    entry_count: int
    empty: bool  # "SEL has no entries"
    unparsed: list[str]  # lines that are no entry (error messages, headers), first 20


def _timestamp(date: str, time: str) -> str | None:
    """ "06/04/2014" + "09:49:51" (or "12:28:24 PM -03") -> "2014-06-04T09:49:51"."""
    parts = date.split("/")
    clock, _, rest = time.strip().partition(" ")
    hms = clock.split(":")
    if len(parts) != 3 or len(hms) != 3 or not all(p.isdigit() for p in parts + hms):
        return None
    month, day, year = (int(p) for p in parts)
    hour, minute, second = (int(p) for p in hms)
    if len(parts[2]) == 2:
        year += 2000
    marker = rest.split()[0].upper() if rest.split() else ""
    if marker == "PM" and hour < 12:
        hour += 12
    elif marker == "AM" and hour == 12:
        hour = 0
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def split_sensor(sensor: str) -> tuple[str | None, str]:
    """ "Power Supply PS1 Status" -> ("Power Supply", "PS1 Status")."""
    lowered = sensor.lower()
    for name in SENSOR_TYPES:
        if lowered == name.lower() or lowered.startswith(name.lower() + " "):
            return name, sensor[len(name) :].strip()
    return None, sensor


def _entry(fields: list[str], raw: str) -> SelEntry | None:
    fields = [f.strip() for f in fields]
    if len(fields) < 2 or not fields[0] or not _is_hex(fields[0]):
        return None
    if len(fields) < 5:
        # An OEM record ipmitool prints as text: "34 | Linux kernel panic: Fatal machi".
        fields = [fields[0], "", "", "", " | ".join(fields[1:])]
    where = next((i for i in range(4, len(fields)) if fields[i].lower() in DIRECTIONS), None)
    if where is None:
        event, direction, extra = " | ".join(fields[4:]) if len(fields) > 4 else "", None, None
    else:
        event = " | ".join(f for f in fields[4:where])
        direction = DIRECTIONS[fields[where].lower()]
        extra = " | ".join(fields[where + 1 :]) or None
    # "Failure detected ()": ipmitool's empty extended description; nothing to keep.
    event = event.removesuffix("()").rstrip()
    date, time = fields[1], fields[2]
    pre_init = date.lower().replace("-", "") == "preinit"
    sensor_type, _name = split_sensor(fields[3])
    severity = classify_event(sensor_type, event) if direction != "deasserted" else None
    return SelEntry(
        record_id=fields[0].lower(),
        date=None if pre_init else date or None,
        time=None if pre_init else time or None,
        timestamp=None if pre_init else _timestamp(date, time),
        pre_init=pre_init,
        pre_init_seconds=int(time) if pre_init and time.isdigit() else None,
        sensor_type=sensor_type,
        sensor=fields[3],
        event=event,
        direction=direction,
        extra=extra,
        severity=severity,
        raw=raw.rstrip()[:500],
    )


def _is_hex(text: str) -> bool:
    return len(text) <= 8 and all(c in "0123456789abcdefABCDEF" for c in text)


def parse(text: str) -> Sel:
    entries: list[SelEntry] = []
    unparsed: list[str] = []
    empty = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.lower().startswith("sel has no entries"):
            empty = True
            continue
        separator = "|" if "|" in line else ","
        entry = _entry(line.split(separator), raw)
        if entry is None:
            if len(unparsed) < 20:
                unparsed.append(line[:200])
            continue
        entries.append(entry)
    return Sel(entries=entries, entry_count=len(entries), empty=empty, unparsed=unparsed)


def findings(sel: Sel, source: str = "bmc") -> list[Finding]:
    """One finding per sensor and event that is a fault: how often, when last, the raw line.

    An event whose latest entry for that sensor is a deassertion has cleared: it is reported as
    info (the history of a repaired part), not as a fault now."""
    groups: dict[tuple[str, str], list[SelEntry]] = {}
    for entry in sel.entries:
        if classify_event(entry.sensor_type, entry.event) is not None:
            groups.setdefault((entry.sensor, entry.event), []).append(entry)
    found = []
    for (sensor, event), entries in groups.items():
        last = entries[-1]
        asserted = [e for e in entries if e.direction != "deasserted"]
        if not asserted:
            continue
        when = last.timestamp or ("Pre-Init" if last.pre_init else last.date or "unknown time")
        if last.direction == "deasserted":
            severity: Severity = "info"
            state = f"cleared (deasserted {when})"
        else:
            severity = classify_event(last.sensor_type, last.event) or "warning"
            state = f"last {when}"
        times = f"{len(asserted)} time{'s' if len(asserted) != 1 else ''}"
        found.append(
            Finding(
                source=source,
                severity=severity,
                subject=sensor,
                message=f"SEL: {event or 'event'} ({times}, {state})",
                persistence="persistent",
                raw=asserted[-1].raw.strip(),
            )
        )
    return found


PARSERS: dict[str, Callable[[str], object]] = {"ipmitool-sel": parse}
