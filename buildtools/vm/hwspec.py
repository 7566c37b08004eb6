"""The hardware spec (`bee check`'s TOML) of the machine tests/vm/hardware.toml describes.

`nox -s vm_test` bakes this spec into the image it builds (`build_iso --spec`), expects ACCEPT on
the console, then runs `bee check` in the guest with `extra_dimms=1` and expects REJECT naming
memory. Written by hand from the hardware description, not by `bee spec` from an audit, so the
image is judged against what QEMU was told to emulate.
"""

from __future__ import annotations

import json

from buildtools.vm.qemu import Hardware


def _q(value: object) -> str:
    """A TOML value (JSON strings, numbers and booleans are valid TOML)."""
    return json.dumps(value)


def hardware_spec(hw: Hardware, *, extra_dimms: int = 0) -> str:
    psus = [d for d in hw.fru_devices if d.entity == "power_supply" and d.board is not None]
    lines = [
        "# The QEMU test server of tests/vm/hardware.toml (written by buildtools/vm/hwspec.py).",
        "spec_version = 1",
        "",
        # What QEMU was told to emulate, nothing more: no FINDINGS rule, because the guest's
        # kernel log and the BMC simulator's event log are not part of hardware.toml (the
        # vm_test's own checks look at the findings).
        "[[profile]]",
        'name = "qemu-test-server"',
        f"match = {{ board_product = {_q(hw.baseboard['product'])} }}",
    ]

    def check(check_id: str, select: str, **rules: str) -> None:
        lines.extend(["", "[[profile.check]]", f"id = {_q(check_id)}", f"select = {_q(select)}"])
        lines.extend(f"{key} = {value}" for key, value in rules.items())

    check(
        "SYSTEM",
        "board.system",
        all=f"{{ manufacturer = {_q(hw.system['manufacturer'])}, "
        f"product = {_q(hw.system['product'])} }}",
    )
    check(
        "BIOS",
        "board.bios",
        all=f"{{ vendor = {_q(hw.bios['vendor'])}, "
        f"version = {{ version_at_least = {_q(hw.bios['version'])} }} }}",
    )
    populated = "{ populated = true }"
    check("CPU-COUNT", "cpu.sockets", where=populated, count=str(hw.sockets))
    check(
        "CPU-MODEL",
        "cpu.sockets",
        where=populated,
        all=f"{{ model = {_q(hw.processor['version'])}, core_count = {hw.cores_per_socket} }}",
    )
    check(
        "MEMORY-DIMM-COUNT",
        "memory.slots",
        where=populated,
        count=str(len(hw.dimm_sizes_mib) + extra_dimms),
    )
    check(
        "MEMORY-DIMM",
        "memory.slots",
        where=populated,
        all=f"{{ part_number = {_q(hw.memory['part'])}, "
        f"speed_mts = {_q(str(hw.memory['speed_mts']) + ' MT/s')} }}",
        same='"manufacturer"',
    )
    check("MEMORY-TOTAL", "memory", all=f"{{ total_bytes = {_q(f'{hw.memory_mib} MiB')} }}")
    check(
        "DISK-COUNT",
        "storage.disks",
        where="{ is_boot_medium = false }",
        count=str(len(hw.disks)),
    )
    for index, disk in enumerate(hw.disks):
        check(
            f"DISK-{index}-{disk.bus.upper()}",
            "storage.disks",
            where=f"{{ is_boot_medium = false, size_bytes = {disk.size_bytes} }}",
            count="1",
        )
    by_id: dict[tuple[str, str], list] = {}
    for nic in hw.nics:
        by_id.setdefault((nic.vendor_id, nic.device_id), []).append(nic)
    for (vendor, device), nics in sorted(by_id.items()):
        check(
            f"NIC-{vendor}-{device}",
            "pcie.devices",
            where=f"{{ vendor_id = {_q(vendor)}, device_id = {_q(device)} }}",
            count=str(len(nics)),
            all=f"{{ current_link_width = {nics[0].link_width}, "
            f"current_link_speed_gts = {_q(f'{nics[0].link_speed_gts} GT/s')} }}",
        )
    if psus:
        check("PSU-COUNT", "psu.power_supplies", where="{ present = true }", count=str(len(psus)))
        first = psus[0]
        capacity = first.power_supply.capacity_w if first.power_supply else None
        rules = {"where": "{ present = true }", "same": '"model"'}
        if capacity is not None:
            rules["all"] = f"{{ model = {_q(first.board.product)}, capacity_w = {capacity} }}"
        check("PSU", "psu.power_supplies", **rules)
    return "\n".join(lines) + "\n"
