"""The spec language: units, versions, loading with one-line errors, and the JSON Schema."""

from __future__ import annotations

import functools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee.spec.load import SpecError, load_spec
from bee.spec.values import QuantityError, compare_versions, to_field_unit
from conftest import REPO, SCHEMA_DIR

EXAMPLE = REPO / "docs" / "examples" / "hgx-8gpu.spec.toml"


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("16 GiB", "size_bytes", 17179869184),
        ("16GiB", "size_bytes", 17179869184),
        ("1.92 TB", "size_bytes", 1920000000000),
        ("1920383410176", "size_bytes", 1920383410176),
        ("143771 MiB", "memory_total_mib", 143771),
        ("140 GiB", "memory_total_mib", 143360),
        ("2933 MT/s", "speed_mts", 2933),
        ("2933 MHz", "speed_mts", 2933),  # dmidecode < 3.0 and datasheets say MHz for MT/s
        ("4.8 GT/s", "speed_mts", 4800),
        ("32 GT/s", "max_link_speed_gts", 32),
        ("2.5 GT/s", "max_link_speed_gts", 2.5),
        ("3 GHz", "max_speed_mhz", 3000),
        ("2.2 kW", "capacity_w", 2200),
        ("700", "power_limit_w", 700),
    ],
)
def test_quantities_are_converted_to_the_fields_unit(text, field, value):
    got = to_field_unit(text, field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("16 GHz", "size_bytes"),
        ("16 parsecs", "size_bytes"),
        ("lots", "size_bytes"),
        ("5 W", "speed_mts"),
        ("16 GiB", "part_number"),
        ("nan GiB", "size_bytes"),
    ],
)
def test_quantities_of_the_wrong_kind_are_refused(text, field):
    with pytest.raises(QuantityError):
        to_field_unit(text, field)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("535.129.03", "550.54.15"),
        ("535.129.03", "535.129.10"),
        ("96.00.89.00.01", "96.00.A5.00.1A"),  # VBIOS: vendor hex
        ("96.00.99.00.01", "96.00.A5.00.01"),
        ("96.00.A5.00.09", "96.00.A5.00.1A"),
        ("3.8a", "3.10"),
        ("2.19.1", "2.20"),
        ("1.0", "1.0a"),
        ("U46 v2.70", "U46 v2.72"),
        ("14.27.4000", "28.39.2048"),
    ],
)
def test_versions_compare_part_by_part(older, newer):
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1
    assert compare_versions(newer, newer) == 0


def test_missing_version_parts_count_as_zero():
    assert compare_versions("535.129", "535.129.0") == 0


@given(st.text(max_size=40), st.text(max_size=40))
def test_version_comparison_is_total_and_antisymmetric(a, b):
    assert compare_versions(a, b) == -compare_versions(b, a)


GOOD = """\
spec_version = 1

[[check]]
id = "FINDINGS"
select = "findings"
none = { severity = ["warning", "critical"] }

[[profile]]
name = "qemu"
match = { board_product = "X11DPG-OT-CPU" }

[[profile.check]]
id = "MEMORY-DIMM-COUNT"
select = "memory.slots"
where = { populated = true }
count = 2

[[profile.check]]
id = "MEMORY-DIMM-SPEED"
select = "memory.slots"
where = { populated = true }
all = { speed_mts = { min = "2666 MHz" } }
"""


