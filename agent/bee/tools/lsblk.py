"""lsblk -J -b -o <COLUMNS>: the machine's block devices, whole disks first.

Fixtures cover util-linux 2.38.1 (Debian 12, typed JSON: numbers and booleans). Before
util-linux 2.33 every value was a string ("rm": "1", "size": "500107862016"); both are accepted.
Whole disks are the unit (types `disk`, `rom`, `mpath`); partitions, LVM volumes, RAID sets
and mounts stay nested under them as lsblk prints them. Loop, zram and ram devices are skipped.
The live medium bee booted from is marked `is_boot_medium` (see BOOT_MEDIUM_MOUNTPOINTS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bee.jsonvalue import integer as _int
from bee.jsonvalue import text as _text
from bee.probe import Probe

COLUMNS = (
    "NAME,KNAME,PATH,TYPE,SIZE,MODEL,SERIAL,WWN,TRAN,ROTA,RM,RO,VENDOR,REV,HCTL,PKNAME,FSTYPE,"
    "MOUNTPOINT"
)
ARGV = ("lsblk", "-J", "-b", "-o", COLUMNS)
TIMEOUT_S = 20.0

SKIPPED_TYPES = frozenset({"loop"})
PART_TYPES = frozenset({"part"})
SKIPPED_NAME_PREFIXES = ("zram", "ram", "loop")
# Where live-boot mounts the medium it booted from: /usr/lib/live/mount/medium on the bee image
# (bookworm, seen in the QEMU guest capture), /run/live/medium and /lib/live/mount/medium in
# other live-boot versions.
BOOT_MEDIUM_MOUNTPOINTS = (
    "/usr/lib/live/mount/medium",
    "/run/live/medium",
    "/lib/live/mount/medium",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockChild:
    """A partition, LVM volume, RAID set, ... under a whole disk."""

    name: str
    kname: str | None
    type: str | None
    size_bytes: int | None
    fstype: str | None
    mountpoints: list[str]
    children: list[BlockChild]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDisk:
    name: str
    kname: str | None
    path: str | None
    type: str | None
    size_bytes: int | None
    model: str | None
    vendor: str | None
    serial: str | None
    wwn: str | None
    revision: str | None
    transport: str | None
    hctl: str | None
    rotational: bool | None
    removable: bool | None
    read_only: bool | None
    fstype: str | None
    mountpoints: list[str]
    is_boot_medium: bool
    children: list[BlockChild]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDevices:
    disks: list[BlockDisk] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # loop/zram/ram device names
    errors: list[str] = field(default_factory=list)


def _bool(value: Any) -> bool | None:
    """`true`/`false` (util-linux >= 2.33), `"1"`/`"0"` (older), 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0 if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true"):
            return True
        if text in ("0", "false"):
            return False
    return None


def _mountpoints(node: dict[str, Any]) -> list[str]:
    # MOUNTPOINT gives one value; MOUNTPOINTS (util-linux >= 2.37) a list with nulls.
    found: list[str] = []
    values = node.get("mountpoints")
    candidates = [*values] if isinstance(values, list) else []
    candidates.append(node.get("mountpoint"))
    for value in candidates:
        text = _text(value)
        if text and text not in found:
            found.append(text)
    return found


# lsblk without -b prints sizes like "476.9G" in powers of 1024 (util-linux's size_to_human_string).
_SIZE_UNITS = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6, "Z": 7, "Y": 8}


def _size(value: Any) -> int | None:
    """Bytes: 500107862016, "500107862016", or "476.9G" (rounded as lsblk rounded it)."""
    exact = _int(value)
    if exact is not None or not isinstance(value, str):
        return exact
    text = value.strip().upper().removesuffix("IB").removesuffix("B") or value.strip()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _SIZE_UNITS else (text, "B")
    try:
        amount = float(number.replace(",", "."))
    except ValueError:
        return None
    if not 0 <= amount < 1 << 64:
        return None
    return round(amount * 1024 ** _SIZE_UNITS[unit])


def _children(node: dict[str, Any], depth: int = 0) -> list[BlockChild]:
    raw = node.get("children")
    if not isinstance(raw, list) or depth > 16:
        return []
    result = []
    for child in raw:
        if not isinstance(child, dict) or _text(child.get("name")) is None:
            continue
        result.append(
            BlockChild(
                name=_text(child.get("name")) or "",
                kname=_text(child.get("kname")),
                type=_text(child.get("type")),
                size_bytes=_size(child.get("size")),
                fstype=_text(child.get("fstype")),
                mountpoints=_mountpoints(child),
                children=_children(child, depth + 1),
            )
        )
    return result


