"""Quantities with units and version strings: what a spec rule compares a document value with.

A document field carries its unit in its name (`size_bytes`, `speed_mts`, `memory_total_mib`,
`max_link_speed_gts`); a spec may write the value with any unit of the same kind ("16 GiB",
"2933 MT/s", "32 GT/s"), and it is converted to the field's unit when the spec is loaded.
"""

from __future__ import annotations

import math
import re

# unit text (lowercase) -> (kind, size of one unit in the kind's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "b": ("bytes", 1),
    "byte": ("bytes", 1),
    "bytes": ("bytes", 1),
    "kb": ("bytes", 1e3),
    "mb": ("bytes", 1e6),
    "gb": ("bytes", 1e9),
    "tb": ("bytes", 1e12),
    "pb": ("bytes", 1e15),
    "kib": ("bytes", 2**10),
    "mib": ("bytes", 2**20),
    "gib": ("bytes", 2**30),
    "tib": ("bytes", 2**40),
    "pib": ("bytes", 2**50),
    "hz": ("frequency", 1),
    "khz": ("frequency", 1e3),
    "mhz": ("frequency", 1e6),
    "ghz": ("frequency", 1e9),
    "mt/s": ("transfers", 1e6),
    "gt/s": ("transfers", 1e9),
    "b/s": ("bitrate", 1),
    "kb/s": ("bitrate", 1e3),
    "mb/s": ("bitrate", 1e6),
    "gb/s": ("bitrate", 1e9),
    "bps": ("bitrate", 1),
    "mbps": ("bitrate", 1e6),
    "gbps": ("bitrate", 1e9),
    "w": ("power", 1),
    "kw": ("power", 1e3),
    "v": ("voltage", 1),
    "mv": ("voltage", 1e-3),
    "c": ("temperature", 1),
    "°c": ("temperature", 1),
    "s": ("time", 1),
    "ms": ("time", 1e-3),
    "min": ("time", 60),
    "h": ("time", 3600),
    "rpm": ("rotation", 1),
    "%": ("percent", 1),
}

# field name suffix -> the unit its values are in
FIELD_UNITS: dict[str, str] = {
    "_bytes": "b",
    "_kib": "kib",
    "_mib": "mib",
    "_gib": "gib",
    "_mhz": "mhz",
    "_ghz": "ghz",
    "_mts": "mt/s",
    "_gts": "gt/s",
    "_mbps": "mb/s",
    "_gbps": "gb/s",
    "_w": "w",
    "_v": "v",
    "_c": "c",
    "_s": "s",
    "_rpm": "rpm",
    "_pct": "%",
}

# "2933 MT/s", "16GiB", "1.92 TB", "-5", "3e9 Hz": a number, optional blanks, optional unit.
# No nested quantifiers: linear on any input.
_QUANTITY = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\s\d][^\s]*)?\s*")


class QuantityError(ValueError):
    """A spec value that is not a quantity of the field's kind; the message is one line."""


def field_unit(field: str) -> str | None:
    """The unit of a document field, from its name's suffix (`speed_mts` -> "mt/s")."""
    name = field.rsplit(".", 1)[-1]
    for suffix, unit in FIELD_UNITS.items():
        if name.endswith(suffix):
            return unit
    return None


def parse_quantity(text: str) -> tuple[float, str | None] | None:
    """ "16 GiB" -> (16.0, "gib"); "42" -> (42.0, None); anything else -> None."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    try:
        number = float(match.group(1))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    unit = match.group(2)
    return number, unit.lower() if unit else None


def to_field_unit(value: str, field: str) -> int | float:
    """A spec's quantity in the unit of `field`; raises QuantityError with the reason."""
    target = field_unit(field)
    parsed = parse_quantity(value)
    if parsed is None:
        raise QuantityError(f"{value!r} is not a number with a unit")
    number, unit = parsed
    if unit is None or target is None:
        if unit is not None:
            raise QuantityError(f"{value!r} has a unit but the field {field!r} has none")
        if abs(number) > 1e300:
            raise QuantityError(f"{value!r} is out of range")
        return _tidy(number)
    if unit not in UNITS:
        raise QuantityError(f"unknown unit {unit!r} in {value!r}")
    kind, scale = UNITS[unit]
    target_kind, target_scale = UNITS[target]
    # DIMM speeds: dmidecode before 3.0 printed MT/s values as "MHz" (field notes), and so do
    # many datasheets; bee's `_mts` fields hold MT/s, so "2933 MHz" there means 2933 MT/s.
    if target_kind == "transfers" and kind == "frequency":
        kind = "transfers"
    if kind != target_kind:
        raise QuantityError(f"{value!r} is {kind}, but {field!r} is {target_kind}")
    converted = number * scale / target_scale
    if not math.isfinite(converted) or abs(converted) > 1e300:
        raise QuantityError(f"{value!r} is out of range")
    return _tidy(converted)


def _tidy(number: float) -> int | float:
    """Whole numbers as int, so 16 GiB in bytes compares exactly."""
    rounded = round(number)
    return rounded if abs(number - rounded) < 1e-9 * max(1.0, abs(number)) else number


def numbers_equal(a: float, b: float) -> bool:
    """Whole numbers exactly (a byte off is a different disk); others within float noise
    ("2.5 GT/s" read back as 2.5000000001)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


# -- versions ---------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")
_RUNS = re.compile(r"\d+|[A-Za-z]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def _parts(text: str) -> list[str]:
    return [p for p in _SEPARATORS.split(text) if p]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, comparing part by part: "535.129.03" < "550.54.15", "3.8a" < "3.10".

    Vendor hex versions (VBIOS "96.00.A5.00.1A": three or more fixed-width hex fields) are
    compared as hex numbers when both look like that and one has a hex letter; otherwise each
    part is split into runs of digits (compared as numbers) and letters (compared
    case-insensitively), so a BIOS "3.8a" is 3, 8, "a". Missing parts count as zero:
    "535.129" == "535.129.0".
    """
    pa, pb = _parts(a), _parts(b)
    both = pa + pb
    hex_mode = (
        len(pa) >= 3
        and len(pb) >= 3
        and len({len(p) for p in both}) == 1
        and all(_HEX.fullmatch(p) for p in both)
        and any(not p.isdigit() for p in both)
    )
    if hex_mode:
        ka: list[tuple[int, int | str]] = [(0, int(p, 16)) for p in pa]
        kb: list[tuple[int, int | str]] = [(0, int(p, 16)) for p in pb]
    else:
        ka = [_run_key(r) for p in pa for r in _RUNS.findall(p)]
        kb = [_run_key(r) for p in pb for r in _RUNS.findall(p)]
    width = max(len(ka), len(kb))
    ka += [(0, 0)] * (width - len(ka))
    kb += [(0, 0)] * (width - len(kb))
    for x, y in zip(ka, kb, strict=True):
        if x != y:
            return -1 if x < y else 1  # type: ignore[operator]
    return 0


def _run_key(run: str) -> tuple[int, int | str]:
    # A number sorts before letters at the same place: "1.0" < "1.0a"... and ints never meet str.
    return (0, int(run)) if run.isdigit() else (1, run.lower())
