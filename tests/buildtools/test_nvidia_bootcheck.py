"""buildtools.nvidia_bootcheck: the pure parts (the boot itself takes minutes and a mirror).

The modules.dep lines were printed by `depmod -b <unpacked linux-image-6.1.0-56-amd64>
6.1.0-56-amd64` (kmod 30, bookworm) on 2026-11-26.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildtools.nvidia_bootcheck import (
    load_order,
    newc_archive,
    parse_modules_dep,
    parse_serial,
    unknown_symbols,
)
from buildtools.nvidia_steps import NvidiaError

MODULES_DEP = """\
kernel/drivers/acpi/video.ko: kernel/drivers/platform/x86/wmi.ko
kernel/drivers/gpu/drm/display/drm_display_helper.ko: kernel/drivers/media/cec/core/cec.ko \
kernel/drivers/media/rc/rc-core.ko kernel/drivers/gpu/drm/drm_kms_helper.ko \
kernel/drivers/gpu/drm/drm.ko
kernel/drivers/gpu/drm/drm.ko:
kernel/drivers/gpu/drm/drm_kms_helper.ko: kernel/drivers/gpu/drm/drm.ko
kernel/drivers/i2c/algos/i2c-algo-bit.ko:
kernel/drivers/media/rc/rc-core.ko:
kernel/drivers/media/cec/core/cec.ko: kernel/drivers/media/rc/rc-core.ko
kernel/drivers/platform/x86/wmi.ko:
"""


def test_load_order_puts_dependencies_first_once() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    assert deps["kernel/drivers/gpu/drm/drm.ko"] == []
    order = load_order(["drm", "drm_kms_helper", "video"], deps)
    assert order == [
        "kernel/drivers/gpu/drm/drm.ko",
        "kernel/drivers/gpu/drm/drm_kms_helper.ko",
        "kernel/drivers/platform/x86/wmi.ko",
        "kernel/drivers/acpi/video.ko",
    ]
    # - and _ name the same module.
    assert load_order(["rc_core", "rc-core"], deps) == ["kernel/drivers/media/rc/rc-core.ko"]
    with pytest.raises(NvidiaError, match="not in the kernel package"):
        load_order(["ib_core"], deps)


def test_parse_serial_and_unknown_symbols() -> None:
    serial = "\n".join(
        [
            "[    1.0] Run /init as init process",
            "BEE-CHECK uname 6.1.0-56-amd64",
            "BEE-CHECK dep-ok drm.ko",
            "BEE-CHECK dep-fail video.ko",
            "BEE-CHECK insmod nvidia.ko rc=1 insmod: can't insert 'nvidia.ko': No such device",
            "BEE-CHECK insmod nvidia-uvm.ko rc=1 insmod: can't insert 'x': unknown symbol",
            "BEE-CHECK dmesg [    9.1] nvidia_uvm: Unknown symbol nvUvmInterfaceDeviceCreate"
            " (err -2)",
            "BEE-CHECK smi rc=9 NVIDIA-SMI has failed because it couldn't communicate",
            "BEE-CHECK done",
        ]
    )
    result = parse_serial(serial)
    assert result.kernel == "6.1.0-56-amd64"
    assert result.deps == {"drm.ko": "dep-ok", "video.ko": "dep-fail"}
    assert result.insmod["nvidia.ko"][0] == 1
    assert result.insmod["nvidia.ko"][1].endswith("No such device")
    assert result.smi is not None
    assert result.smi[0] == 9
    assert result.done
    assert unknown_symbols(result.dmesg) == {"nvUvmInterfaceDeviceCreate"}
    assert parse_serial("").done is False
    assert parse_serial("BEE-CHECK insmod x.ko rc=?? junk").insmod["x.ko"][0] == -1


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries = {}
    offset = 0
    while True:
        assert data[offset : offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = name_start + namesize
        body += -body % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[body : body + size])
        offset = body + size
        offset += -offset % 4


def test_newc_archive_round_trip(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"\x7fELF" + b"x" * 5)
    (tmp_path / "bin" / "sh").symlink_to("busybox")
    (tmp_path / "init").write_text("#!/bin/sh\n")
    (tmp_path / "init").chmod(0o755)
    entries = _read_newc(newc_archive(tmp_path))
    assert set(entries) == {"bin", "bin/busybox", "bin/sh", "init"}
    assert entries["bin/busybox"][1] == b"\x7fELF" + b"x" * 5
    assert entries["bin/sh"][1] == b"busybox"
    assert entries["init"][0] & 0o777 == 0o755
    assert os.path.isdir(tmp_path / "bin")
