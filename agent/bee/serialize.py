"""The one place where models become JSON: dataclasses, enums, tuples, NaN."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def dumps(value: Any) -> str:
    """Models (dataclasses and all) as indented JSON text."""
    return dumps_ready(to_jsonable(value))


def dumps_ready(value: Any) -> str:
    """JSON text of data that is already JSON-ready, such as the document `run_audit` returns
    (its sections went through to_jsonable once; a second walk cost a fifth of a big host's
    replay)."""
    return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
