"""nvidia-smi nvlink -s: the state of every NVLink of every GPU.

Command: `nvidia-smi nvlink -s` (drivers 470 to 580). Layout:

    GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5269b708-678a-b1a8-60f0-c90406537486)
             Link 0: 26.562 GB/s
             Link 1: <inactive>
    GPU 2: NVIDIA RTX A6000 (UUID: GPU-02c05ee3-bdb5-aac7-f9e8-a4c8f3f725b3)
    NVML: Unable to retrieve NVLink information as all links are inActive

A GPU without NVLink lists no links. On an NVSwitch system (HGX) the links train only once the
fabric manager has configured the switches; bee's image carries no fabric manager, so links
that are all inactive there are UNKNOWN, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.findings import Finding

ARGV = ("nvidia-smi", "nvlink", "-s")


@dataclass(frozen=True, slots=True, kw_only=True)
class NvLink:
    link: int
    active: bool
    speed_gbps: float | None  # GB/s as printed (per direction)
    raw: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NvLinkGpu:
    index: int | None
    name: str | None
    uuid: str | None
    links: list[NvLink]
    active_count: int
    inactive_count: int
    message: str | None  # "NVML: Unable to retrieve NVLink information as all links are inActive"


@dataclass(frozen=True, slots=True, kw_only=True)
class NvLinkStatus:
    gpus: list[NvLinkGpu]


def _gpu(line: str) -> tuple[int | None, str | None, str | None]:
    """ "GPU 0: NVIDIA H100 (UUID: GPU-...)" -> (0, "NVIDIA H100", "GPU-...")."""
    head, _, rest = line.partition(":")
    number = head.strip().removeprefix("GPU").strip()
    name, _, uuid_part = rest.partition("(UUID:")
    uuid = uuid_part.partition(")")[0].strip() or None
    return (int(number) if number.isdigit() else None), (name.strip() or None), uuid


def _link(line: str) -> NvLink | None:
    head, sep, value = line.strip().partition(":")
    number = head.strip().removeprefix("Link").strip()
    if not sep or not head.strip().startswith("Link") or not number.isdigit():
        return None
    value = value.strip()
    speed_text = value.partition(" ")[0]
    try:
        speed = float(speed_text)
    except ValueError:
        speed = None
    active = speed is not None and speed > 0
    return NvLink(link=int(number), active=active, speed_gbps=speed, raw=line.strip())


def parse(text: str) -> NvLinkStatus:
    blocks: list[dict] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("GPU ") and ":" in line:
            index, name, uuid = _gpu(line)
            blocks.append({"index": index, "name": name, "uuid": uuid, "links": [], "msg": None})
            continue
        if not blocks:
            continue
        link = _link(line)
        if link is not None:
            blocks[-1]["links"].append(link)
        elif blocks[-1]["msg"] is None:
            blocks[-1]["msg"] = line[:200]
    gpus = []
    for block in blocks:
        links = block["links"]
        active = sum(1 for link in links if link.active)
        gpus.append(
            NvLinkGpu(
                index=block["index"],
                name=block["name"],
                uuid=block["uuid"],
                links=links,
                active_count=active,
                inactive_count=len(links) - active,
                message=block["msg"],
            )
        )
    return NvLinkStatus(gpus=gpus)


def findings(status: NvLinkStatus, source: str = "health") -> list[Finding]:
    """Some links up and some down on one GPU is a fault; all down is UNKNOWN (no fabric
    manager here to train them), reported as info."""
    found = []
    for gpu in status.gpus:
        subject = gpu.uuid or f"GPU {gpu.index}"
        all_down = "all links are inactive" in (gpu.message or "").lower()
        if gpu.active_count and gpu.inactive_count:
            down = ", ".join(str(link.link) for link in gpu.links if not link.active)
            found.append(
                Finding(
                    source=source,
                    severity="critical",
                    subject=subject,
                    message=f"NVLink: {gpu.inactive_count} of {len(gpu.links)} links inactive "
                    f"(link {down})",
                    persistence="current",
                )
            )
        elif (gpu.links and not gpu.active_count) or all_down:
            found.append(
                Finding(
                    source=source,
                    severity="info",
                    subject=subject,
                    message="NVLink: UNKNOWN, every link is inactive (on an NVSwitch system "
                    "they train only under the fabric manager, which this image does not run)",
                    persistence="current",
                )
            )
    return found


PARSERS: dict[str, Callable[[str], object]] = {"nvidia-smi-nvlink": parse}
