"""What `nox -s vm_test` checks, as pure functions: (evidence, hardware) -> [(name, ok, detail)].

The evidence is what came back from the guest (the audit document, `ipmitool fru`, `ip -j addr`,
the serial log); the hardware is tests/vm/hardware.toml as buildtools.vm.qemu.Hardware. Nothing
here runs a VM, so every check is unit-tested against real outputs in tests/buildtools/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from buildtools.vm.qemu import Hardware

CheckResult = tuple[str, bool, str]


def _check(name: str, ok: bool, detail: str) -> CheckResult:
    return (name, bool(ok), detail)


def _equal(name: str, got: object, want: object) -> CheckResult:
    return _check(name, got == want, f"got {got!r}, want {want!r}")


# --- ipmitool fru -----------------------------------------------------------------------------

# "FRU Device Description : PS1 (ID 2)"
_FRU_HEADER = re.compile(r"^FRU Device Description\s*:\s*(?P<name>.*?)\s*\(ID (?P<id>\d+)\)\s*$")


def parse_ipmitool_fru(text: str) -> dict[int, dict[str, str]]:
    """{FRU ID: {field: value}} from `ipmitool fru` (' Board Serial          : X' lines)."""
    devices: dict[int, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        header = _FRU_HEADER.match(line)
        if header:
            current = {"Description": header["name"]}
            devices[int(header["id"])] = current
            continue
        if current is None or not line.startswith(" "):
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in current:
            current[key.strip()] = value.strip()
    return devices


def check_ipmitool_fru(text: str, hw: Hardware) -> list[CheckResult]:
    """The real ipmitool, in the guest, decodes every FRU device buildtools.vm.fru wrote.

    text is `ipmitool -v fru print`: ipmitool 1.8.19 prints multirecords (the Power Supply
    Information record and its capacity) only when verbose.
    """
    decoded = parse_ipmitool_fru(text)
    results: list[CheckResult] = []
    for device in hw.fru_devices:
        got = decoded.get(device.fru_id)
        label = f"ipmitool fru: {device.name} (ID {device.fru_id})"
        if got is None:
            results.append(_check(label, False, f"not in the output (IDs seen: {sorted(decoded)})"))
            continue
        want: dict[str, str] = {"Description": device.name}
        if device.board:
            want |= {
                "Board Mfg": device.board.manufacturer,
                "Board Product": device.board.product,
                "Board Serial": device.board.serial,
                "Board Part Number": device.board.part,
            }
        if device.product:
            want |= {
                "Product Manufacturer": device.product.manufacturer,
                "Product Name": device.product.name,
                "Product Part Number": device.product.part,
                "Product Version": device.product.version,
                "Product Serial": device.product.serial,
            }
        if device.chassis:
            want |= {
                "Chassis Part Number": device.chassis.part,
                "Chassis Serial": device.chassis.serial,
            }
        if device.power_supply:
            # "  Capacity                   : 2200 W" under " Power Supply Record" (-v only)
            want["Capacity"] = f"{device.power_supply.capacity_w} W"
        wrong = [f"{k}: got {got.get(k)!r}, want {v!r}" for k, v in want.items() if got.get(k) != v]
        if device.board and "Board Mfg Date" not in got:
            wrong.append("no Board Mfg Date")
        results.append(_check(label, not wrong, "; ".join(wrong) or f"{len(want)} fields match"))
    return results


# --- boot 2 and 3 -----------------------------------------------------------------------------


def nic_without_ipv4(ip_json: str, mac: str) -> tuple[bool, str]:
    """From `ip -j addr show`: the NIC with this MAC exists, is up and has no IPv4 address."""
    try:
        links = json.loads(ip_json)
    except ValueError:
        return False, "`ip -j addr show` did not print JSON"
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or str(link.get("address", "")).lower() != mac:
            continue
        inet = [a.get("local") for a in link.get("addr_info", []) if a.get("family") == "inet"]
        name = link.get("ifname")
        if inet:
            return False, f"{name} has IPv4 {', '.join(map(str, inet))}"
        return True, f"{name} ({link.get('operstate')}) has no IPv4 address"
    return False, f"no interface with MAC {mac}"


def host_keys_differ(first: set[str], second: set[str], seen_by: str) -> CheckResult:
    """No SSH host key (or fingerprint) of boot 1 comes back in boot 2."""
    name = f"SSH host keys differ between boots ({seen_by})"
    if not first or not second:
        return _check(name, False, f"host keys recorded: boot 1 {len(first)}, boot 2 {len(second)}")
    same = first & second
    if same:
        return _check(name, False, f"{len(same)} identical: {sorted(same)[0][:70]}")
    return _check(name, True, f"{len(first)} and {len(second)} keys, none shared")


# bee-sshsetup logs each key it generates; the journal forwards it to the console:
#   "[  310.5] bee-sshsetup[953]: bee-sshsetup: host key 256 SHA256:EiV8+25k... root@bee (ED25519)"
_HOST_KEY_LINE = re.compile(r"bee-sshsetup: host key \d+ (SHA256:[A-Za-z0-9+/=]+) .*\((\w+)\)")


def serial_host_keys(serial_text: str) -> set[str]:
    """'TYPE SHA256:...' of every host key fingerprint bee-sshsetup printed on the console."""
    return {f"{m[2]} {m[1]}" for m in _HOST_KEY_LINE.finditer(strip_ansi(serial_text))}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """systemd colours its status lines: "[ESC[0;32m  OK  ESC[0m] Started ..."."""
    return _ANSI.sub("", text)


# Serial-console lines that show, without any network, that sshd and the audit ran:
#   "[  312.1] sshd[1012]: Server listening on 0.0.0.0 port 22."  (journal forwarded)
#   "[  OK  ] Started ssh.service - OpenBSD Secure Shell server."  (systemd status)
#   "===== bee audit (exit 0, 41s): /var/log/bee-audit.json ====="  (bee-audit-boot)
SERIAL_MARKERS: dict[str, re.Pattern[str]] = {
    "sshd": re.compile(r"sshd\[\d+\]: Server listening on|Started ssh\.service"),
    "audit": re.compile(r"===== bee audit \(exit (\d+)"),
}


def check_serial_markers(seen: dict[str, float]) -> list[CheckResult]:
    return [
        _check(
            f"serial console shows {name} without DHCP",
            name in seen,
            f"after {seen[name]:.0f} s" if name in seen else "never appeared",
        )
        for name in SERIAL_MARKERS
    ]


# --- the audit document -----------------------------------------------------------------------


def _get(document: Any, *path: str | int) -> Any:
    node = document
    for key in path:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and -len(node) <= key < len(node) else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


SINCE_REGISTRY = frozenset({"bmc", "health", "nvidia_driver"})


def check_audit(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """The audit against the hardware description; see each helper for the fields it reads."""
    results: list[CheckResult] = []
    for part in (
        check_collectors,
        check_board,
        check_cpu,
        check_memory,
        check_storage,
        check_pcie,
        check_psu,
        check_bmc,
        check_health,
        check_nvidia_driver,
    ):
        section = part.__name__.removeprefix("check_")
        if section in SINCE_REGISTRY and section not in (document.get("collectors") or {}):
            # A document from a bee before this collector existed (the committed capture):
            # check_collectors judges which collectors must be there.
            continue
        try:
            results += part(document, hw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            name = part.__name__.removeprefix("check_")
            results.append(_check(name, False, f"unexpected document shape: {exc!r}"))
    return results


# Collectors that may find nothing on the QEMU test server, and why. Every other collector the
# document lists (bee's registry) must be "ok" there; a test keeps these names in the registry.
MAY_BE_EMPTY = {
    "nvidia": "no GPU",
    # tests/vm/qemu-q35/bee-capture predates the network collector; on a live guest
    # check_network fails unless both NICs are there.
    "network": "checked by check_network",
    "nvidia_driver": "an image built with --no-nvidia ships no modules",
}


def check_collectors(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """Every collector of the document ran; 'empty' only where MAY_BE_EMPTY says why."""
    results: list[CheckResult] = []
    collectors = document.get("collectors") or {}
    results.append(_check("collectors listed", bool(collectors), repr(list(collectors))))
    for name in collectors:
        status = _get(collectors, name, "status")
        if name in MAY_BE_EMPTY:
            ok = status in ("empty", "ok")
            results.append(_check(f"collector {name} ran ({MAY_BE_EMPTY[name]})", ok, repr(status)))
        else:
            results.append(_equal(f"collector {name} status", status, "ok"))
    errors = [e for e in _items(document.get("errors")) if e.get("collector") not in MAY_BE_EMPTY]
    results.append(
        _check(
            "no collector errors except " + ", ".join(sorted(MAY_BE_EMPTY)),
            not errors,
            "; ".join(f"{e.get('collector')}: {e.get('message')}" for e in errors[:5]) or "none",
        )
    )
    return results


def check_board(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """board.{system,baseboard,chassis,bios} (SMBIOS types 0-3)."""
    board = document.get("board") or {}
    system, baseboard, chassis, bios = (
        board.get("system") or {},
        board.get("baseboard") or {},
        board.get("chassis") or {},
        board.get("bios") or {},
    )
    return [
        _equal("system manufacturer", system.get("manufacturer"), hw.system["manufacturer"]),
        _equal("system product", system.get("product"), hw.system["product"]),
        _equal("system serial", system.get("serial"), hw.system["serial"]),
        _equal("baseboard product", baseboard.get("product"), hw.baseboard["product"]),
        _equal("baseboard serial", baseboard.get("serial"), hw.baseboard["serial"]),
        _equal("chassis manufacturer", chassis.get("manufacturer"), hw.chassis["manufacturer"]),
        _equal("chassis serial", chassis.get("serial"), hw.chassis["serial"]),
        _equal("chassis type", chassis.get("type"), hw.chassis["type"]),
        _equal("BIOS vendor", bios.get("vendor"), hw.bios["vendor"]),
        _equal("BIOS version", bios.get("version"), hw.bios["version"]),
    ]


def check_cpu(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """cpu.sockets[] (dmidecode -t 4): one per socket, model = the SMBIOS version string."""
    sockets = [
        s for s in _items(_get(document, "cpu", "sockets")) if s.get("populated") is not False
    ]
    models = sorted({str(s.get("model")) for s in sockets})
    return [
        _equal("CPU sockets", len(sockets), hw.sockets),
        _equal("CPU model", models, [str(hw.processor["version"])]),
    ]


def check_memory(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """memory.slots[] (dmidecode -t 17): the populated ones, their sizes and serials."""
    dimms = [d for d in _items(_get(document, "memory", "slots")) if d.get("populated")]
    sizes = sorted(int(d.get("size_bytes") or 0) // (1024 * 1024) for d in dimms)
    serials = sorted({str(d.get("serial")) for d in dimms})
    return [
        _equal("DIMM count", len(dimms), len(hw.dimm_sizes_mib)),
        _equal("DIMM sizes (MiB)", sizes, sorted(hw.dimm_sizes_mib)),
        _equal("DIMM serials", serials, [str(hw.memory["serial"])]),
    ]


def check_storage(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """storage.disks[]: each described disk by serial, its size; the NVMe health section."""
    disks = _items(_get(document, "storage", "disks"))
    by_serial = {str(d.get("serial")): d for d in disks}
    results: list[CheckResult] = []
    for disk in hw.disks:
        got = by_serial.get(disk.serial)
        label = f"{disk.bus} disk {disk.serial}"
        if got is None:
            results.append(_check(label, False, f"not found (serials: {sorted(by_serial)})"))
            continue
        results.append(_equal(f"{label} size", got.get("size_bytes"), disk.size_bytes))
        if disk.bus == "nvme":
            results += _check_nvme_health(label, got)
        elif disk.bus == "sata":  # QEMU's ATA disk answers SMART: smartctl says PASSED
            results.append(_equal(f"{label} health verdict", _get(got, "health", "verdict"), "ok"))
    return results


def _check_nvme_health(label: str, disk: dict[str, Any]) -> list[CheckResult]:
    """QEMU's NVMe smart log: no critical warning, a temperature, 0 % used, spare above 0."""
    health = _get(disk, "nvme", "health")
    if not isinstance(health, dict):
        return [_check(f"{label} NVMe health section", False, "missing (storage.disks[].nvme)")]
    temperature = health.get("temperature_c")
    return [
        _equal(f"{label} NVMe critical_warning", health.get("critical_warning"), 0),
        _check(
            f"{label} NVMe temperature",
            isinstance(temperature, int) and 0 < temperature < 100,
            f"{temperature!r} C",
        ),
        _equal(f"{label} NVMe percentage_used", health.get("percentage_used"), 0),
        _equal(f"{label} health verdict", _get(disk, "health", "verdict"), "ok"),
    ]