def test_a_good_spec_loads():
    spec = load_spec(GOOD.encode(), "good.toml")
    assert [c.id for c in spec.checks] == ["FINDINGS"]
    (profile,) = spec.profiles
    assert profile.name == "qemu" and [c.id for c in profile.checks] == [
        "MEMORY-DIMM-COUNT",
        "MEMORY-DIMM-SPEED",
    ]
    assert profile.checks[1].all[0].min == 2666


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # TOML syntax: tomllib names line and column.
        ("count = 2", "count = = 2", r"^bad\.toml: not valid TOML: .*line 16"),
        # Schema errors: file, line, key.
        ("count = 2", "cuont = 2", r"^bad\.toml:16: profile\[0\]\.check\[0\]\.cuont: unknown key"),
        (
            'min = "2666 MHz"',
            'gte = "2666 MHz"',
            r"^bad\.toml:22: profile\[0\]\.check\[1\]\.all\.speed_mts\.gte: unknown operator",
        ),
        (
            'min = "2666 MHz"',
            'min = "2666 W"',
            r"^bad\.toml:22: profile\[0\]\.check\[1\]\.all.*speed_mts.*power",
        ),
        (
            'id = "MEMORY-DIMM-SPEED"',
            'id = "MEMORY-DIMM-COUNT"',
            r"^bad\.toml:19: profile\[0\]\.check\[1\]\.id: .*already used",
        ),
        ('select = "findings"', "select = 3", r"^bad\.toml:5: check\[0\]\.select: "),
        ("spec_version = 1", "spec_version = 2", r"^bad\.toml:1: spec_version: "),
        (
            'match = { board_product = "X11DPG-OT-CPU" }',
            'match = { board = "X" }',
            r"^bad\.toml:10: profile\[0\]\.match\.board: unknown match key",
        ),
        ("count = 2", "count = { least = 2 }", r"^bad\.toml:16: profile\[0\]\.check\[0\]\.count"),
        (
            'none = { severity = ["warning", "critical"] }',
            'none = { severity = { regex = "(" } }',
            r"^bad\.toml:6: check\[0\]\.none.*not a regular expression",
        ),
    ],
)
def test_errors_are_one_line_naming_file_line_and_key(old, new, expected):
    assert old in GOOD
    with pytest.raises(SpecError) as caught:
        load_spec(GOOD.replace(old, new, 1).encode(), "bad.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_not_utf8_and_empty_specs_are_errors():
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(b"spec_version = 1\n\xff\n", "x.toml")
    with pytest.raises(SpecError, match="checks nothing"):
        load_spec(b"spec_version = 1\n", "x.toml")
    with pytest.raises(SpecError, match="spec_version = 1 is missing"):
        load_spec(b'[[check]]\nid = "A"\nselect = "cpu"\ncount = 1\n', "x.toml")


@settings(max_examples=300, deadline=20_000)
@given(st.text(max_size=400))
def test_arbitrary_text_is_a_spec_or_one_spec_error(text):
    try:
        load_spec(text.encode("utf-8", errors="surrogatepass"), "any.toml")
    except SpecError as exc:
        assert "\n" not in str(exc)


# TOML-shaped values: near-misses of real specs reach the validator, not just the TOML parser.
_keys = st.sampled_from(
    [
        "id",
        "select",
        "where",
        "count",
        "all",
        "any",
        "none",
        "same",
        "min",
        "max",
        "eq",
        "in",
        "regex",
        "tolerance",
        "version_at_least",
        "same_as",
        "size_bytes",
        "populated",
        "name",
        "match",
        "board_product",
        "check",
        "profile",
        "spec_version",
        "allow_unknown",
        "x.y",
    ]
)
_scalars = st.one_of(
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["16 GiB", "2933 MT/s", "A", "memory.slots", "(a|b)", "5%", "", "1.2.3"]),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


def _toml_value(value):
    return (
        json.dumps(value)
        if not isinstance(value, bool | dict | list)
        else (
            ("true" if value else "false")
            if isinstance(value, bool)
            else "[" + ", ".join(_toml_value(v) for v in value) + "]"
            if isinstance(value, list)
            else "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
        )
    )


@settings(max_examples=100, deadline=20_000)
@given(st.dictionaries(_keys, _values, max_size=6), st.booleans())
def test_structured_near_misses_load_or_fail_in_one_line(check, in_profile):
    body = "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in check.items())
    header = (
        '[[profile]]\nname = "p"\nmatch = { board_product = "B" }\n[[profile.check]]'
        if (in_profile)
        else "[[check]]"
    )
    text = f"spec_version = 1\n{header}\n{body}\n"
    try:
        load_spec(text.encode(), "near.toml")
    except SpecError as exc:
        assert "\n" not in str(exc)


@functools.cache
def _spec_validator():
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMA_DIR / "spec.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_example_spec_loads_and_matches_its_schema():
    import tomllib

    data = EXAMPLE.read_bytes()
    spec = load_spec(data, str(EXAMPLE))
    assert spec.profiles and sum(len(p.checks) for p in spec.profiles) + len(spec.checks) >= 15
    errors = list(_spec_validator().iter_errors(tomllib.loads(data.decode())))
    assert not errors, [e.message for e in errors[:5]]


@settings(max_examples=100, deadline=20_000)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_the_loader_and_the_json_schema_agree(check):
    """What the agent's hand-written validator accepts, the published schema accepts, and the
    other way round (field names and regexes aside, which only the agent can judge)."""
    import tomllib

    text = "spec_version = 1\n[[check]]\n" + "\n".join(
        f'"{k}" = {_toml_value(v)}' for k, v in check.items()
    )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        load_spec(text.encode(), "x.toml")
        agent_ok = True
    except SpecError as exc:
        agent_ok = False
        # Values only the agent can judge (units, regexes, bounds' order) are not in the schema.
        if re.search(
            r"unit|quantity|regular expression|kind|is \w+, but|min and max|number or a"
            r" quantity|tolerance|percentage|amount|not a number",
            str(exc),
        ):
            return
    schema_ok = not list(_spec_validator().iter_errors(raw))
    assert agent_ok == schema_ok, (text, agent_ok)
