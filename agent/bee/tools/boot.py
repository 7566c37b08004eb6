"""boot: how this kernel was started. No tool runs; four kernel interfaces are read.

- `/proc/cmdline`: the kernel command line, split as the kernel splits it (`next_arg()` in
  lib/cmdline.c): words separated by whitespace, double quotes group (`a="b c"`, `"a=b c"`)
  and are dropped, the first `=` separates name and value, and a lone `--` ends the kernel's
  parameters (the rest goes to init). `BOOTIF=01-52-54-00-be-e0-09` (pxelinux / iPXE: ARP
  type 1, then the MAC of the NIC that booted; read as dracut reads it) and `bee.*`
  parameters are picked out.
- `/sys/firmware/efi`: present only when the kernel was started by UEFI firmware.
- `/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c` (efivarfs): four
  bytes of attributes, then one byte, 1 when Secure Boot is on.
- `/sys/kernel/security/lockdown` (securityfs): `none [integrity] confidentiality`, the mode in
  force bracketed. Debian kernels switch to integrity under Secure Boot.

Fixtures: the Firecracker build host (no UEFI; securityfs mounted by hand) and QEMU guests of
the Debian 12 kernel, booted by SeaBIOS and by OVMF with Secure Boot
(`fixtures/capture-qemu-boot.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bee import document
from bee.probe import Probe
from bee.registry import Collector

CMDLINE = "/proc/cmdline"
EFI_DIR = "/sys/firmware/efi"
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
LOCKDOWN = "/sys/kernel/security/lockdown"

Firmware = Literal["uefi", "bios"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelArg:
    name: str  # "BOOTIF", "bee.spec", "quiet"
    value: str | None  # None for a parameter without "=" (a flag)


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelCommandLine:
    raw: str  # as the kernel printed it, without the trailing newline
    args: list[KernelArg]  # the kernel's parameters, in order (repeats kept)
    init_args: list[str]  # what follows a lone "--": handed to init, not the kernel's
    bootif: str | None  # the BOOTIF= value as written
    bootif_mac: str | None  # its MAC, "52:54:00:be:e0:09"; None when it holds no MAC
    bee: dict[str, str | None]  # bee.* parameters without the prefix: {"spec": "http://..."}


@dataclass(frozen=True, slots=True, kw_only=True)
class Lockdown:
    mode: str | None  # the bracketed one: "none", "integrity", "confidentiality"
    modes: list[str]  # every mode this kernel offers


@dataclass(frozen=True, slots=True, kw_only=True)
class Boot:
    firmware: Firmware | None  # None: /sys/firmware could not be listed
    secure_boot: bool | None  # None: unknown (UEFI, but the variable could not be read)
    secure_boot_source: str | None  # "efivar", or "bios" (no UEFI, so no Secure Boot)
    lockdown: str | None  # None when securityfs is not mounted or the LSM is absent
    lockdown_modes: list[str]
    cmdline: KernelCommandLine | None


# -- parsers ----------------------------------------------------------------------------------


def kernel_words(text: str) -> list[str]:
    """Split as the kernel does: whitespace separates, double quotes group and are dropped
    (/proc/cmdline keeps the quotes: `bee.upload="http://h/p?a=1&b=2"`)."""
    words: list[str] = []
    current: list[str] = []
    in_word = in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
            in_word = True
        elif char.isspace() and not in_quotes:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


def parse_bootif(value: str | None) -> str | None:
    """'01-52-54-00-be-e0-09' (ARP hardware type, then six octets) -> '52:54:00:be:e0:09'.

    As dracut reads it: `-` or `:` separate, and the type field is dropped only when seven
    fields are given (so a bare six-octet MAC works too)."""
    if value is None:
        return None
    parts = value.strip().lower().replace(":", "-").split("-")
    if len(parts) == 7:
        parts = parts[1:]
    ok = len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    )
    return ":".join(parts) if ok else None


def parse_cmdline(text: str) -> KernelCommandLine:
    raw = text.rstrip("\n")
    words = kernel_words(raw)
    init_args: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, init_args = words[:at], words[at + 1 :]
    args = []
    for word in words:
        name, sep, value = word.partition("=")
        args.append(KernelArg(name=name, value=value if sep else None))
    # The kernel and initramfs scripts take the last of repeated parameters.
    last = {a.name: a.value for a in args}
    bootif = last.get("BOOTIF")
    return KernelCommandLine(
        raw=raw,
        args=args,
        init_args=init_args,
        bootif=bootif,
        bootif_mac=parse_bootif(bootif),
        bee={name[4:]: value for name, value in last.items() if name.startswith("bee.")},
    )


def parse_lockdown(text: str) -> Lockdown:
    """'none [integrity] confidentiality' -> mode integrity of three."""
    mode = None
    modes = []
    for word in text.split():
        name = word.strip("[]")
        if not name:
            continue
        if word.startswith("[") and word.endswith("]"):
            mode = name
        modes.append(name)
    return Lockdown(mode=mode, modes=modes)


def parse_secure_boot(text: str) -> bool | None:
    """The SecureBoot efivar: 4 attribute bytes, then 1 (on) or 0 (off)."""
    if len(text) != 5:
        return None
    return {"\x00": False, "\x01": True}.get(text[-1])


PARSERS: dict[str, Callable[[str], object]] = {
    "proc-cmdline": parse_cmdline,
    "kernel-lockdown": parse_lockdown,
}


# -- collector --------------------------------------------------------------------------------


def _firmware(probe: Probe) -> Firmware | None:
    listed = probe.list_dir("/sys/firmware")
    if listed is None:
        return None
    return "uefi" if "efi" in listed else "bios"


def collect(probe: Probe) -> Boot | None:
    text = probe.read_text(CMDLINE)
    cmdline = parse_cmdline(text) if text is not None else None
    firmware = _firmware(probe)
    if cmdline is None and firmware is None:
        return None
    secure_boot, source = None, None
    if firmware == "bios":
        secure_boot, source = False, "bios"
    elif firmware == "uefi":
        variable = probe.read_text(SECURE_BOOT_VAR)
        secure_boot = parse_secure_boot(variable) if variable is not None else None
        if secure_boot is not None:
            source = "efivar"
        elif variable is None:
            probe.note(f"Secure Boot state unknown: {SECURE_BOOT_VAR} not readable")
        else:
            probe.error(f"Secure Boot state unknown: {SECURE_BOOT_VAR} holds {variable!r}")
    lockdown_text = probe.read_text(LOCKDOWN)
    lockdown = parse_lockdown(lockdown_text) if lockdown_text is not None else None
    if lockdown is None:
        probe.note(f"kernel lockdown unknown: {LOCKDOWN} not readable (securityfs not mounted?)")
    return Boot(
        firmware=firmware,
        secure_boot=secure_boot,
        secure_boot_source=source,
        lockdown=lockdown.mode if lockdown else None,
        lockdown_modes=lockdown.modes if lockdown else [],
        cmdline=cmdline,
    )


def summary(section: object) -> str | None:
    if not isinstance(section, dict):
        return None
    firmware = {"uefi": "UEFI", "bios": "BIOS"}.get(document.text(section, "firmware") or "", "?")
    parts = [f"Boot: {firmware}"]
    secure = section.get("secure_boot")
    if firmware == "UEFI":
        parts.append(
            {True: "Secure Boot on", False: "Secure Boot off"}.get(secure, "Secure Boot ?")
        )
    parts.append(f"lockdown {document.text(section, 'lockdown') or '?'}")
    return ", ".join(parts)


COLLECTORS = (
    Collector(
        name="boot",
        order=80,
        collects="UEFI or BIOS, Secure Boot, kernel lockdown, command line: /sys/firmware/efi, "
        "efivars, /sys/kernel/security/lockdown, /proc/cmdline",
        collect=collect,
        summary=summary,
        parsers=PARSERS,
    ),
)
