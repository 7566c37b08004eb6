"""buildtools.nvidia.bootcheck: the pure parts (the boot itself takes minutes and a mirror)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildtools.nvidia.bootcheck import (
    judge,
    parse_serial,
    unknown_symbols,
)

# BEE-CHECK lines of the serial log of `python3 -m buildtools.nvidia.bootcheck` on 2026-11-26:
# linux-image-6.1.0-56-amd64 in qemu-system-x86_64 7.2 (TCG), the 535.309.01 proprietary entry
# built from Debian's packages (one dmesg line of each kind kept).
SERIAL = """\
[    1.733841] Run /init as init process
BEE-CHECK uname 6.1.0-56-amd64
BEE-CHECK dep-ok drm.ko
BEE-CHECK dep-ok drm_kms_helper.ko
BEE-CHECK dep-ok wmi.ko
BEE-CHECK dep-ok video.ko
BEE-CHECK insmod nvidia.ko rc=19 insmod: can't insert '/nvidia/nvidia.ko': No such device
BEE-CHECK insmod nvidia-modeset.ko rc=2 insmod: can't insert '/nvidia/nvidia-modeset.ko': \
unknown symbol in module, or unknown parameter
BEE-CHECK insmod nvidia-uvm.ko rc=2 insmod: can't insert '/nvidia/nvidia-uvm.ko': unknown \
symbol in module, or unknown parameter
BEE-CHECK insmod nvidia-drm.ko rc=2 insmod: can't insert '/nvidia/nvidia-drm.ko': unknown \
symbol in module, or unknown parameter
BEE-CHECK insmod nvidia-peermem.ko rc=22 insmod: can't insert '/nvidia/nvidia-peermem.ko': \
Invalid argument
BEE-CHECK smi rc=9 NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA \
driver. Make sure that the latest NVIDIA driver is installed and running.
BEE-CHECK done
BEE-CHECK dmesg [   22.312737] NVRM: No NVIDIA GPU found.
BEE-CHECK dmesg [   29.792422] nvidia_modeset: Unknown symbol nvidia_register_module (err -2)
BEE-CHECK dmesg [   30.049016] nvidia_uvm: Unknown symbol nvUvmInterfaceRegisterGpu (err -2)
BEE-CHECK dmesg [   30.329673] nvidia-peermem nv_mem_client_init:551 ERROR module compiled \
without IB peer memory symbols present
"""
MODULES = ["nvidia.ko", "nvidia-modeset.ko", "nvidia-uvm.ko", "nvidia-drm.ko", "nvidia-peermem.ko"]
ABI = "6.1.0-56-amd64"
# A few real exports of the kernel (from its Module.symvers) for the judge.
KERNEL_EXPORTS = {"drm_dev_register", "__pci_register_driver", "__kmalloc"}


def test_parse_real_serial_log() -> None:
    result = parse_serial(SERIAL)
    assert result.kernel == ABI
    assert result.deps == {
        name: "dep-ok" for name in ("drm.ko", "drm_kms_helper.ko", "wmi.ko", "video.ko")
    }
    assert result.insmod["nvidia.ko"] == (
        19,
        "insmod: can't insert '/nvidia/nvidia.ko': No such device",
    )
    assert result.insmod["nvidia-peermem.ko"][0] == 22
    assert result.smi is not None
    assert result.smi[0] == 9
    assert result.done
    assert unknown_symbols(result.dmesg) == {"nvidia_register_module", "nvUvmInterfaceRegisterGpu"}
    assert judge(result, MODULES, ABI, KERNEL_EXPORTS) == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("BEE-CHECK done\n", ""), "did not finish"),
        (("uname 6.1.0-56-amd64", "uname 6.1.0-55-amd64"), "booted '6.1.0-55-amd64'"),
        (("dep-ok video.ko", "dep-fail video.ko"), "video.ko did not load"),
        (("smi rc=9", "smi rc=12"), "nvidia-smi exit 12"),
        (("No such device", "Exec format error"), "insmod nvidia.ko"),
        (
            (
                "NVRM: No NVIDIA GPU found.",
                "nvidia: disagrees about version of symbol module_layout",
            ),
            "kernel refused a module",
        ),
        (("nvidia_register_module", "drm_dev_register"), "kernel symbols did not resolve"),
    ],
)
def test_judge_finds_each_problem(edit: tuple[str, str], problem: str) -> None:
    result = parse_serial(SERIAL.replace(*edit))
    problems = judge(result, MODULES, ABI, KERNEL_EXPORTS)
    assert any(problem in line for line in problems), problems


def test_parse_serial_edge_cases() -> None:
    assert parse_serial("").done is False
    # Found by the property below: an exit code written with a leading zero.
    assert parse_serial("BEE-CHECK insmod nvidia.ko rc=01 x").insmod["nvidia.ko"][0] == 1
    assert_read_from(
        "BEE-CHECK insmod nvidia.ko rc=01 x", parse_serial("BEE-CHECK insmod nvidia.ko rc=01 x")
    )
    assert parse_serial("BEE-CHECK insmod x.ko rc=?? junk").insmod["x.ko"][0] == -1


def assert_read_from(text: str, result) -> None:
    """What any serial log gives: nothing without a BEE-CHECK line; exit codes only as the log
    prints them (`rc=N`), else -1; `done` only when the initramfs said so."""
    if "BEE-CHECK " not in text:
        assert result == parse_serial("")
    for code, _message in [*result.insmod.values(), *([result.smi] if result.smi else [])]:
        # `rc=01` is exit code 1 as written: leading zeros allowed, no digit after it.
        assert code == -1 or (code >= 0 and re.search(rf"rc=0*{code}(?![0-9])", text))
    assert result.done == any(
        line.partition("BEE-CHECK ")[2].strip().partition(" ")[0] == "done"
        for line in text.splitlines()
    )


@given(st.text())
def test_serial_and_modules_dep_parsers_never_raise(text: str) -> None:
    for log in (text, "BEE-CHECK " + text):
        assert_read_from(log, parse_serial(log))
    assert unknown_symbols(text.splitlines()) <= set(text.split())


# A BEE-CHECK line of every kind, followed by anything: "rc=" words that are not numbers.
CHECK_LINES = st.builds(
    lambda kind, rest: f"BEE-CHECK {kind} {rest}",
    st.sampled_from(["uname", "dep-ok", "dep-fail", "insmod nvidia.ko", "smi", "dmesg", "done"]),
    st.one_of(
        st.text(max_size=30),
        st.builds(
            lambda a, b: f"{a}{b} x",
            st.sampled_from(["rc=", "xx=", "rc", "r=", "rc=-"]),
            st.text(alphabet="0123456789\u00b2\u0663-", min_size=1, max_size=3),
        ),
    ),
)


@given(st.lists(CHECK_LINES, max_size=8))
def test_serial_parser_never_raises_on_any_check_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert_read_from(text, parse_serial(text))


@given(st.lists(st.sampled_from(SERIAL.splitlines())))
def test_serial_parser_on_dropped_and_repeated_real_lines(lines: list[str]) -> None:
    parse_serial("\n".join(lines))
