"""Reading a spec: TOML text -> `Spec`, or one `SpecError` line naming file, line and key.

The file (schema: agent/bee/schema/spec.schema.json, example: docs/examples/hgx-8gpu.spec.toml):

    spec_version = 1
    [[check]]                      # applies to every machine
    id = "FINDINGS"
    select = "findings"
    none = { severity = ["warning", "critical"] }

    [[profile]]                    # the first profile whose `match` holds is used
    name = "hgx-h200"
    match = { board_product = "X13DEG-OAD", gpu_pci_device_id = "10de:2335" }
    [[profile.check]]
    id = "GPU-COUNT"
    select = "nvidia.gpus"
    count = 8

Validation is done here by hand (the agent has no jsonschema); tests check that it agrees with
the JSON Schema on every example and on generated specs.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from bee.spec.values import QuantityError, field_unit, to_field_unit

SPEC_VERSION = 1
MATCH_KEYS = ("board_product", "system_product", "system_sku", "gpu_pci_device_id")
QUANTIFIERS = ("count", "all", "any", "none", "same")
CHECK_KEYS = ("id", "description", "select", "where", "allow_unknown", *QUANTIFIERS)
OPERATORS = (
    "eq",
    "ne",
    "in",
    "regex",
    "min",
    "max",
    "tolerance",
    "version_at_least",
    "version_at_most",
    "same_as",
)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FIELD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
MAX_REGEX_CHARS = 500


class SpecError(ValueError):
    """An unreadable or invalid spec. str() is the one line an operator reads."""


Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldTest:
    """Conditions on one field of a part: `part_number = "M393..."`, `size_bytes = {min = 1}`."""

    field: str
    path: tuple[str, ...]
    eq: Scalar | None = None
    ne: Scalar | None = None
    one_of: tuple[Scalar, ...] | None = None
    one_of_strings: frozenset[str] = frozenset()
    regex: re.Pattern[str] | None = None
    min: float | None = None
    max: float | None = None
    tolerance: float | None = None
    tolerance_pct: bool = False
    version_at_least: str | None = None
    version_at_most: str | None = None
    same_as: tuple[str, ...] | None = None
    text: str  # how the spec wrote it, for `expected`


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    id: str
    description: str | None
    select: tuple[str, ...]
    where: tuple[FieldTest, ...]
    count: tuple[int, int | None] | None  # (at least, at most); at most None = no upper bound
    all: tuple[FieldTest, ...] | None
    any: tuple[FieldTest, ...] | None
    none: tuple[FieldTest, ...] | None
    same: tuple[str, ...] | None
    allow_unknown: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    name: str
    match: tuple[tuple[str, tuple[str, ...]], ...]
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    source: str
    sha256: str
    checks: tuple[Check, ...]
    profiles: tuple[Profile, ...]


def load_spec(data: bytes, source: str) -> Spec:
    """Parse and validate a spec file's bytes; raises SpecError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "Expected '=' after a key in a key/value pair (at line 3, column 5)".
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{source}: not valid TOML: nested too deeply") from None
    builder = _Builder(source, text)
    checks, profiles = builder.spec(raw)
    return Spec(
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
        checks=checks,
        profiles=profiles,
    )


Path = tuple[str | int, ...]


