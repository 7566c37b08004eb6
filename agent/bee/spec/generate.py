"""`bee spec`: a spec written from known-good machines' audits.

From one audit, every model, count, size, BIOS / firmware / VBIOS version, DIMM part number and
speed, PCIe link width and speed and PSU model it read is pinned; what differs per machine by
nature (serials, UUIDs, MACs, host names) is not. Health rules are added too. From many
audits, a check is written as it is where all audits agree; where they disagree, it is written
commented out with the values seen and how many audits had each.

Every candidate check is judged against the audits it came from: one the golden machine does
not pass (a disk whose health it could not read, a link below its maximum) is written
commented out with what that machine showed, so a spec always accepts its own audits.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bee.spec.evaluate import PASS, judge
from bee.spec.load import SPEC_VERSION, SpecError, load_spec

# PCI classes whose links a GPU server lives by: display/3D (GPUs), Ethernet, InfiniBand,
# NVMe, RAID and SAS controllers.
PCI_CLASSES = ["0300", "0302", "0200", "0207", "0108", "0104", "0107"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """How one kind of part becomes checks."""

    prefix: str  # check ids start with it: "MEMORY-DIMM"
    what: str  # for comments: "populated DIMMs"
    select: str
    where: dict[str, Any] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()  # one group of checks per distinct value (disk model)
    pinned: tuple[str, ...] = ()
    # (id suffix, meaning, the `all` conditions or a {"none": ...} quantifier)
    health: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    counted: bool = True  # False for a single table (board.system)


RULES: tuple[Parts, ...] = (
    Parts(
        prefix="SYSTEM",
        what="system (SMBIOS type 1)",
        select="board.system",
        pinned=("manufacturer", "product", "sku"),
        counted=False,
    ),
    Parts(
        prefix="BASEBOARD",
        what="baseboard (SMBIOS type 2)",
        select="board.baseboard",
        pinned=("manufacturer", "product", "version"),
        counted=False,
    ),
    Parts(
        prefix="BIOS",
        what="BIOS",
        select="board.bios",
        pinned=("vendor", "version"),
        counted=False,
    ),
    Parts(
        prefix="CPU",
        what="populated CPU sockets",
        select="cpu.sockets",
        where={"populated": True},
        pinned=("model", "core_count", "thread_count", "max_speed_mhz"),
    ),
    Parts(
        prefix="MEMORY",
        what="memory",
        select="memory",
        pinned=("total_bytes",),
        counted=False,
    ),
    Parts(
        prefix="MEMORY-DIMM",
        what="populated DIMMs",
        select="memory.slots",
        where={"populated": True},
        pinned=("size_bytes", "manufacturer", "part_number", "speed_mts", "configured_speed_mts"),
    ),
    Parts(
        prefix="DISK",
        what="disks (not the boot medium)",
        select="storage.disks",
        where={"is_boot_medium": False},
        group_by=("model",),
        pinned=("size_bytes", "firmware"),
        health=(
            ("HEALTH", "health verdict ok (SMART / NVMe log)", {"health.verdict": "ok"}),
            # Active even where the golden machine could not read some disks' health (then the
            # check above is commented out): a failing disk still rejects.
            (
                "NOT-FAILING",
                "no health verdict failing or warning",
                {"none": {"health.verdict": ["failing", "warning"]}},
            ),
        ),
    ),
    Parts(
        prefix="PCIE",
        what="GPU, NIC, NVMe and storage controller PCI functions",
        select="pcie.devices",
        where={"class_id": PCI_CLASSES},
        group_by=("vendor_id", "device_id"),
        pinned=("max_link_width", "max_link_speed_gts", "current_link_width"),
        health=(
            (
                "LINK-AT-MAX-WIDTH",
                "link trained at its maximum width",
                {"current_link_width": {"same_as": "max_link_width"}},
            ),
        ),
    ),
    Parts(
        prefix="NIC",
        what="network ports",
        select="network.interfaces",
        group_by=("driver",),
        pinned=("firmware_version", "firmware_psid", "supported_max_speed_mbps"),
    ),
    Parts(
        prefix="IB",
        what="InfiniBand / RoCE devices",
        select="network.infiniband",
        group_by=("hca_type",),
        pinned=("firmware_version", "board_id"),
    ),
    Parts(
        prefix="PSU",
        what="present power supplies",
        select="psu.power_supplies",
        where={"present": True},
        group_by=("model",),
        pinned=("capacity_w",),
    ),
    Parts(
        prefix="NVIDIA",
        what="NVIDIA driver",
        select="nvidia",
        pinned=("driver_version",),
        counted=False,
    ),
    Parts(
        prefix="GPU",
        what="NVIDIA GPUs",
        select="nvidia.gpus",
        group_by=("name",),
        pinned=(
            "vbios_version",
            "board_part_number",
            "memory_total_mib",
            "pcie_link_gen_max",
            "pcie_link_width_max",
            "power_default_limit_w",
        ),
        health=(
            (
                "ECC-UNCORRECTABLE",
                "no uncorrectable ECC error",
                {
                    "ecc_volatile_uncorrectable": 0,
                    "ecc_aggregate_uncorrectable": 0,
                },
            ),
            (
                "REMAPPED-ROWS",
                "no row-remapping failure or pending remap",
                {
                    "remapped_rows_failure": False,
                    "remapped_rows_pending": False,
                },
            ),
            (
                "LINK-AT-MAX-WIDTH",
                "PCIe link at its maximum width",
                {
                    "pcie_link_width_current": {"same_as": "pcie_link_width_max"},
                },
            ),
        ),
    ),
)

FINDINGS_CHECK = {
    "id": "FINDINGS",
    "select": "findings",
    "none": {"severity": ["warning", "critical"]},
}


@dataclass(slots=True)
class Candidate:
    id: str
    comment: str
    body: dict[str, Any]
    value: str  # what this machine pinned, for notes where audits disagree


def _slug(text: Any) -> str:
    slug = re.sub(r"[^A-Z0-9]+", "-", str(text).upper()).strip("-")
    return slug[:40].rstrip("-") or "X"


def _get(value: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _matches(part: Any, where: dict[str, Any]) -> bool:
    for key, wanted in where.items():
        got = _get(part, key)
        if isinstance(wanted, list):
            if got not in wanted:
                return False
        elif got is None or got != wanted or isinstance(got, bool) != isinstance(wanted, bool):
            return False
    return True


def _pretty(name: str, value: Any) -> Any:
    """Sizes as the operator reads them: 17179869184 -> "16 GiB" (exact, or left in bytes)."""
    if name.endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool):
        for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("TB", 10**12), ("GB", 10**9)):
            if value >= size and value % size == 0:
                return f"{value // size} {unit}"
        for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
            if value >= size and value % size == 0:
                return f"{value // size} {unit}"
    return value


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value != ""


def candidates(document: Any) -> list[Candidate]:
    """The checks one audit suggests, in spec order."""
    doc = document if isinstance(document, dict) else {}
    out: list[Candidate] = []
    for rule in RULES:
        selected = _get(doc, rule.select)
        if isinstance(selected, dict):
            parts = [selected]
        elif isinstance(selected, list):
            parts = [p for p in selected if isinstance(p, dict) and _matches(p, rule.where)]
        else:
            continue  # not read on this machine: nothing to pin
        base = {"select": rule.select, **({"where": dict(rule.where)} if rule.where else {})}
        if rule.counted:
            out.append(
                Candidate(
                    id=f"{rule.prefix}-COUNT",
                    comment=f"exactly {len(parts)} {rule.what}",
                    body={**base, "count": len(parts)},
                    value=f"count = {len(parts)}",
                )
            )
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for part in parts:
            key = tuple(_get(part, f) for f in rule.group_by)
            if all(_plain(k) for k in key):
                groups.setdefault(key, []).append(part)
        for key, members in sorted(groups.items(), key=lambda kv: [str(k) for k in kv[0]]):
            prefix = "-".join([rule.prefix, *(_slug(k) for k in key)])
            where = {**rule.where, **dict(zip(rule.group_by, key, strict=True))}
            scope = {**base, **({"where": where} if where else {})}
            label = " ".join(str(k) for k in key)
            if rule.group_by:
                out.append(
                    Candidate(
                        id=f"{prefix}-COUNT",
                        comment=f"exactly {len(members)} {rule.what} that are {label}",
                        body={**scope, "count": len(members)},
                        value=f"count = {len(members)}",
                    )
                )
            of = f"{rule.what} {label}".strip()
            for name in rule.pinned:
                out.extend(_pinned(prefix, of, scope, name, members))
            for suffix, meaning, conditions in rule.health:
                # A health rule is `all` conditions, or a whole quantifier ({"none": {...}}).
                rule_body = conditions if set(conditions) <= {"none"} else {"all": conditions}
                out.append(
                    Candidate(
                        id=f"{prefix}-{suffix}",
                        comment=f"health: the {of}: {meaning}",
                        body={**scope, **rule_body},
                        value="health",
                    )
                )
    out.append(
        Candidate(
            id="FINDINGS",
            comment="health: no finding of severity warning or critical",
            body={k: v for k, v in FINDINGS_CHECK.items() if k != "id"},
            value="health",
        )
    )
    return _unique(out)


def _pinned(
    prefix: str, of: str, scope: dict[str, Any], name: str, members: list[dict[str, Any]]
) -> list[Candidate]:
    values = [_get(m, name) for m in members]
    if not values or not all(_plain(v) for v in values):
        return []  # not read on some part: nothing to pin
    counts = Counter(values)
    check_id = f"{prefix}-{_slug(name)}"
    if len(counts) == 1:
        value = _pretty(name, values[0])
        return [
            Candidate(
                id=check_id,
                comment=f"every one of the {of}: {name} as on the golden machine",
                body={**scope, "all": {name: value}},
                value=f"{name} = {_toml(value)}",
            )
        ]
    # Parts of one kind that differ (DIMMs of two sizes): how many have each value.
    out = []
    for value, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        shown = _pretty(name, value)
        where = {**scope.get("where", {}), name: shown}
        out.append(
            Candidate(
                id=f"{check_id}-{_slug(shown)}",
                comment=f"exactly {n} of the {of} with {name} {shown}",
                body={**scope, "where": where, "count": n},
                value=f"count = {n}",
            )
        )
    return out


def _unique(items: list[Candidate]) -> list[Candidate]:
    seen: Counter[str] = Counter()
    for item in items:
        seen[item.id] += 1
        if seen[item.id] > 1:
            item.id = f"{item.id}-{seen[item.id]}"
    return items


# -- TOML text --------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return _toml(str(value))


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _block(header: str, check_id: str, body: dict[str, Any]) -> list[str]:
    lines = [header, f"id = {_toml(check_id)}"]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in body.items()]
    return lines


HEADER = """\
# bee hardware spec, written by `bee spec` from {what}.
# `bee check THIS-FILE AUDIT.json` judges an audit against it; `bee audit --spec THIS-FILE` and
# the image's /etc/bee/spec.toml (or bee.spec= on the kernel command line) put the verdict on
# the console. Every check runs; each is PASS, FAIL or UNKNOWN; FAIL and UNKNOWN both reject.
#
# A check: `select` names the parts (a list or table of the audit document), `where` filters
# them, then any of: `count` (exactly N, or {{ min = N, max = M }}), `all` / `any` / `none`
# (conditions on each part's fields), `same` (fields all parts agree on). A condition is a value
# (equals), a list (one of), or a table of operators: eq ne in regex min max tolerance
# version_at_least version_at_most same_as. Sizes and speeds take units: "16 GiB", "2933 MT/s".
# Edit freely: pin less (delete a check), loosen (version_at_least, tolerance), add rules.
# Lines written commented out are checks the golden audits did not agree on or did not pass.
"""


def write_spec(documents: list[Any], names: list[str]) -> str:
    """The spec text for these audits (names say where each came from, for the header)."""
    per_doc = [candidates(d) for d in documents]
    passed = [_passing(c, d) for c, d in zip(per_doc, documents, strict=True)]
    total = len(documents)
    order: list[str] = []
    variants: dict[str, Counter[str]] = {}
    chosen: dict[str, Candidate] = {}
    failed: dict[str, list[str]] = {}
    bodies: dict[str, dict[str, Candidate]] = {}
    for cands, ok in zip(per_doc, passed, strict=True):
        for cand in cands:
            key = _toml(cand.body)
            if cand.id not in variants:
                order.append(cand.id)
                variants[cand.id] = Counter()
                bodies[cand.id] = {}
            variants[cand.id][key] += 1
            bodies[cand.id].setdefault(key, cand)
            if cand.id not in ok:
                failed.setdefault(cand.id, []).append(ok.get("#why:" + cand.id, ""))
    what = (
        names[0]
        if total == 1
        else f"{total} audits ({', '.join(names[:3])}{', ...' if total > 3 else ''})"
    )
    lines = [HEADER.format(what=what).rstrip("\n"), "", f"spec_version = {SPEC_VERSION}", ""]
    match = _match(documents)
    header = "[[check]]"
    if match:
        lines += [
            "# One profile: the first profile whose every match key holds is used. Specs for other",
            "# machine types can be appended as further [[profile]] tables.",
            "[[profile]]",
            f"name = {_toml(match.pop('name'))}",
            f"match = {_toml(match)}",
            "",
        ]
        header = "[[profile.check]]"
    for check_id in order:
        seen = variants[check_id]
        body_key, votes = seen.most_common(1)[0]
        cand = bodies[check_id][body_key]
        chosen[check_id] = cand
        block = _block(header, check_id, cand.body)
        notes = [f"# {cand.comment}"]
        active = votes == total and check_id not in failed
        if votes != total or len(seen) > 1:
            shown = [
                f"{bodies[check_id][k].value} ({n} audit{'s' if n != 1 else ''})"
                for k, n in seen.most_common()
            ]
            absent = total - sum(seen.values())
            if absent:
                shown.append(f"absent ({absent} audit{'s' if absent != 1 else ''})")
            notes.append("# audits disagree: " + ", ".join(shown))
        if check_id in failed:
            why = "; ".join(sorted(set(w for w in failed[check_id] if w)))[:200]
            notes.append(f"# not passed by {len(failed[check_id])} of the golden audits: {why}")
        lines += notes
        lines += block if active else [f"# {line}" for line in block]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _passing(cands: list[Candidate], document: Any) -> dict[str, str]:
    """Ids of the candidates this document passes (and '#why:ID' -> what it showed otherwise)."""
    text = "\n".join(
        ["spec_version = 1", ""]
        + [line for c in cands for line in [*_block("[[check]]", c.id, c.body), ""]]
    )
    try:
        spec = load_spec(text.encode(), "generated")
    except SpecError as exc:  # a value the rule language cannot hold: pin nothing
        return {"#why:" + c.id: f"cannot be written: {exc}" for c in cands}
    result: dict[str, str] = {}
    for check in judge(spec, document).checks:
        if check.status == PASS:
            result[check.id] = ""
        else:
            result["#why:" + check.id] = f"{check.status} {check.got}"
    return result


def _match(documents: list[Any]) -> dict[str, Any]:
    """A profile for the machine type most audits are of: its board product and GPU id."""
    products = Counter(_get(d, "board.baseboard.product") for d in documents)
    product = products.most_common(1)[0][0] if products else None
    gpu_ids = Counter(
        f"10de:{g.get('pci_device_id')}".lower()
        for d in documents
        for g in (_get(d, "nvidia.gpus") or [])
        if isinstance(g, dict) and isinstance(g.get("pci_device_id"), str)
    )
    match: dict[str, Any] = {}
    if isinstance(product, str) and product:
        match["board_product"] = product
    if gpu_ids:
        match["gpu_pci_device_id"] = gpu_ids.most_common(1)[0][0]
    if not match:
        return {}
    system = Counter(_get(d, "board.system.product") for d in documents).most_common(1)[0][0]
    name = system if isinstance(system, str) and system else product or match["gpu_pci_device_id"]
    return {"name": str(name), **match}
