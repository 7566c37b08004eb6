"""The collectors bee runs, found in the modules of `bee.tools`.

A module joins the audit by declaring, at module level, `COLLECTORS = (Collector(...), ...)`.
Everything that lists sections (the audit, `bee parse`, the console summary, the schema's
section list, the smoke test, the vm_test checks, the docs' table) is derived from here or
checked against it by a test. No hand-kept list repeats the file system.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bee.findings import Finding
    from bee.probe import Probe


@dataclass(frozen=True, slots=True, kw_only=True)
class Collector:
    name: str  # the document's section key; its schema is schema/<name>.schema.json
    order: int  # place in the document and the console summary; only relative order matters
    collects: str  # one line: what it reads
    collect: Callable[[Probe], Any]  # -> model | None; failures go through the probe
    # Every section's model (or None) by name -> what an operator must look at.
    findings: Callable[[dict[str, Any]], list[Finding]] | None = None
    # This section as the document holds it (JSON, any shape, maybe None) -> one console line.
    summary: Callable[[Any], str | None] | None = None
    # `bee parse` names of the parsers that read this collector's tool outputs.
    parsers: Mapping[str, Callable[[str], Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class Registry:
    collectors: tuple[Collector, ...]
    errors: tuple[str, ...]  # modules that could not be imported: the audit records them


@cache
def load() -> Registry:
    import bee.tools

    found: list[Collector] = []
    errors: list[str] = []
    for info in sorted(pkgutil.iter_modules(bee.tools.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"bee.tools.{info.name}")
        except Exception as exc:  # one broken module must not take every other section down
            errors.append(f"bee.tools.{info.name} cannot be imported: {type(exc).__name__}: {exc}")
            continue
        found.extend(getattr(module, "COLLECTORS", ()))
    found.sort(key=lambda c: (c.order, c.name))
    seen: set[str] = set()
    unique: list[Collector] = []
    for collector in found:
        if collector.name in seen:
            errors.append(f"two collectors are named {collector.name!r}; the second is ignored")
            continue
        seen.add(collector.name)
        unique.append(collector)
    return Registry(tuple(unique), tuple(errors))


def collectors() -> tuple[Collector, ...]:
    return load().collectors


def section_names() -> tuple[str, ...]:
    return tuple(c.name for c in collectors())


def parsers() -> dict[str, Callable[[str], Any]]:
    """Every `bee parse` name -> its parser."""
    table: dict[str, Callable[[str], Any]] = {}
    for collector in collectors():
        table.update(collector.parsers)
    return table
