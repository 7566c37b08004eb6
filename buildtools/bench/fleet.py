"""A synthetic fleet for `bee report`: N copies of one real audit document (the big host's, as
the agent writes it from `bighost`'s capture), each with its own serial, UUID, machine and boot
ids, and a few planted differences at fixed nodes:

    python3 -m buildtools.bench.fleet --out DIR [--nodes 1000] [--document AUDIT.json]

| node (of N)   | planted                                            |
| ------------- | -------------------------------------------------- |
| N/64 + 1      | one DIMM fewer                                     |
| N/32 + 2      | one GPU fewer                                      |
| N/16 + 3, +4  | an older BIOS                                      |
| N/8 + 5       | one disk failing SMART, with its critical finding  |
| N/4 + 6       | another PSU model                                  |
| N/2 + 7       | the storage collector timed out (section null)     |

`PLANTED` says which fields each plant must make differ, so the bench (and its test) check that
`bee report` names exactly these nodes.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Plant = Callable[[dict[str, Any]], None]


def _drop_dimm(document: dict[str, Any]) -> None:
    dimm = next(s for s in reversed(document["memory"]["slots"]) if s.get("populated"))
    dimm["populated"] = False
    document["memory"]["total_bytes"] = (document["memory"].get("total_bytes") or 0) - (
        dimm.get("size_bytes") or 0
    )
    if isinstance(document["memory"].get("populated_count"), int):
        document["memory"]["populated_count"] -= 1


def _drop_gpu(document: dict[str, Any]) -> None:
    document["nvidia"]["gpus"].pop()
    document["nvidia"]["attached_gpus"] = len(document["nvidia"]["gpus"])


def _old_bios(document: dict[str, Any]) -> None:
    document["board"]["bios"]["version"] = "3.6"
    document["board"]["bios"]["release_date"] = "06/01/2023"


def _failing_disk(document: dict[str, Any]) -> None:
    disk = document["storage"]["disks"][0]
    disk["health"] = {"verdict": "failing", "reasons": ["SMART overall-health: FAILED"]}
    document["findings"].append(
        {
            "source": "storage",
            "severity": "critical",
            "subject": disk.get("name") or "disk",
            "message": "SMART overall-health self-assessment: FAILED",
        }
    )


def _other_psu(document: dict[str, Any]) -> None:
    for psu in document["psu"]["power_supplies"]:
        psu["model"] = "PWS-3K02G-2R"


def _storage_timeout(document: dict[str, Any]) -> None:
    document["storage"] = None
    document["collectors"]["storage"]["status"] = "timeout"


# (node index from the fraction and offset, plant, fields bee report must flag for it)
PLANTED: tuple[tuple[int, int, Plant, frozenset[str]], ...] = (
    (64, 1, _drop_dimm, frozenset({"memory", "dimms", "dimm_types"})),
    (32, 2, _drop_gpu, frozenset({"gpus", "gpu_firmware"})),
    (16, 3, _old_bios, frozenset({"bios"})),
    (16, 4, _old_bios, frozenset({"bios"})),
    (8, 5, _failing_disk, frozenset({"disk_health", "findings"})),
    (4, 6, _other_psu, frozenset({"psus"})),
    (2, 7, _storage_timeout, frozenset({"disks", "disk_models", "disk_health"})),
)


def node_name(index: int) -> str:
    return f"node{index:04d}"


def planted(count: int) -> dict[str, frozenset[str]]:
    """node name -> the fields bee report must say it differs in."""
    plan: dict[str, frozenset[str]] = {}
    for fraction, offset, _, fields in PLANTED:
        name = node_name(count // fraction + offset)
        plan[name] = plan.get(name, frozenset()) | fields
    return plan


def make_fleet(document: dict[str, Any], out: Path, count: int) -> dict[str, frozenset[str]]:
    """Write count variants of document as out/nodeNNNN.json (indented, as bee audit writes)."""
    if count < 16:
        raise ValueError("a fleet with planted differences needs at least 16 nodes")
    out.mkdir(parents=True, exist_ok=True)
    plants: dict[int, list[Plant]] = {}
    for fraction, offset, plant, _ in PLANTED:
        plants.setdefault(count // fraction + offset, []).append(plant)
    for index in range(1, count + 1):
        node = copy.deepcopy(document)
        node["board"]["system"]["serial"] = f"S{index:06d}"
        node["board"]["system"]["uuid"] = f"00000000-0000-4000-8000-{index:012d}"
        node["host"]["machine_id"] = f"{index:032x}"
        node["host"]["boot_id"] = f"00000000-0000-4000-9000-{index:012d}"
        for plant in plants.get(index, []):
            plant(node)
        text = json.dumps(node, indent=2, ensure_ascii=False) + "\n"
        (out / f"{node_name(index)}.json").write_text(text, encoding="utf-8")
    return planted(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m buildtools.bench.fleet", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--document", type=Path, help="default: the big host, replayed")
    args = parser.parse_args(argv)
    if args.document:
        document = json.loads(args.document.read_text(encoding="utf-8"))
    else:
        import tempfile

        from buildtools.bench import bighost

        with tempfile.TemporaryDirectory() as tmp:
            bighost.generate(bighost.Shape(), Path(tmp) / "host")
            document = bighost.replay(Path(tmp) / "host")
    try:
        plan = make_fleet(document, args.out, args.nodes)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        print(f"fleet: cannot plant differences in this document: {exc}", file=sys.stderr)
        return 1
    for name, fields in sorted(plan.items()):
        print(f"{name}: {', '.join(sorted(fields))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
