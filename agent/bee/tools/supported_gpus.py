"""The NVIDIA driver's own supported-gpus.json: which GPUs it serves, and with which modules.

The image ships both flavours of the driver's kernel modules, each with its manifest, beside
the driver's own list of the chips it supports:

    /usr/local/lib/nvidia/proprietary/*.ko, manifest.json  (nvidia-kernel-source; .run kernel/)
    /usr/local/lib/nvidia/open/*.ko, manifest.json  (nvidia-open-kernel-source; .run kernel-open/)
    /usr/local/lib/nvidia/supported-gpus.json  (Debian's nvidia-driver; .run supported-gpus/)

The file is `{"chips": [{"devid": "0x2335", "subdevid": "0x18BE", "subvendorid": "0x10DE",
"name": "NVIDIA H200", "features": [..., "kernelopen"]}, ...]}` (550.163.01: 2,224 entries, 736
with `kernelopen`); an entry with `legacybranch` ("470.xx") is served only by that older branch.
`choose` decides per machine, from the GPUs on the PCI bus:

- a GPU the file lists only for a legacy branch cannot be served by either flavour: it is left
  out, and `findings` names it;
- a GPU the file does not list at all may still be served: the list is not complete (at
  550.163.01 it lacks Tesla T4 10de:1eb8, Tesla P4 10de:1bb3 and H200 NVL 10de:233b, which
  that driver serves, as well as Blackwell B200 10de:2901, which it does not). It is not known
  to work with the open modules, so it counts like a GPU without `kernelopen`; whether the
  loaded driver took it is read from /proc/driver/nvidia/gpus/<address>, and one it did not
  take is a finding;
- open when every GPU it can serve has `kernelopen` (Turing and newer: NVIDIA's recommendation,
  and what Grace Hopper and Blackwell require);
- proprietary as soon as one GPU lacks `kernelopen` (Maxwell, Pascal, Volta) or is not listed:
  it serves every supported GPU of this driver on amd64 (its nv.c refuses only self-hosted
  Grace Hopper, an arm64 machine). The file has no "requires open" mark, so a newer driver
  where proprietary no longer serves a GPU is not foreseen here; that GPU then shows as not
  taken by the driver.

bee-nvidia asks `bee nvidia-flavour` at boot (the same `decide` as the audit), loads that
flavour and writes what happened to /run/bee/nvidia-load; the `nvidia_driver` section records
the choice, its reason, the flavour really loaded (/proc/driver/nvidia/version) and the loader's
outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bee import document
from bee.findings import Finding
from bee.probe import Probe
from bee.registry import Collector

NVIDIA_DIR = "/usr/local/lib/nvidia"
SUPPORTED_GPUS = f"{NVIDIA_DIR}/supported-gpus.json"
FLAVOURS = ("open", "proprietary")  # the order a tie would be decided in: NVIDIA recommends open
PCI_DEVICES = "/sys/bus/pci/devices"
PROC_VERSION = "/proc/driver/nvidia/version"
PROC_GPUS = "/proc/driver/nvidia/gpus"
LOADER_RECORD = "/run/bee/nvidia-load"
SIGNING_CERT = f"{NVIDIA_DIR}/module-signing.der"  # buildtools/nvidia/signing.py
SECURE_BOOT_REMEDY = (
    "enrol the image's module-signing certificate {cert} as a MOK: mokutil --import {cert}, "
    "then confirm it in MokManager on the console at the next boot (docs/secure-boot.md); "
    "or turn Secure Boot off"
)
# The kernel's words when it refuses a module's signature (bee-nvidia's record without a
# cause, from an older image): EKEYREJECTED, ENOKEY, lockdown's EPERM.
SIGNATURE_REFUSALS = ("Key was rejected", "Required key not available", "Secure Boot refused")
NVIDIA_VENDOR = "10de"
OPEN_FEATURE = "kernelopen"
REMEDY = (
    "build the image with a driver that supports it: NVIDIA_SOURCE=run with that driver's "
    "NVIDIA_DRIVER_VERSION, NVIDIA_RUN_URL and NVIDIA_RUN_SHA256 in iso/builder/VERSIONS "
    "(docs/nvidia.md), then nox -s build_iso"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Chip:
    """One entry of supported-gpus.json."""

    device_id: str  # 4 lower-case hex digits
    subsystem_vendor_id: str | None
    subsystem_device_id: str | None
    name: str | None
    legacy_branch: str | None  # "470.xx": only that older branch serves it
    open_supported: bool  # "kernelopen" in features


@dataclass(frozen=True, slots=True, kw_only=True)
class SupportedGpus:
    chips: dict[str, list[Chip]]  # by device id
    count: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class BusGpu:
    """An NVIDIA display or 3D controller on the PCI bus."""

    pci_address: str
    device_id: str
    subsystem_vendor_id: str | None
    subsystem_device_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSupport:
    pci_address: str
    pci_id: str  # 10de:2335
    pci_subsystem_id: str | None  # 10de:18be
    name: str | None  # as the driver's list names it
    listed: bool  # in the driver's supported-gpus.json, for this branch (not a legacy one)
    open_supported: bool  # listed with kernelopen
    legacy_branch: str | None  # listed only for this older branch: neither flavour serves it
    taken_by_driver: bool | None  # /proc/driver/nvidia/gpus/<address> exists; None: not asked


@dataclass(frozen=True, slots=True, kw_only=True)
class FlavourChoice:
    flavour: str | None  # open | proprietary | None (nothing to load)
    reason: str
    gpus: list[GpuSupport]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSigning:
    """Who signed the shipped modules (the manifests' `signing`, written by the build)."""

    origin: str | None  # "per-build" or "operator"
    subject: str | None  # "CN=bee module signing (per-build 2026-12-01T13:00:00Z),O=bee"
    serial: str | None  # what modinfo prints as sig_key
    cert_sha256: str | None  # of the DER certificate
    cert_path: str | None  # /usr/local/lib/nvidia/module-signing.der when the image has it


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaDriverSection:
    driver_version: str | None  # from the shipped modules' manifests
    flavours_shipped: list[str]
    supported_gpus_listed: int | None  # entries in the shipped supported-gpus.json
    flavour_chosen: str | None
    reason: str
    flavour_loaded: str | None  # from /proc/driver/nvidia/version; None when not loaded
    loaded_version: str | None
    loader_status: str | None  # what bee-nvidia wrote: loaded | failed | skipped
    loader_message: str | None
    loader_cause: str | None  # "secure-boot": the kernel refused the modules' signature
    module_signing: ModuleSigning | None  # None: the shipped modules are not signed
    gpus: list[GpuSupport]
    errors: list[str]


# -- supported-gpus.json ------------------------------------------------------------------


def _hex4(value: Any) -> str | None:
    # "0x2335" -> "2335"; anything else -> None
    if not isinstance(value, str):
        return None
    digits = value.strip().lower().removeprefix("0x")
    if len(digits) != 4 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return digits


def parse(text: str) -> SupportedGpus:
    """supported-gpus.json; never raises. Entries without a usable devid are skipped."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return SupportedGpus(chips={}, count=0, errors=["supported-gpus.json is not JSON"])
    entries = document.get("chips") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return SupportedGpus(chips={}, count=0, errors=["supported-gpus.json has no chips list"])
    chips: dict[str, list[Chip]] = {}
    count = 0
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        device = _hex4(entry.get("devid"))
        if device is None:
            continue
        features = entry.get("features")
        legacy = entry.get("legacybranch")
        name = entry.get("name")
        chip = Chip(
            device_id=device,
            subsystem_vendor_id=_hex4(entry.get("subvendorid")),
            subsystem_device_id=_hex4(entry.get("subdevid")),
            name=name if isinstance(name, str) else None,
            legacy_branch=legacy if isinstance(legacy, str) and legacy else None,
            open_supported=isinstance(features, list) and OPEN_FEATURE in features,
        )
        chips.setdefault(device, []).append(chip)
        count += 1
    return SupportedGpus(chips=chips, count=count)


def lookup(table: SupportedGpus, gpu: BusGpu) -> Chip | None:
    """The entry for this board: its exact subsystem, else the chip's generic entry, else any.

    H200 is listed only with subsystem ids (10de:18be, 10de:18bf); the driver binds by device
    id, so another board of the same chip still counts as that chip.
    """
    candidates = table.chips.get(gpu.device_id, [])
    for chip in candidates:
        if (chip.subsystem_vendor_id, chip.subsystem_device_id) == (
            gpu.subsystem_vendor_id,
            gpu.subsystem_device_id,
        ) and chip.subsystem_device_id is not None:
            return chip
    generic = [chip for chip in candidates if chip.subsystem_device_id is None]
    return (generic or candidates or [None])[0]


def _support(table: SupportedGpus, gpu: BusGpu) -> GpuSupport:
    chip = lookup(table, gpu)
    subsystem = (
        f"{gpu.subsystem_vendor_id}:{gpu.subsystem_device_id}"
        if gpu.subsystem_vendor_id and gpu.subsystem_device_id
        else None
    )
    return GpuSupport(
        pci_address=gpu.pci_address,
        pci_id=f"{NVIDIA_VENDOR}:{gpu.device_id}",
        pci_subsystem_id=subsystem,
        name=chip.name if chip else None,
        listed=chip is not None and chip.legacy_branch is None,
        open_supported=chip is not None and chip.legacy_branch is None and chip.open_supported,
        legacy_branch=chip.legacy_branch if chip else None,
        taken_by_driver=None,
    )


def _names(gpus: list[GpuSupport]) -> str:
    shown = [f"{g.pci_id} at {g.pci_address} ({g.name or 'unnamed'})" for g in gpus[:4]]
    more = f" and {len(gpus) - 4} more" if len(gpus) > 4 else ""
    return ", ".join(shown) + more


def choose(
    gpus: list[BusGpu], table: SupportedGpus, shipped: tuple[str, ...] | list[str] = FLAVOURS
) -> FlavourChoice:
    """The flavour that serves every GPU this driver supports, and why, in one sentence."""
    support = [_support(table, gpu) for gpu in sorted(gpus, key=lambda g: g.pci_address)]
    candidates = [g for g in support if g.legacy_branch is None]
    legacy = [g for g in support if g.legacy_branch is not None]
    left_out = f"; only a legacy driver branch serves {_names(legacy)}" if legacy else ""
    if not support:
        return FlavourChoice(flavour=None, reason="no NVIDIA GPU on the PCI bus", gpus=support)
    if not candidates:
        return FlavourChoice(
            flavour=None,
            reason=f"no GPU on the bus is served by this driver{left_out}",
            gpus=support,
        )
    closed = [g for g in candidates if g.listed and not g.open_supported]
    unlisted = [g for g in candidates if not g.listed]
    if closed or unlisted:
        wanted = "proprietary"
        parts = []
        if closed:
            parts.append(f"{_names(closed)} lack kernelopen in the driver's supported-gpus.json")
        if unlisted:
            parts.append(
                f"{_names(unlisted)} not in the driver's supported-gpus.json (not known to "
                "work with the open modules)"
            )
        why = f"{'; '.join(parts)}: proprietary serves every GPU this driver supports"
    else:
        wanted = "open"
        why = (
            f"all {len(candidates)} GPU(s) have kernelopen in the driver's supported-gpus.json "
            "(NVIDIA recommends the open modules from Turing on)"
        )
    unsupported = left_out
    if wanted not in shipped:
        others = [f for f in FLAVOURS if f in shipped]
        if wanted == "open" and "proprietary" in others:
            # Every GPU the open modules serve, the proprietary ones serve too (see above).
            return FlavourChoice(
                flavour="proprietary",
                reason=f"{why}, but this image ships only proprietary modules{unsupported}",
                gpus=support,
            )
        return FlavourChoice(
            flavour=None,
            reason=f"{why}, but this image ships no {wanted} modules{unsupported}",
            gpus=support,
        )
    return FlavourChoice(flavour=wanted, reason=why + unsupported, gpus=support)


# -- reading the machine -------------------------------------------------------------------


def _sysfs_id(probe: Probe, path: str) -> str | None:
    # "0x10de\n" -> "10de"
    return _hex4(probe.read_value(path))


def bus_gpus(probe: Probe) -> list[BusGpu]:
    """NVIDIA display (0x0300) and 3D (0x0302) controllers from /sys/bus/pci/devices."""
    found = []
    for address in sorted(probe.list_dir(PCI_DEVICES) or []):
        base = f"{PCI_DEVICES}/{address}"
        if _sysfs_id(probe, f"{base}/vendor") != NVIDIA_VENDOR:
            continue
        device_class = (probe.read_value(f"{base}/class") or "").lower().removeprefix("0x")
        if not device_class.startswith("03"):
            continue  # the GPU's audio function, NVSwitch bridges
        device = _sysfs_id(probe, f"{base}/device")
        if device is None:
            continue
        found.append(
            BusGpu(
                pci_address=address,
                device_id=device,
                subsystem_vendor_id=_sysfs_id(probe, f"{base}/subsystem_vendor"),
                subsystem_device_id=_sysfs_id(probe, f"{base}/subsystem_device"),
            )
        )
    return found


def _manifests(probe: Probe) -> dict[str, dict[str, Any]]:
    """Each shipped flavour's manifest.json (one that lists modules), in FLAVOURS order."""
    found: dict[str, dict[str, Any]] = {}
    for flavour in FLAVOURS:
        text = probe.read_text(f"{NVIDIA_DIR}/{flavour}/manifest.json")
        try:
            manifest = json.loads(text) if text else None
        except (ValueError, RecursionError):
            manifest = None
        if isinstance(manifest, dict) and manifest.get("modules"):
            found[flavour] = manifest
    return found


def shipped_flavours(probe: Probe) -> tuple[list[str], str | None]:
    """(flavours whose modules and manifest are in the image, the driver version they carry)."""
    manifests = _manifests(probe)
    versions = [m.get("version") for m in manifests.values()]
    version = next((v for v in versions if isinstance(v, str)), None)
    return list(manifests), version


def module_signing(probe: Probe) -> ModuleSigning | None:
    """The first signed flavour's `signing` record, and whether the image has its certificate."""
    for manifest in _manifests(probe).values():
        signing = manifest.get("signing")
        if not isinstance(signing, dict):
            continue

        def text(key: str, record: dict[str, Any] = signing) -> str | None:
            value = record.get(key)
            return value if isinstance(value, str) and value else None

        return ModuleSigning(
            origin=text("origin"),
            subject=text("subject"),
            serial=text("serial"),
            cert_sha256=text("cert_sha256"),
            cert_path=SIGNING_CERT if probe.exists(SIGNING_CERT) else None,
        )
    return None


def loaded_flavour(version_text: str | None) -> tuple[str | None, str | None]:
    """(open | proprietary, version) from /proc/driver/nvidia/version's first line:
    `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ...`
    `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.163.01  ...` (proprietary)."""
    if not version_text:
        return None, None
    first = version_text.splitlines()[0] if version_text.splitlines() else ""
    if "Kernel Module" not in first:
        return None, None
    flavour = "open" if "Open Kernel Module" in first else "proprietary"
    words = first.partition("Kernel Module")[2].split()
    if words and words[0] == "for":  # "for x86_64"
        words = words[2:]
    version = words[0] if words and words[0][:1].isdigit() else None
    return flavour, version


def parse_loader_record(text: str | None) -> dict[str, str]:
    """/run/bee/nvidia-load, written by bee-nvidia: `key=value` lines (status, flavour, message)."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def decide(probe: Probe) -> tuple[FlavourChoice, SupportedGpus | None, list[str], str | None]:
    """What bee-nvidia loads: (choice, the driver's list, flavours shipped, driver version)."""
    flavours, version = shipped_flavours(probe)
    text = probe.read_text(SUPPORTED_GPUS)
    gpus = bus_gpus(probe)
    if text is None:
        table = None
        # Without the list: proprietary serves every GPU this driver supports on amd64.
        fallback = (
            ("proprietary" if "proprietary" in flavours else flavours[0]) if flavours else None
        )
        choice = FlavourChoice(
            flavour=fallback if gpus else None,
            reason=f"{SUPPORTED_GPUS} is missing: cannot tell which GPUs this driver serves",
            gpus=[],
        )
        return choice, table, flavours, version
    table = parse(text)
    for message in table.errors:
        probe.error(f"{SUPPORTED_GPUS}: {message}")
    return choose(gpus, table, flavours), table, flavours, version


def collect(probe: Probe) -> NvidiaDriverSection | None:
    flavours, _version = shipped_flavours(probe)
    if not flavours:
        probe.note(f"no NVIDIA modules shipped in {NVIDIA_DIR}; skipped")
        return None
    choice, table, flavours, version = decide(probe)
    loaded, loaded_version = loaded_flavour(probe.read_text(PROC_VERSION))
    record = parse_loader_record(probe.read_text(LOADER_RECORD))
    taken = set(probe.list_dir(PROC_GPUS) or []) if loaded else set()
    gpus = [replace(g, taken_by_driver=g.pci_address in taken) for g in choice.gpus]
    return NvidiaDriverSection(
        driver_version=version,
        flavours_shipped=flavours,
        supported_gpus_listed=table.count if table else None,
        flavour_chosen=choice.flavour,
        reason=choice.reason,
        flavour_loaded=loaded,
        loaded_version=loaded_version,
        loader_status=record.get("status"),
        loader_message=record.get("message") or None,
        loader_cause=record.get("cause") or None,
        module_signing=module_signing(probe),
        gpus=gpus,
        errors=list(table.errors) if table else [f"{SUPPORTED_GPUS} is missing"],
    )


# -- findings -------------------------------------------------------------------------------


def findings(sections: Mapping[str, object]) -> list[Finding]:
    section = sections.get("nvidia_driver")
    if not isinstance(section, NvidiaDriverSection):
        return []
    found: list[Finding] = []
    version = section.driver_version or "unknown"
    for gpu in section.gpus:
        if gpu.legacy_branch:
            why = f"only the legacy {gpu.legacy_branch} driver branch supports it"
        elif not gpu.listed and gpu.taken_by_driver is False:
            why = "it is not in the driver's supported-gpus.json and the driver did not take it"
        else:
            continue
        found.append(
            Finding(
                source="nvidia_driver",
                severity="warning",
                subject=gpu.pci_address,
                message=(
                    f"NVIDIA GPU {gpu.pci_id} at {gpu.pci_address}"
                    f"{f' ({gpu.name})' if gpu.name else ''} is not supported by the shipped "
                    f"driver {version}: {why}; {REMEDY}"
                ),
            )
        )
    if section.loader_status == "failed":
        found.append(
            Finding(
                source="nvidia_driver",
                severity="critical",
                subject="bee-nvidia",
                message=_load_failure(section),
            )
        )
    elif section.flavour_loaded and section.flavour_chosen not in (None, section.flavour_loaded):
        found.append(
            Finding(
                source="nvidia_driver",
                severity="warning",
                subject="bee-nvidia",
                message=(
                    f"the {section.flavour_loaded} NVIDIA modules are loaded, but this machine's "
                    f"GPUs call for {section.flavour_chosen} ({section.reason})"
                ),
            )
        )
    return found


def _load_failure(section: NvidiaDriverSection) -> str:
    """What a failed load means; a Secure Boot refusal says which key and how to enrol it."""
    # No flavour chosen: the loader was forced (bee.nvidia=) on a machine bee sees no GPU in.
    flavour = f"{section.flavour_chosen} " if section.flavour_chosen else ""
    said = section.loader_message or "see journalctl -u bee-nvidia"
    refused = section.loader_cause == "secure-boot" or any(
        words in (section.loader_message or "") for words in SIGNATURE_REFUSALS
    )
    if not refused:
        return f"bee-nvidia could not load the {flavour}NVIDIA modules: {said}"
    signing = section.module_signing
    key = (
        f" (signed with the {signing.origin or '?'} key {signing.subject or '?'}, "
        f"certificate sha256 {signing.cert_sha256 or '?'})"
        if signing
        else ""
    )
    cert = (signing.cert_path if signing else None) or SIGNING_CERT
    return (
        f"Secure Boot refused the {flavour}NVIDIA modules{key}, so no GPU is driven and "
        f"nvidia-smi sees none: {said}; to load them, " + SECURE_BOOT_REMEDY.format(cert=cert)
    )


def summary(section: object) -> str | None:
    if not isinstance(section, dict):
        return None
    chosen = document.text(section, "flavour_chosen") or "none"
    loaded = document.text(section, "flavour_loaded") or "not loaded"
    driver = document.text(section, "driver_version") or "?"
    status = document.text(section, "loader_status")
    return f"NVIDIA modules {driver}: {chosen} for these GPUs, {loaded}" + (
        f" (bee-nvidia: {status})" if status else ""
    )


COLLECTORS = (
    Collector(
        name="nvidia_driver",
        order=62,
        collects=(
            "NVIDIA module flavour: the shipped driver's supported-gpus.json against "
            "/sys/bus/pci/devices, /proc/driver/nvidia/version, /run/bee/nvidia-load"
        ),
        collect=collect,
        findings=findings,
        summary=summary,
    ),
)
