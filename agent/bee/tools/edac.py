"""EDAC memory controllers from sysfs: /sys/devices/system/edac/mc/mc<N>/.

Files (Documentation/ABI/testing/sysfs-devices-edac): `mc_name`, `ce_count`, `ue_count`,
`ce_noinfo_count`, `ue_noinfo_count`, `seconds_since_reset`, `size_mb`, and per DIMM
`dimm<N>/{dimm_label,dimm_ce_count,dimm_ue_count,size}` (rank<N>/ on some drivers). "The
counters are always reset at driver initialization time": they count since this boot. Without
an EDAC driver for the platform (every VM, and a live image whose kernel lacks the driver)
the directory is missing, which is not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.findings import Finding
from bee.jsonvalue import integer as _number

EDAC_MC = "/sys/devices/system/edac/mc"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdacDimm:
    name: str  # "dimm0", "rank3"
    label: str | None  # "CPU_SrcID#0_MC#0_Chan#1_DIMM#0", or the board's silk screen
    ce_count: int | None
    ue_count: int | None
    size_mib: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EdacController:
    name: str  # "mc0"
    mc_name: str | None  # the driver: "Skylake Socket#0 IMC#0", "i10nm_edac"
    ce_count: int | None  # corrected
    ue_count: int | None  # uncorrected
    ce_noinfo_count: int | None  # corrected, DIMM unknown
    ue_noinfo_count: int | None
    seconds_since_reset: int | None
    size_mib: int | None
    dimms: list[EdacDimm]


def _text(text: str | None) -> str | None:
    return (text or "").strip() or None


def read_controllers(
    read: Callable[[str], str | None], list_dir: Callable[[str], list[str] | None]
) -> list[EdacController] | None:
    """None when the kernel has no EDAC memory controller here."""
    names = list_dir(EDAC_MC)
    if names is None:
        return None
    controllers = []
    for name in sorted(n for n in names if n.startswith("mc") and n[2:].isdigit()):
        base = f"{EDAC_MC}/{name}"
        dimms = []
        for entry in sorted(list_dir(base) or []):
            number = entry.removeprefix("dimm").removeprefix("rank")
            if number == entry or not number.isdigit():
                continue
            # dimm<N>/ and the older rank<N>/ both name their files dimm_*.
            prefix = "dimm"
            dimms.append(
                EdacDimm(
                    name=entry,
                    label=_text(read(f"{base}/{entry}/{prefix}_label")),
                    ce_count=_number(read(f"{base}/{entry}/{prefix}_ce_count")),
                    ue_count=_number(read(f"{base}/{entry}/{prefix}_ue_count")),
                    size_mib=_number(read(f"{base}/{entry}/size")),
                )
            )
        controllers.append(
            EdacController(
                name=name,
                mc_name=_text(read(f"{base}/mc_name")),
                ce_count=_number(read(f"{base}/ce_count")),
                ue_count=_number(read(f"{base}/ue_count")),
                ce_noinfo_count=_number(read(f"{base}/ce_noinfo_count")),
                ue_noinfo_count=_number(read(f"{base}/ue_noinfo_count")),
                seconds_since_reset=_number(read(f"{base}/seconds_since_reset")),
                size_mib=_number(read(f"{base}/size_mb")),
                dimms=dimms,
            )
        )
    return controllers


def findings(controllers: list[EdacController], source: str = "health") -> list[Finding]:
    """Uncorrected errors are critical, corrected ones a warning; per DIMM where known."""
    found = []
    for mc in controllers:
        for label, count, severity in (
            ("uncorrected", mc.ue_count, "critical"),
            ("corrected", mc.ce_count, "warning"),
        ):
            if not count:
                continue
            attr = "ue_count" if label == "uncorrected" else "ce_count"
            per_dimm = [
                f"{d.label or d.name}: {getattr(d, attr)}" for d in mc.dimms if getattr(d, attr)
            ]
            where = f" ({'; '.join(per_dimm)})" if per_dimm else ""
            found.append(
                Finding(
                    source=source,
                    severity=severity,  # type: ignore[arg-type]
                    subject=f"{mc.name}" + (f" {mc.mc_name}" if mc.mc_name else ""),
                    message=f"EDAC: {count} {label} memory error(s) since boot{where}",
                    persistence="since_boot",
                )
            )
    return found
