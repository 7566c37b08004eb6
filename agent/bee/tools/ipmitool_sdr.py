"""ipmitool sdr elist: every sensor the BMC describes, with its state now.

Command: `ipmitool sdr elist` (ipmitool 1.8.x), five `|` separated columns:

    Inlet Temp       | 04h | ok  |  7.1 | 23 degrees C
    PS1 Status       | 01h | ok  | 10.1 | Presence detected, Failure detected
    FAN2             | 42h | ns  | 29.2 | No Reading

name, sensor number (hex), status, entity id.instance, reading. A threshold sensor's status is
ok, or nc / cr / nr (non-critical, critical, non-recoverable); ns means no reading (absent or
disabled). A discrete sensor's status is ok and its reading lists the states asserted now, so
a failed supply shows as `Failure detected` there. Also read: `sdr list` (three columns: name |
reading | status) and `ipmitool sensor` (ten columns: name | value | unit | status | lnr | lcr |
lnc | unc | ucr | unr, status also lnc/lcr/lnr/unc/ucr/unr).

Each sensor gets a kind (temperature, fan, voltage, power, current, power_supply, processor,
memory, drive, other) from its unit, else its entity (IPMI table 43-13), else its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bee.findings import Finding, Severity
from bee.tools.ipmitool_sel import classify_event

UNIT_KINDS = {
    "degrees c": "temperature",
    "degrees f": "temperature",
    "rpm": "fan",
    "volts": "voltage",
    "watts": "power",
    "amps": "current",
    "percent": "percent",
}
ENTITY_KINDS = {3: "processor", 4: "drive", 10: "power_supply", 26: "drive", 29: "fan", 30: "fan"}
ENTITY_KINDS |= {32: "memory", 8: "memory"}
# The sensor type classify_event knows a kind's discrete states by.
KIND_SENSOR_TYPES = {
    "power_supply": "Power Supply",
    "fan": "Fan",
    "processor": "Processor",
    "memory": "Memory",
    "drive": "Drive Slot / Bay",
    "temperature": "Temperature",
    "voltage": "Voltage",
}
STATUS_SEVERITY: dict[str, Severity] = {
    "cr": "critical",
    "nr": "critical",
    "lcr": "critical",
    "ucr": "critical",
    "lnr": "critical",
    "unr": "critical",
    "nc": "warning",
    "lnc": "warning",
    "unc": "warning",
}
NO_READING = ("no reading", "disabled", "not readable", "na", "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sensor:
    name: str
    sensor_number: int | None  # "04h" -> 4
    status: str | None  # "ok", "ns", "nc", "cr", "nr", "lnc", ... as printed, lower case
    entity_id: int | None  # "10.1" -> 10 (power supply)
    entity_instance: int | None
    kind: str
    reading: float | None  # the number of a threshold sensor's reading
    unit: str | None  # "degrees C", "RPM", "Volts", "Watts"
    states: list[str]  # a discrete sensor's asserted states: ["Presence detected", ...]
    readable: bool  # False: the BMC gave no reading (ns, "No Reading", "Disabled")
    severity: Severity | None  # what bee makes of it; None: not a fault
    raw: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorList:
    sensors: list[Sensor]
    sensor_count: int
    unparsed: list[str]  # lines that are no sensor, first 20


def _hex_number(text: str) -> int | None:
    digits = text.strip().lower().removesuffix("h")
    if not digits or len(digits) > 4 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return int(digits, 16)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _reading(text: str) -> tuple[float | None, str | None, list[str]]:
    """ "23 degrees C" -> (23.0, "degrees C", []); "Presence detected, X" -> (None, None, [...])."""
    head, _, unit = text.strip().partition(" ")
    value = _float(head)
    if value is not None and unit and not unit[:1].isdigit():
        return value, unit.strip(), []
    if text.strip().lower() in NO_READING or text.strip().lower().startswith("0x"):
        return None, None, []
    return None, None, [s.strip() for s in text.split(",") if s.strip()]


def _kind(name: str, unit: str | None, entity: int | None) -> str:
    if unit and unit.lower() in UNIT_KINDS:
        return UNIT_KINDS[unit.lower()]
    lowered = name.lower()
    # Without a reading there is no unit: "CPU1 Temp" on the processor entity is a temperature.
    if "temp" in lowered:
        return "temperature"
    if entity in ENTITY_KINDS:
        return ENTITY_KINDS[entity]
    words = lowered.replace("_", " ").split()
    if any(w.startswith(("ps", "pws", "psu")) and w[-1:].isdigit() for w in words) or (
        "psu" in words or "power supply" in lowered or "pwr supply" in lowered
    ):
        return "power_supply"
    if "fan" in lowered:
        return "fan"
    if "temp" in lowered:
        return "temperature"
    if "dimm" in lowered or "memory" in lowered:
        return "memory"
    if "cpu" in lowered or "processor" in lowered:
        return "processor"
    return "other"


def _sensor(
    name: str, number: str | None, status: str, *, entity: str | None, reading: str, raw: str
) -> Sensor:
    value, unit, states = _reading(reading)
    entity_id = entity_instance = None
    if entity:
        ident, _, instance = entity.strip().partition(".")
        entity_id = int(ident) if ident.isdigit() else None
        entity_instance = int(instance) if instance.isdigit() else None
    status_l = status.strip().lower() or None
    kind = _kind(name, unit, entity_id)
    # A discrete sensor with no state asserted prints nothing: readable, all clear.
    unreadable = reading.strip().lower() in ("no reading", "disabled", "not readable", "na")
    readable = status_l not in ("ns", "na") and not unreadable
    severity = STATUS_SEVERITY.get(status_l or "")
    if kind in KIND_SENSOR_TYPES:
        for state in states:
            found = classify_event(KIND_SENSOR_TYPES[kind], state)
            if found is not None and (severity is None or found == "critical"):
                severity = found
    return Sensor(
        name=name,
        sensor_number=_hex_number(number) if number else None,
        status=status_l,
        entity_id=entity_id,
        entity_instance=entity_instance,
        kind=kind,
        reading=value,
        unit=unit,
        states=states,
        readable=readable,
        severity=severity,
        raw=raw.rstrip()[:300],
    )


def parse(text: str) -> SensorList:
    sensors: list[Sensor] = []
    unparsed: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        fields = [f.strip() for f in raw.split("|")]
        sensor = None
        if len(fields) == 5 and fields[0] and _hex_number(fields[1]) is not None:
            name, number, status, entity, reading = fields
            sensor = _sensor(name, number, status, entity=entity, reading=reading, raw=raw)
        elif len(fields) >= 10 and fields[0]:
            # ipmitool sensor: value and unit apart; "discrete" sensors give a hex state.
            name, value, unit, status = fields[:4]
            reading = f"{value} {unit}" if unit and unit != "discrete" else value
            status = "" if status.startswith("0x") else status
            sensor = _sensor(name, None, status, entity=None, reading=reading, raw=raw)
        elif len(fields) == 3 and fields[0]:
            name, reading, status = fields
            sensor = _sensor(name, None, status, entity=None, reading=reading, raw=raw)
        if sensor is None:
            if len(unparsed) < 20:
                unparsed.append(raw.strip()[:200])
            continue
        sensors.append(sensor)
    return SensorList(sensors=sensors, sensor_count=len(sensors), unparsed=unparsed)


def findings(sensors: SensorList, source: str = "bmc") -> list[Finding]:
    found = []
    for sensor in sensors.sensors:
        if sensor.severity is None:
            continue
        if sensor.states:
            what = ", ".join(sensor.states)
        elif sensor.reading is not None:
            what = f"{sensor.reading:g} {sensor.unit or ''}".strip()
        else:
            what = "no reading"
        found.append(
            Finding(
                source=source,
                severity=sensor.severity,
                subject=sensor.name,
                message=f"BMC sensor ({sensor.kind}) status {sensor.status or '?'}: {what}",
                persistence="current",
                raw=sensor.raw.strip(),
            )
        )
    return found


PARSERS: dict[str, Callable[[str], object]] = {"ipmitool-sdr": parse}
