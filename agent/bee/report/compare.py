"""The majority of each field across the fleet, the nodes that differ from it, in words.

"Majority" is the most common phrase (a plurality); when two phrases tie for most common
there is none, and the report says so instead of picking one. Hardware groups follow cardiff's
idea: nodes whose hardware fields are all equal form one group.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bee.report.fields import FIELDS, NOT_REPORTED, Field
from bee.report.load import Loaded, Node

NAMES_SHOWN = 8  # per group in a sentence; the HTML table shows every node anyway
GROUPS_SHOWN = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    value: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    field: Field
    majority: Group | None  # None: a tie for the most common value
    others: tuple[Group, ...]  # the groups that are not the majority, largest first

    def sentence(self) -> str:
        """'node17: 31 DIMMs; 63 others: 32 DIMMs'."""
        parts = [f"{_names(g.nodes)}: {g.value}" for g in self.others[:GROUPS_SHOWN]]
        if len(self.others) > GROUPS_SHOWN:
            rest = self.others[GROUPS_SHOWN:]
            parts.append(f"{sum(len(g.nodes) for g in rest)} more nodes in {len(rest)} variants")
        if self.majority is None:
            return "no majority: " + "; ".join(parts)
        count = len(self.majority.nodes)
        parts.append(f"{count} {'other' if count == 1 else 'others'}: {self.majority.value}")
        return "; ".join(parts)

    def odd_nodes(self) -> set[str]:
        return {name for group in self.others for name in group.nodes}


def _names(nodes: tuple[str, ...]) -> str:
    if len(nodes) <= NAMES_SHOWN:
        return ", ".join(nodes)
    return ", ".join(nodes[:NAMES_SHOWN]) + f" and {len(nodes) - NAMES_SHOWN} more"


def _difference(field: Field, pairs: Iterable[tuple[str, str]]) -> Difference | None:
    members: dict[str, list[str]] = defaultdict(list)
    for name, value in pairs:
        members[value].append(name)
    if len(members) < 2:
        return None
    # Largest first; among equals, the value's text, so the output does not depend on file order.
    groups = sorted(
        (Group(value=value, nodes=tuple(names)) for value, names in members.items()),
        key=lambda g: (-len(g.nodes), g.value),
    )
    if len(groups[0].nodes) == len(groups[1].nodes):
        return Difference(field=field, majority=None, others=tuple(groups))
    return Difference(field=field, majority=groups[0], others=tuple(groups[1:]))


def differences(nodes: Sequence[Node]) -> list[Difference]:
    """For each compared field on which the nodes do not all agree, who differs and how."""
    found = []
    for field in FIELDS:
        if field.compared:
            pairs = ((node.name, node.row.get(field.key, "")) for node in nodes)
            if (difference := _difference(field, pairs)) is not None:
                found.append(difference)
    return found


VERDICT_FIELD = Field(key="verdict", label="verdict", read=lambda _d: "", hardware=False)


def verdict_difference(nodes: Sequence[Node]) -> Difference | None:
    """The verdict compared like a field: 'node3: REJECT (memory.dimms); 63 others: ACCEPT'."""
    return _difference(VERDICT_FIELD, ((node.name, node.verdict.words()) for node in nodes))


def hardware_groups(nodes: Sequence[Node]) -> list[tuple[str, ...]]:
    """Nodes with identical hardware fields, largest group first."""
    keys = [f.key for f in FIELDS if f.compared and f.hardware]
    members: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for node in nodes:
        members[tuple(node.row.get(k, "") for k in keys)].append(node.name)
    return sorted((tuple(n) for n in members.values()), key=lambda g: (-len(g), g))


def verdict_counts(nodes: Sequence[Node]) -> list[tuple[str, int]]:
    tally = Counter(node.verdict.status for node in nodes)
    return sorted(tally.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    """Everything the renderers show, computed once."""

    loaded: Loaded
    differences: list[Difference]
    verdict: Difference | None
    groups: list[tuple[str, ...]]
    shared_serials: list[tuple[str, tuple[str, ...]]]  # one serial in several files

    @property
    def nodes(self) -> list[Node]:
        return self.loaded.nodes

    def odd(self) -> dict[str, set[str]]:
        """node name -> keys of the fields where it is not with the majority."""
        odd: dict[str, set[str]] = defaultdict(set)
        for difference in [*self.differences, *([self.verdict] if self.verdict else [])]:
            for name in difference.odd_nodes():
                odd[name].add(difference.field.key)
        return odd


def analyse(loaded: Loaded) -> Fleet:
    by_serial: dict[str, list[str]] = defaultdict(list)
    for node in loaded.nodes:
        serial = node.row.get("serial", NOT_REPORTED)
        if serial != NOT_REPORTED:
            by_serial[serial].append(node.name)
    shared = sorted((s, tuple(n)) for s, n in by_serial.items() if len(n) > 1)
    return Fleet(
        loaded=loaded,
        differences=differences(loaded.nodes),
        verdict=verdict_difference(loaded.nodes),
        groups=hardware_groups(loaded.nodes),
        shared_serials=shared,
    )
