"""Every parser has real fixtures, and each fixture still parses to its expected document.

fixtures/<tool>/<case>.<txt|json|xml> is a captured output; <case>.expected.json beside it is
what `bee parse <tool>` must make of it. Regenerate after a deliberate change with
BEE_REGEN_FIXTURES=1 and review the diff.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil

import pytest

import bee.tools
from bee.registry import parsers as available_parsers
from bee.serialize import to_jsonable
from conftest import FIXTURES

RAW_SUFFIXES = (".txt", ".json", ".xml")
REGENERATE = os.environ.get("BEE_REGEN_FIXTURES") == "1"


def fixture_cases() -> list[tuple[str, object]]:
    cases = []
    for tool in sorted(available_parsers()):
        directory = FIXTURES / tool
        for raw in sorted(directory.glob("*")) if directory.is_dir() else []:
            if raw.suffix in RAW_SUFFIXES and not raw.name.endswith(".expected.json"):
                cases.append(pytest.param(tool, raw, id=f"{tool}/{raw.name}"))
    return cases


def test_every_parser_is_declared_by_a_collector_and_has_fixtures():
    parsers = available_parsers()
    tables = [
        getattr(importlib.import_module(f"bee.tools.{m.name}"), "PARSERS", {})
        for m in pkgutil.iter_modules(bee.tools.__path__)
    ]
    undeclared = sorted({name for table in tables for name in table} - set(parsers))
    assert not undeclared, f"PARSERS no collector declares (bee parse would not know): {undeclared}"
    missing = [
        tool
        for tool in parsers
        if not any(
            p.suffix in RAW_SUFFIXES and not p.name.endswith(".expected.json")
            for p in (FIXTURES / tool).glob("*")
        )
    ]
    assert not missing, f"parsers without fixtures in fixtures/<tool>/: {missing}"


@pytest.mark.parametrize(("tool", "raw"), fixture_cases())
def test_fixture_parses_to_its_expected_document(tool, raw):
    parse = available_parsers()[tool]
    actual = to_jsonable(parse(raw.read_bytes().decode("utf-8", errors="replace")))
    expected_path = raw.with_name(raw.name.rsplit(".", 1)[0] + ".expected.json")
    if REGENERATE:
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert expected_path.is_file(), f"{expected_path} is missing (BEE_REGEN_FIXTURES=1 writes it)"
    assert actual == json.loads(expected_path.read_text(encoding="utf-8"))
