"""The boot section: kernel command line, UEFI or BIOS, Secure Boot, lockdown.

Real inputs: this build host's /proc/cmdline and lockdown (fixtures/proc-cmdline,
fixtures/kernel-lockdown) and the QEMU boots of fixtures/capture-qemu-boot.py (BIOS, UEFI,
UEFI with Secure Boot), replayed as bee captures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.summary import summary_lines
from bee.tools import boot
from conftest import FIXTURES, assert_section_valid, mangle, probe_over, write_capture

HOST_CMDLINE = FIXTURES / "proc-cmdline" / "firecracker-build-host.txt"
HOST_LOCKDOWN = FIXTURES / "kernel-lockdown" / "firecracker-build-host.txt"
QEMU_BOOTS = FIXTURES / "captures"
CMDLINES = sorted((FIXTURES / "proc-cmdline").glob("*.txt"))
EXPECTED_BOOTS = {
    # boot: (firmware, secure_boot, lockdown)
    "qemu-q35-seabios": ("bios", False, "none"),
    "qemu-q35-ovmf": ("uefi", False, "none"),
    "qemu-q35-ovmf-secureboot-shim-grub": ("uefi", True, "integrity"),
}


# -- the command line -------------------------------------------------------------------------


def test_this_hosts_command_line_splits_at_the_double_dash():
    line = boot.parse_cmdline(HOST_CMDLINE.read_text())
    names = [a.name for a in line.args]
    assert names[:3] == ["mitigations", "console", "quiet"]
    assert line.args[2].value is None and line.args[1].value == "ttyS0"
    assert "rdinit" in names and "--firecracker-init" not in names
    assert line.init_args[0] == "--firecracker-init" and "--auth-required" in line.init_args
    assert line.bootif is None and line.bee == {}


@pytest.mark.parametrize(
    ("text", "args", "init"),
    [
        ('a="b c" d', [("a", "b c"), ("d", None)], []),
        ('"a=b c" d', [("a", "b c"), ("d", None)], []),
        ("  a=1\tb==2 \n", [("a", "1"), ("b", "=2")], []),
        ("a -- b -- c", [("a", None)], ["b", "--", "c"]),
        ('a="unterminated', [("a", "unterminated")], []),
        ("", [], []),
    ],
)
def test_kernel_splitting_rules(text, args, init):
    line = boot.parse_cmdline(text)
    assert [(a.name, a.value) for a in line.args] == args
    assert line.init_args == init


def test_bootif_and_bee_parameters_take_the_last_of_repeats():
    line = boot.parse_cmdline(
        "BOOTIF=01-aa-bb-cc-dd-ee-ff bee.spec=x bee.spec=http://h/s.toml bee.quiet "
        "BOOTIF=01-52-54-00-BE-E0-09"
    )
    assert line.bootif == "01-52-54-00-BE-E0-09" and line.bootif_mac == "52:54:00:be:e0:09"
    assert line.bee == {"spec": "http://h/s.toml", "quiet": None}


@pytest.mark.parametrize(
    ("value", "mac"),
    [
        ("01-52-54-00-be-e0-09", "52:54:00:be:e0:09"),
        ("52:54:00:be:e0:09", "52:54:00:be:e0:09"),
        ("06-52-54-00-be-e0-09", "52:54:00:be:e0:09"),  # dracut drops any type field
        ("01-52-54-00-be-e0", "01:52:54:00:be:e0"),  # six fields: all MAC, as for dracut
        ("01-52-54-00-be-e0-09-10", None),
        ("01-zz-54-00-be-e0-09", None),
        ("", None),
        (None, None),
    ],
)
def test_bootif_mac(value, mac):
    assert boot.parse_bootif(value) == mac


def test_lockdown_of_this_host():
    lockdown = boot.parse_lockdown(HOST_LOCKDOWN.read_text())
    assert lockdown.mode == "integrity"
    assert lockdown.modes == ["none", "integrity", "confidentiality"]


@pytest.mark.parametrize(
    ("text", "value"), [("\x06\x00\x00\x00\x01", True), ("\x06\x00\x00\x00\x00", False)]
)
def test_secure_boot_variable_last_byte(text, value):
    assert boot.parse_secure_boot(text) is value


@pytest.mark.parametrize(
    "text", ["", "\x06\x00\x00\x00", "\x06\x00\x00\x00\x02", "\x06\x00\x00\x00\x01\x00"]
)
def test_secure_boot_variable_of_another_shape_is_unknown(text):
    assert boot.parse_secure_boot(text) is None


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_parsers_never_raise(text):
    boot.parse_cmdline(text)
    boot.parse_lockdown(text)
    boot.parse_secure_boot(text)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("path", CMDLINES, ids=lambda p: p.name)
def test_real_command_lines_damaged_still_parse(path, data):
    line = boot.parse_cmdline(mangle(data, path.read_text()))
    assert all(a.name or a.value is not None for a in line.args)


def test_a_long_command_line_parses_in_linear_time():
    line = boot.parse_cmdline('a="' * 20000 + " x" * 20000)
    assert line.args


# -- the collector --------------------------------------------------------------------------


def _host_capture(tmp_path: Path, *, firmware: list[str] | None, lockdown: bool = True) -> Path:
    files = {boot.CMDLINE: HOST_CMDLINE.read_text()}
    if lockdown:
        files[boot.LOCKDOWN] = HOST_LOCKDOWN.read_text()
    return write_capture(tmp_path, [], files=files, dirs={"/sys/firmware": firmware})


def test_collector_on_this_host(tmp_path):
    # This host's /sys/firmware holds acpi and memmap, no efi: BIOS-style (direct kernel boot).
    probe, recorder = probe_over(_host_capture(tmp_path, firmware=["acpi", "memmap"]), "boot")
    section = boot.collect(probe)
    assert (section.firmware, section.secure_boot, section.secure_boot_source) == (
        "bios",
        False,
        "bios",
    )
    assert section.lockdown == "integrity" and section.cmdline.args[0].name == "mitigations"
    assert probe.errors == [] and probe.notes == [] and recorder.results == []
    assert_section_valid("boot", section)


def test_unknown_stays_unknown(tmp_path):
    """UEFI without a readable SecureBoot variable, no securityfs: null, never 'off'."""
    probe, _ = probe_over(_host_capture(tmp_path, firmware=["efi"], lockdown=False), "boot")
    section = boot.collect(probe)
    assert section.firmware == "uefi" and section.secure_boot is None
    assert section.lockdown is None and section.lockdown_modes == []
    assert len(probe.notes) == 2 and probe.errors == []
    assert_section_valid("boot", section)
    assert boot.summary(boot_json(section)) == "Boot: UEFI, Secure Boot ?, lockdown ?"


def test_nothing_readable_is_no_section(tmp_path):
    probe, _ = probe_over(write_capture(tmp_path, []), "boot")
    assert boot.collect(probe) is None


def boot_json(section):
    from bee.serialize import to_jsonable

    return to_jsonable(section)


@pytest.mark.parametrize("name", sorted(EXPECTED_BOOTS))
def test_qemu_boots_replay(name, validate_document):
    document = run_audit(ReplayRunner(QEMU_BOOTS / f"boot-{name}"), deadline_s=30, mode="replay")
    validate_document(document)
    section = document["boot"]
    assert (section["firmware"], section["secure_boot"], section["lockdown"]) == EXPECTED_BOOTS[
        name
    ]
    line = section["cmdline"]
    assert line["bootif_mac"] == "52:54:00:be:e0:09"
    assert line["bee"] == {"spec": "http://10.0.0.1/spec.toml", "note": "rack 12 u 30"}
    assert line["init_args"][0] == "single"
    assert {"name": "boot", "value": "live"} in line["args"]
    assert not [a for a in line["args"] if a["name"] in ("single", "initrd")]
    assert document["collectors"]["boot"] == {
        "status": "ok",
        "duration_s": document["collectors"]["boot"]["duration_s"],
        "notes": [],
    }
    assert any(s.startswith("Boot: ") for s in summary_lines(document))


def test_what_the_loaders_did_to_the_command_line():
    """Real quirks: QEMU's EFI stub loading appends `initrd=initrd` after our `--` (so it is
    init's, not the kernel's); grub adds BOOT_IMAGE= and rewrites `a="b c"` as `"a=b c"`."""
    ovmf = boot.parse_cmdline((FIXTURES / "proc-cmdline" / "qemu-q35-ovmf.txt").read_text())
    assert ovmf.init_args == ["single", "initrd=initrd"]
    grub = (FIXTURES / "proc-cmdline" / "qemu-q35-ovmf-secureboot-shim-grub.txt").read_text()
    assert '"bee.note=rack 12 u 30"' in grub
    line = boot.parse_cmdline(grub)
    assert line.args[0] == boot.KernelArg(name="BOOT_IMAGE", value="/vmlinuz")
    assert line.bee["note"] == "rack 12 u 30"