def _all_mountpoints(disk_mounts: list[str], children: list[BlockChild]) -> list[str]:
    found = list(disk_mounts)
    stack = list(children)
    while stack:
        child = stack.pop()
        found.extend(child.mountpoints)
        stack.extend(child.children)
    return found


def is_skipped(name: str, dev_type: str | None) -> bool:
    base = name.rsplit("/", 1)[-1]
    return dev_type in SKIPPED_TYPES or base.startswith(SKIPPED_NAME_PREFIXES)


def _name(node: dict[str, Any]) -> str | None:
    return _text(node.get("name")) or _text(node.get("kname"))


def _flat_child(node: dict[str, Any]) -> BlockChild:
    return BlockChild(
        name=_name(node) or "",
        kname=_text(node.get("kname")),
        type=_text(node.get("type")),
        size_bytes=_size(node.get("size")),
        fstype=_text(node.get("fstype")),
        mountpoints=_mountpoints(node),
        children=[],
    )


def parse(text: str) -> BlockDevices:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return BlockDevices(errors=[f"lsblk output is not JSON: {exc}"])
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        return BlockDevices(errors=["lsblk output has no blockdevices list"])
    nodes: list[dict[str, Any]] = []
    flat: list[tuple[str | None, BlockChild]] = []  # `lsblk -l`: partitions at the top level
    skipped: list[str] = []
    for node in data["blockdevices"]:
        if not isinstance(node, dict):
            continue
        name = _name(node)
        if name is None:
            continue
        dev_type = _text(node.get("type"))
        if is_skipped(name, dev_type):
            skipped.append(name)
        elif dev_type in PART_TYPES:
            flat.append((_text(node.get("pkname")), _flat_child(node)))
        else:
            nodes.append(node)
    # Without PKNAME a flat partition belongs to the disk its name extends: sda1 -> sda.
    owned = [(parent or _owner(child.name, nodes), child) for parent, child in flat]
    disks: list[BlockDisk] = []
    for node in nodes:
        name = _name(node) or ""
        children = _children(node) + [child for parent, child in owned if parent == name]
        mounts = _mountpoints(node)
        boot = any(m in BOOT_MEDIUM_MOUNTPOINTS for m in _all_mountpoints(mounts, children))
        disks.append(
            BlockDisk(
                name=name,
                kname=_text(node.get("kname")),
                path=_text(node.get("path")),
                type=_text(node.get("type")),
                size_bytes=_size(node.get("size")),
                model=_text(node.get("model")),
                vendor=_text(node.get("vendor")),
                serial=_text(node.get("serial")),
                wwn=_text(node.get("wwn")),
                revision=_text(node.get("rev")),
                transport=_text(node.get("tran")),
                hctl=_text(node.get("hctl")),
                rotational=_bool(node.get("rota")),
                removable=_bool(node.get("rm")),
                read_only=_bool(node.get("ro")),
                fstype=_text(node.get("fstype")),
                mountpoints=mounts,
                is_boot_medium=boot,
                children=children,
            )
        )
    return BlockDevices(disks=disks, skipped=skipped)


def _owner(part: str, nodes: list[dict[str, Any]]) -> str | None:
    """The longest disk name that the partition's name extends (nvme0n1p1 -> nvme0n1)."""
    names = [n for n in (_name(node) for node in nodes) if n and part.startswith(n)]
    return max(names, key=len) if names else None


def collect(probe: Probe) -> BlockDevices | None:
    """Run lsblk; None when it is not installed or gave no list (failed, printed nothing or
    no JSON): the storage collector then lists the disks that smartctl and sysfs see. Every
    machine bee runs on has a block device, so an empty answer is an error, not "no disks"."""
    result = probe.run(ARGV, timeout_s=TIMEOUT_S)
    if result.not_found:
        return None
    if not result.stdout.strip():
        if result.ok:
            probe.error(f"{' '.join(ARGV[:3])}: printed nothing")
        return None
    parsed = parse(result.stdout)
    for message in parsed.errors:
        probe.error(message)
    return None if parsed.errors and not parsed.disks else parsed


PARSERS = {"lsblk": parse}