def path_text(path: Path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


class _Builder:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text

    def fail(self, path: Path, message: str) -> SpecError:
        # Lines are looked up only for an error: scanning costs as much as judging a big host.
        line = KeyLines(self.text).line_of(path)
        where = f"{self.source}:{line}" if line else self.source
        key = path_text(path)
        return SpecError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def spec(self, raw: dict[str, Any]) -> tuple[tuple[Check, ...], tuple[Profile, ...]]:
        for key in raw:
            if key not in ("spec_version", "check", "profile"):
                raise self.fail((key,), "unknown key (spec_version, check, profile)")
        version = raw.get("spec_version")
        if version is None:
            raise self.fail((), "spec_version = 1 is missing")
        if version != SPEC_VERSION or isinstance(version, bool):
            raise self.fail(("spec_version",), f"this bee reads spec_version {SPEC_VERSION}")
        ids: dict[str, Path] = {}
        checks = self.checks(raw.get("check", []), ("check",), ids)
        profiles_raw = raw.get("profile", [])
        if not isinstance(profiles_raw, list):
            raise self.fail(("profile",), "must be an array of tables ([[profile]])")
        profiles = []
        names: set[str] = set()
        for i, item in enumerate(profiles_raw):
            path: Path = ("profile", i)
            profile = self.profile(item, path, dict(ids))
            if profile.name in names:
                raise self.fail((*path, "name"), f"profile name {profile.name!r} is used twice")
            names.add(profile.name)
            profiles.append(profile)
        if not checks and not profiles:
            raise self.fail((), "no [[check]] and no [[profile]]: the spec checks nothing")
        return checks, tuple(profiles)

    def profile(self, raw: Any, path: Path, ids: dict[str, Path]) -> Profile:
        if not isinstance(raw, dict):
            raise self.fail(path, "must be a table")
        for key in raw:
            if key not in ("name", "match", "check"):
                raise self.fail((*path, key), "unknown key (name, match, check)")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail((*path, "name"), "a profile needs a name (a string)")
        match_raw = raw.get("match")
        if not isinstance(match_raw, dict) or not match_raw:
            raise self.fail(
                (*path, "match"), f"a profile needs a match table with any of {MATCH_KEYS}"
            )
        match = []
        for key, value in match_raw.items():
            if key not in MATCH_KEYS:
                raise self.fail((*path, "match", key), f"unknown match key (one of {MATCH_KEYS})")
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) and v for v in values):
                raise self.fail((*path, "match", key), "must be a string or a list of strings")
            match.append((key, tuple(values)))
        checks = self.checks(raw.get("check", []), (*path, "check"), ids)
        return Profile(name=name, match=tuple(match), checks=checks)

    def checks(self, raw: Any, path: Path, ids: dict[str, Path]) -> tuple[Check, ...]:
        if not isinstance(raw, list):
            raise self.fail(path, "must be an array of tables ([[check]])")
        out = []
        for i, item in enumerate(raw):
            check = self.check(item, (*path, i))
            if check.id in ids:
                raise self.fail(
                    (*path, i, "id"),
                    f"id {check.id!r} is already used at {path_text(ids[check.id])}",
                )
            ids[check.id] = (*path, i)
            out.append(check)
        return tuple(out)

    def check(self, raw: Any, path: Path) -> Check:
        if not isinstance(raw, dict):
            raise self.fail(path, "must be a table")
        for key in raw:
            if key not in CHECK_KEYS:
                raise self.fail((*path, key), f"unknown key (one of {', '.join(CHECK_KEYS)})")
        check_id = raw.get("id")
        if not isinstance(check_id, str) or not _ID.fullmatch(check_id):
            raise self.fail((*path, "id"), "a check needs an id: letters, digits, - _ .")
        select = raw.get("select")
        if not isinstance(select, str) or not _FIELD.fullmatch(select):
            raise self.fail(
                (*path, "select"), 'a check needs select = "section.list" (e.g. "memory.slots")'
            )
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            raise self.fail((*path, "description"), "must be a string")
        allow_unknown = raw.get("allow_unknown", False)
        if not isinstance(allow_unknown, bool):
            raise self.fail((*path, "allow_unknown"), "must be true or false")
        if not any(key in raw for key in QUANTIFIERS):
            raise self.fail(path, f"a check needs at least one of {', '.join(QUANTIFIERS)}")
        same = raw.get("same")
        if same is not None:
            fields = same if isinstance(same, list) else [same]
            if not fields or not all(isinstance(f, str) and _FIELD.fullmatch(f) for f in fields):
                raise self.fail((*path, "same"), "must be a field name or a list of field names")
            same = tuple(fields)
        return Check(
            id=check_id,
            description=description,
            select=tuple(select.split(".")),
            where=self.tests(raw.get("where", {}), (*path, "where")),
            count=self.count(raw["count"], (*path, "count")) if "count" in raw else None,
            all=self.tests(raw["all"], (*path, "all")) if "all" in raw else None,
            any=self.tests(raw["any"], (*path, "any")) if "any" in raw else None,
            none=self.tests(raw["none"], (*path, "none")) if "none" in raw else None,
            same=same,
            allow_unknown=allow_unknown,
        )

    def count(self, raw: Any, path: Path) -> tuple[int, int | None]:
        if _is_int(raw):
            if raw < 0:
                raise self.fail(path, "must not be negative")
            return raw, raw
        if isinstance(raw, dict) and raw and set(raw) <= {"min", "max"}:
            low, high = raw.get("min", 0), raw.get("max")
            if (
                not _is_int(low)
                or low < 0
                or (high is not None and (not _is_int(high) or high < low))
            ):
                raise self.fail(path, "min and max must be whole numbers, 0 <= min <= max")
            return low, high
        raise self.fail(path, "must be a whole number or { min = N, max = M }")

    def tests(self, raw: Any, path: Path) -> tuple[FieldTest, ...]:
        if not isinstance(raw, dict):
            raise self.fail(path, "must be a table of field conditions: { field = value, ... }")
        return tuple(self.test(field, value, (*path, field)) for field, value in raw.items())

    def test(self, field: str, raw: Any, path: Path) -> FieldTest:
        if not _FIELD.fullmatch(field):
            raise self.fail(path, "not a field name (letters, digits, _ and . between names)")
        ops: dict[str, Any] = {}
        if isinstance(raw, dict):
            if not raw:
                raise self.fail(path, "an empty condition")
            for op, value in raw.items():
                if op not in OPERATORS:
                    raise self.fail(
                        (*path, op), f"unknown operator (one of {', '.join(OPERATORS)})"
                    )
                ops[op] = value
        elif isinstance(raw, list):
            ops["in"] = raw
        else:
            ops["eq"] = raw
        args: dict[str, Any] = {}
        for op, value in ops.items():
            where = (*path, op) if isinstance(raw, dict) else path
            if op in ("eq", "ne"):
                args[op] = self.scalar(field, value, where)
            elif op == "in":
                if not isinstance(value, list) or not value:
                    raise self.fail(where, "one of: must be a non-empty list")
                args["one_of"] = tuple(self.scalar(field, v, where) for v in value)
                args["one_of_strings"] = frozenset(v for v in args["one_of"] if type(v) is str)
            elif op == "regex":
                args["regex"] = self.regex(value, where)
            elif op in ("min", "max"):
                number = self.scalar(field, value, where)
                if not _is_number(number):
                    raise self.fail(where, 'must be a number or a quantity such as "16 GiB"')
                args[op] = number
            elif op == "tolerance":
                args.update(self.tolerance(field, value, where))
            elif op in ("version_at_least", "version_at_most"):
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise self.fail(where, 'must be a version string such as "535.129.03"')
                args[op] = str(value)
            elif op == "same_as":
                if not isinstance(value, str) or not _FIELD.fullmatch(value):
                    raise self.fail(where, "must name another field of the same part")
                args["same_as"] = tuple(value.split("."))
        if "tolerance" in ops and not _is_number(args.get("eq")):
            raise self.fail(path, 'tolerance needs a numeric eq: { eq = "2 TB", tolerance = "1%" }')
        return FieldTest(
            field=field, path=tuple(field.split(".")), text=_condition_text(raw), **args
        )

    def scalar(self, field: str, value: Any, path: Path) -> Scalar:
        if isinstance(value, bool | int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.fail(path, "nan and inf are not values")
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
                raise self.fail(path, "a number out of range")
            return value
        if isinstance(value, str):
            if field_unit(field) is None:
                return value
            try:
                return to_field_unit(value, field)
            except QuantityError as exc:
                raise self.fail(path, str(exc)) from None
        raise self.fail(path, "must be a string, number or boolean")

    def regex(self, value: Any, path: Path) -> re.Pattern[str]:
        if not isinstance(value, str) or len(value) > MAX_REGEX_CHARS:
            raise self.fail(path, f"must be a regular expression (at most {MAX_REGEX_CHARS} chars)")
        try:
            return re.compile(value)
        except (re.error, RecursionError, OverflowError) as exc:
            raise self.fail(path, f"not a regular expression: {exc}") from None

    def tolerance(self, field: str, value: Any, path: Path) -> dict[str, Any]:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                pct = float(value.strip()[:-1])
            except ValueError:
                pct = -1.0
            if not 0 <= pct < 1e6:
                raise self.fail(path, 'a percentage such as "5%"')
            return {"tolerance": pct, "tolerance_pct": True}
        number = self.scalar(field, value, path)
        if not _is_number(number) or number < 0:
            raise self.fail(path, 'must be "5%" or an amount such as "1 GiB"')
        return {"tolerance": number}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _condition_text(raw: Any) -> str:
    return _toml_value(raw)


def _toml_value(value: Any) -> str:
    """Compact TOML-ish text of a condition, for the `expected` column."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


class KeyLines:
    """Which line of the TOML text writes each key, for error messages.

    A line scanner, not a parser: it follows `[table]` and `[[array]]` headers and `key =`
    lines. Keys inside inline tables or multi-line values are not seen; their error names the
    line of the nearest enclosing key instead.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        arrays: dict[Path, int] = {}  # [[header]] path -> how many seen
        table: Path = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if in_multiline:
                in_multiline = stripped.count('"""') % 2 == 0 and stripped.count("'''") % 2 == 0
                continue
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("[["):
                keys = _split_key(stripped[2 : stripped.find("]]")])
                base = self._resolve(keys, arrays)
                index = arrays.get(base, 0)
                arrays[base] = index + 1
                table = (*base, index)
                self.lines.setdefault(base, number)
                self.lines[table] = number
            elif stripped.startswith("["):
                table = self._resolve(_split_key(stripped[1 : stripped.find("]")]), arrays)
                self.lines.setdefault(table, number)
            else:
                key, sep, rest = stripped.partition("=")
                if sep:
                    self.lines.setdefault((*table, *_split_key(key)), number)
                    if rest.count('"""') % 2 == 1 or rest.count("'''") % 2 == 1:
                        in_multiline = True

    @staticmethod
    def _resolve(keys: tuple[str, ...], arrays: dict[Path, int]) -> Path:
        """`profile.check` inside the second [[profile]] -> ("profile", 1, "check")."""
        path: Path = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            if i < len(keys) - 1 and path in arrays:
                path = (*path, arrays[path] - 1)
        return path

    def line_of(self, path: Path) -> int | None:
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def _split_key(text: str) -> tuple[str, ...]:
    """`a."b.c".d` -> ("a", "b.c", "d")."""
    keys: list[str] = []
    current = ""
    quote = ""
    for char in text.strip():
        if quote:
            if char == quote:
                quote = ""
            else:
                current += char
        elif char in "\"'":
            quote = char
        elif char == ".":
            keys.append(current.strip())
            current = ""
        else:
            current += char
    keys.append(current.strip())
    return tuple(keys)