def check_pcie(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """pcie.devices[]: the NICs by vendor:device, each with the link the description says."""
    devices = _items(_get(document, "pcie", "devices"))
    results: list[CheckResult] = []
    wanted = {(nic.vendor_id, nic.device_id) for nic in hw.nics}
    nics = sorted(
        (d for d in devices if (d.get("vendor_id"), d.get("device_id")) in wanted),
        key=lambda d: str(d.get("address")),
    )
    results.append(_equal("PCIe NICs", len(nics), len(hw.nics)))
    for spec, nic in zip(hw.nics, nics, strict=False):
        for kind in ("current", "max"):
            speed = nic.get(f"{kind}_link_speed_gts")
            width = nic.get(f"{kind}_link_width")
            results.append(
                _check(
                    f"NIC {nic.get('address')} {kind} link",
                    speed == spec.link_speed_gts and width == spec.link_width,
                    f"got {speed} GT/s x{width}, "
                    f"want {spec.link_speed_gts} GT/s x{spec.link_width}",
                )
            )
    return results


def check_network(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """network.interfaces[]: each [[nic]] by the MAC QEMU gave it, with its driver and the PCI
    function of a NIC that pcie lists (the join); nothing else physical.

    vm_test runs it beside check_audit: the committed guest capture (tests/vm/qemu-q35/
    bee-capture) predates the network collector, so check_audit's tests could not hold it."""
    interfaces = _items(_get(document, "network", "interfaces"))
    results = [_equal("network ports", len(interfaces), len(hw.nics))]
    by_mac = {str(i.get("permanent_mac_address") or i.get("mac_address")): i for i in interfaces}
    nic_functions = {
        d.get("address")
        for d in _items(_get(document, "pcie", "devices"))
        if (d.get("vendor_id"), d.get("device_id")) in {(n.vendor_id, n.device_id) for n in hw.nics}
    }
    for nic in hw.nics:
        port = by_mac.get(nic.mac)
        results.append(
            _check(f"network port {nic.mac}", port is not None, f"ports: {sorted(by_mac)}")
        )
        if port is None:
            continue
        results.append(_equal(f"network port {nic.mac} driver", port.get("driver"), nic.model))
        results.append(
            _check(
                f"network port {nic.mac} PCI function",
                port.get("pci_address") in nic_functions,
                f"got {port.get('pci_address')!r}, pcie NICs {sorted(map(str, nic_functions))}",
            )
        )
    return results


def check_psu(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """psu.power_supplies[]: the FRU's power supplies by serial, name and capacity in watts."""
    supplies = {str(p.get("serial")): p for p in _items(_get(document, "psu", "power_supplies"))}
    results: list[CheckResult] = []
    expected = [d for d in hw.fru_devices if d.power_supply is not None]
    results.append(_equal("power supplies", len(supplies), len(expected)))
    for device in expected:
        serial = device.product.serial if device.product else device.board.serial
        got = supplies.get(serial)
        label = f"PSU {device.name} ({serial})"
        if got is None:
            results.append(_check(label, False, f"not found (serials: {sorted(supplies)})"))
            continue
        results.append(_equal(f"{label} name", got.get("name"), device.name))
        results.append(
            _equal(f"{label} capacity (W)", got.get("capacity_w"), device.power_supply.capacity_w)
        )
    return results


def check_bmc(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """bmc.identity (ipmitool mc info) from [bmc]; bmc.sensors (sdr elist) from [[sensor]]."""
    results: list[CheckResult] = []
    identity = _get(document, "bmc", "identity") or {}
    if hw.bmc:
        results.append(
            _equal(
                "BMC manufacturer id",
                identity.get("manufacturer_id"),
                hw.bmc.get("manufacturer_id"),
            )
        )
        results.append(
            _equal("BMC firmware", identity.get("firmware_revision"), hw.bmc.get("firmware"))
        )
    sensors = {s.get("name"): s for s in _items(_get(document, "bmc", "sensors", "sensors"))}
    for sensor in hw.sensors:
        got = sensors.get(sensor.name)
        results.append(
            _check(f"BMC sensor {sensor.name}", got is not None, repr(got)[:200] if got else
                   f"not in {sorted(map(str, sensors))}")
        )  # fmt: skip
    return results


def check_bmc_events(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """After vm_test logged the [[sel_event]]s in the guest: each is in bmc.sel.entries, and
    the bmc findings have the severity its `expect` names (persistent, with the raw line)."""
    results: list[CheckResult] = []
    entries = _items(_get(document, "bmc", "sel", "entries"))
    findings = [f for f in _items(document.get("findings")) if f.get("source") == "bmc"]
    for event in hw.sel_events:
        sensor, state = event.sensor.name, event.state
        direction = "deasserted" if event.deasserted else "asserted"
        found = [
            e
            for e in entries
            if str(e.get("sensor", "")).endswith(sensor)
            and e.get("event") == state
            and e.get("direction") == direction
        ]
        results.append(_check(f"SEL: {sensor} {state} {direction}", bool(found), f"{len(found)}"))
        expect = event.expect
        if expect:
            match = [
                f
                for f in findings
                if str(f.get("subject", "")).endswith(sensor) and state in str(f.get("message"))
            ]
            got = [(f.get("severity"), f.get("persistence"), bool(f.get("raw"))) for f in match]
            results.append(
                _equal(f"finding for SEL {sensor} {state}", got, [(expect, "persistent", True)])
            )
    return results


def check_health(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """health: the kernel log was read, and holds no Xid, MCE or fatal AER line in QEMU."""
    results: list[CheckResult] = []
    log = _get(document, "health", "kernel_log")
    results.append(_check("health: kernel log read", isinstance(log, dict), repr(log)[:100]))
    counts = (log or {}).get("counts") or {}
    results.append(
        _equal(
            "health: Xid/MCE lines in the kernel log",
            counts.get("xid", 0) + counts.get("mce", 0),
            0,
        )
    )
    return results


def check_nvidia_driver(document: dict[str, Any], hw: Hardware) -> list[CheckResult]:
    """nvidia_driver: both flavours shipped, and on a machine without an NVIDIA GPU nothing
    chosen, for that reason (bee-nvidia's ExecCondition skipped it: no loader record)."""
    if "nvidia_driver" not in document:
        return [_check("nvidia_driver section", False, "missing from the document")]
    section = document["nvidia_driver"]
    if section is None:
        return [_check("nvidia_driver section", True, "null (an image without NVIDIA modules)")]
    return [
        _equal("NVIDIA flavours shipped", section.get("flavours_shipped"), ["open", "proprietary"]),
        _equal("NVIDIA flavour chosen without a GPU", section.get("flavour_chosen"), None),
        _equal("NVIDIA flavour reason", section.get("reason"), "no NVIDIA GPU on the PCI bus"),
        _check(
            "NVIDIA supported-gpus.json shipped",
            isinstance(section.get("supported_gpus_listed"), int)
            and section["supported_gpus_listed"] > 0,
            repr(section.get("supported_gpus_listed")),
        ),
        _equal("bee-nvidia skipped (no loader record)", section.get("loader_status"), None),
    ]


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r[1]]
