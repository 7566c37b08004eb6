"""Reading an audit document of any shape without raising: documents from older and newer bee
versions, damaged ones, and JSON that is not bee's at all. Consumers of the document (`bee
report`, `bee upload`) ask through these, so a missing section or a string where a list was
expected is `None` or empty, never a TypeError."""

from __future__ import annotations

from typing import Any


def dig(document: Any, *path: str) -> Any:
    """document[path[0]][path[1]]...; None as soon as a step is not a dict or lacks the key."""
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def items(document: Any, *path: str) -> list[dict[str, Any]]:
    """The dicts in the list at path (other members and a non-list are dropped)."""
    value = dig(document, *path)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text(document: Any, *path: str) -> str | None:
    """A non-empty string at path, stripped; None for anything else."""
    value = dig(document, *path)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def number(document: Any, *path: str) -> int | float | None:
    value = dig(document, *path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def system_serial(document: Any) -> str | None:
    """The machine's serial: SMBIOS system serial (dmidecode already dropped placeholders such as
    `To Be Filled By O.E.M.`), else the baseboard's."""
    return text(document, "board", "system", "serial") or text(
        document, "board", "baseboard", "serial"
    )
