"""Values from tools' JSON output (lsblk, smartctl, nvme-cli), whatever type a version printed.

Tools disagree across versions: lsblk before util-linux 2.33 printed numbers as strings,
nvme-cli prints "1,234", floats and bare `nan`. These turn any JSON value into the one type a
model field holds, or None; they never raise.
"""

from __future__ import annotations

import math
from typing import Any


def text(value: Any) -> str | None:
    """A non-empty stripped string; None for null, containers, booleans and blanks."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    stripped = str(value).strip()
    return stripped or None


def integer(value: Any) -> int | None:
    """42, "42", "1,234", 42.0, "4.2e1" -> int; nan, inf, booleans, other text -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        digits = value.strip().replace(",", "")
        # isascii first: "²".isdigit() is True, but int("²") raises.
        if digits.isascii() and digits.isdigit():
            # Past 4300 digits int() raises (CPython's guard against quadratic conversion).
            return int(digits) if len(digits) <= 4300 else None
        try:
            number = float(digits)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) else None
    return None
