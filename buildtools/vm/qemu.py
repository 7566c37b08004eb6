"""The emulated server: its description (tests/vm/hardware.toml) and the QEMU that runs it.

Pure parts (unit-tested): load_hardware / parse_hardware, qemu_dimm_split, machine_args,
parse_isolinux_append. Parts that run things: extract_boot_files (xorriso), probe_kvm,
Vm (one qemu-system-x86_64 process in its own process group), free_port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from buildtools.runner import CommandError, Runner, stop_group
from buildtools.vm import fru, phases

REPO_ROOT = Path(__file__).resolve().parents[2]
HARDWARE_FILE = REPO_ROOT / "tests" / "vm" / "hardware.toml"
QEMU = "qemu-system-x86_64"
MIB = 1024 * 1024
QEMU_MAX_DIMM_MIB = 16 * 1024  # hw/smbios/smbios.c: MAX_DIMM_SZ
DISK_BUSES = ("nvme", "sata", "scsi")


class HardwareError(ValueError):
    """The hardware description is missing, malformed or asks for what QEMU cannot emulate."""


class QemuError(RuntimeError):
    """QEMU or a tool around it failed; the message says what and where to look."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disk:
    bus: str
    serial: str
    size_bytes: int
    model: str = ""  # sata
    vendor: str = ""  # scsi
    product: str = ""  # scsi


@dataclass(frozen=True, slots=True, kw_only=True)
class Nic:
    model: str
    mac: str
    vendor_id: str
    device_id: str
    link_speed_gts: float
    link_width: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    dimm_sizes_mib: tuple[int, ...]
    bios: dict[str, str]
    system: dict[str, str]
    baseboard: dict[str, str]
    chassis: dict[str, str]
    processor: dict[str, str | int]
    memory: dict[str, str | int]
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]
    fru_devices: tuple[fru.FruDevice, ...]
    sensors: tuple[fru.Sensor, ...] = ()
    bmc: dict[str, str | int] = field(default_factory=dict)  # ipmi-bmc-sim identity ([bmc])
    sel_events: tuple[fru.SelEvent, ...] = ()  # what vm_test adds to the SEL

    @property
    def memory_mib(self) -> int:
        return sum(self.dimm_sizes_mib)

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core


def qemu_dimm_split(memory_mib: int) -> list[int]:
    """How QEMU's SMBIOS code cuts -m into type 17 DIMMs: 16 GiB each, the rest last."""
    full, rest = divmod(memory_mib, QEMU_MAX_DIMM_MIB)
    return [QEMU_MAX_DIMM_MIB] * full + ([rest] if rest else [])


def _table(doc: dict, key: str) -> dict:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise HardwareError(f"[{key}] is missing")
    return value


def _strings(doc: dict, key: str, required: tuple[str, ...]) -> dict[str, str]:
    table = _table(doc, key)
    for name in required:
        if not isinstance(table.get(name), str) or not table[name]:
            raise HardwareError(f"[{key}] {name} must be a non-empty string")
    return {name: str(value) for name, value in table.items()}


def _positive(table: dict, key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise HardwareError(f"{where}: {key} must be a positive integer")
    return value


# QEMU's -smbios/-device option parser splits on commas; a comma in a value must be doubled.
def _opt(value: str) -> str:
    return value.replace(",", ",,")


def parse_hardware(doc: dict) -> Hardware:
    machine = _table(doc, "machine")
    sizes = machine.get("dimm_sizes_mib")
    if not isinstance(sizes, list) or not sizes or not all(isinstance(s, int) for s in sizes):
        raise HardwareError("[machine] dimm_sizes_mib must be a list of integers")
    if qemu_dimm_split(sum(sizes)) != sizes:
        raise HardwareError(
            f"[machine] dimm_sizes_mib {sizes} is not how QEMU splits {sum(sizes)} MiB: "
            f"it would make {qemu_dimm_split(sum(sizes))}"
        )
    disks: list[Disk] = []
    for number, table in enumerate(doc.get("disk", []), 1):
        where = f"disk #{number}"
        bus = table.get("bus")
        if bus not in DISK_BUSES:
            raise HardwareError(f"{where}: bus must be one of {', '.join(DISK_BUSES)}")
        size = _positive(table, "size_bytes", where)
        if size % 512:
            raise HardwareError(f"{where}: size_bytes {size} is not a multiple of 512")
        serial = table.get("serial")
        if not isinstance(serial, str) or not serial:
            raise HardwareError(f"{where}: serial must be a non-empty string")
        if bus == "nvme" and len(serial) > 20:
            raise HardwareError(f"{where}: an NVMe serial holds at most 20 characters")
        disks.append(
            Disk(
                bus=bus,
                serial=serial,
                size_bytes=size,
                model=str(table.get("model", "")),
                vendor=str(table.get("vendor", "")),
                product=str(table.get("product", "")),
            )
        )
    nics: list[Nic] = []
    for number, table in enumerate(doc.get("nic", []), 1):
        where = f"nic #{number}"
        mac = str(table.get("mac", ""))
        if not re.fullmatch(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
            raise HardwareError(f"{where}: mac {mac!r} is not lower-case aa:bb:cc:dd:ee:ff")
        nics.append(
            Nic(
                model=str(table.get("model", "e1000e")),
                mac=mac,
                vendor_id=str(table.get("vendor_id", "")).lower(),
                device_id=str(table.get("device_id", "")).lower(),
                link_speed_gts=float(table.get("link_speed_gts", 0)),
                link_width=int(table.get("link_width", 0)),
            )
        )
    if not disks or not nics:
        raise HardwareError("the description needs at least one [[disk]] and one [[nic]]")
    try:
        fru_devices = fru.parse_devices(doc.get("fru", []))
        sensors = fru.parse_sensors(doc.get("sensor", []))
        sel_events = fru.parse_sel_events(doc.get("sel_event", []), sensors)
    except fru.FruError as exc:
        raise HardwareError(str(exc)) from None
    return Hardware(
        sockets=_positive(machine, "sockets", "[machine]"),
        cores_per_socket=_positive(machine, "cores_per_socket", "[machine]"),
        threads_per_core=_positive(machine, "threads_per_core", "[machine]"),
        dimm_sizes_mib=tuple(sizes),
        bios=_strings(doc, "bios", ("vendor", "version", "date")),
        system=_strings(doc, "system", ("manufacturer", "product", "serial")),
        baseboard=_strings(doc, "baseboard", ("manufacturer", "product", "serial")),
        chassis=_strings(doc, "chassis", ("manufacturer", "serial", "type")),
        processor=dict(_table(doc, "processor")),
        memory=dict(_table(doc, "memory")),
        disks=tuple(disks),
        nics=tuple(nics),
        fru_devices=tuple(fru_devices),
        sensors=sensors,
        bmc=dict(doc.get("bmc", {})),
        sel_events=sel_events,
    )


def load_hardware(path: Path = HARDWARE_FILE) -> Hardware:
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise HardwareError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{path}: {exc}") from None
    try:
        return parse_hardware(doc)
    except HardwareError as exc:
        raise HardwareError(f"{path}: {exc}") from None


# --- the command line -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Accel:
    name: str  # "kvm" or "tcg"
    cpu: str  # "-cpu" model
    why: str  # one line for the report


@dataclass(frozen=True, slots=True, kw_only=True)
class BootFiles:
    kernel: Path
    initrd: Path
    append: str  # the image's own kernel arguments, as its boot menu has them


def smbios_args(hw: Hardware) -> list[str]:
    def join(kind: int, fields: dict[str, object]) -> list[str]:
        parts = [f"type={kind}"] + [
            f"{key}={_opt(str(value))}" for key, value in fields.items() if value != ""
        ]
        return ["-smbios", ",".join(parts)]

    bios, system, board, chassis = hw.bios, hw.system, hw.baseboard, hw.chassis
    cpu, mem = hw.processor, hw.memory
    return [
        *join(0, {k: bios.get(k, "") for k in ("vendor", "version", "date", "release")}),
        *join(
            1,
            {
                k: system.get(k, "")
                for k in ("manufacturer", "product", "version", "serial", "uuid", "sku", "family")
            },
        ),
        *join(
            2,
            {
                k: board.get(k, "")
                for k in ("manufacturer", "product", "version", "serial", "asset", "location")
            },
        ),
        *join(3, {k: chassis.get(k, "") for k in ("manufacturer", "version", "serial", "asset")}),
        *join(
            4,
            {
                "sock_pfx": cpu.get("socket_prefix", "CPU"),
                "manufacturer": cpu.get("manufacturer", ""),
                "version": cpu.get("version", ""),
                "part": cpu.get("part", ""),
                "max-speed": cpu.get("max_speed_mhz", ""),
                "current-speed": cpu.get("current_speed_mhz", ""),
            },
        ),
        *join(
            17,
            {
                "loc_pfx": mem.get("locator_prefix", "DIMM"),
                "bank": mem.get("bank", ""),
                "manufacturer": mem.get("manufacturer", ""),
                "serial": mem.get("serial", ""),
                "part": mem.get("part", ""),
                "speed": mem.get("speed_mts", ""),
            },
        ),
    ]


def disk_args(hw: Hardware) -> list[str]:
    """Each disk on a null-co block node: any size, no host disk, reads return zeros."""
    args: list[str] = []
    sata_port = 0
    scsi_bus_added = False
    for index, disk in enumerate(hw.disks):
        node = f"disk{index}"
        args += [
            "-blockdev",
            f"driver=null-co,node-name={node},size={disk.size_bytes},read-zeroes=on",
        ]
        serial = _opt(disk.serial)
        if disk.bus == "nvme":
            args += ["-device", f"nvme,drive={node},serial={serial},bus=rp-{node}"]
        elif disk.bus == "sata":
            model = f",model={_opt(disk.model)}" if disk.model else ""
            args += ["-device", f"ide-hd,drive={node},bus=ide.{sata_port},serial={serial}{model}"]
            sata_port += 1
        else:
            if not scsi_bus_added:
                args += ["-device", "virtio-scsi-pci,id=scsi0,bus=rp-scsi0"]
                scsi_bus_added = True
            extra = "".join(
                f",{key}={_opt(value)}"
                for key, value in (("vendor", disk.vendor), ("product", disk.product))
                if value
            )
            args += ["-device", f"scsi-hd,drive={node},bus=scsi0.0,serial={serial}{extra}"]
    return args


def root_ports(hw: Hardware) -> list[str]:
    """One pcie-root-port per PCIe endpoint, so the guest sees real link registers."""
    names = [f"rp-disk{i}" for i, d in enumerate(hw.disks) if d.bus == "nvme"]
    if any(d.bus == "scsi" for d in hw.disks):
        names.append("rp-scsi0")
    names += [f"rp-nic{i}" for i in range(len(hw.nics))]
    args: list[str] = []
    for number, name in enumerate(names):
        slot, function = divmod(number, 8)
        multi = ",multifunction=on" if function == 0 else ""
        args += [
            "-device",
            f"pcie-root-port,id={name},bus=pcie.0,chassis={number + 1},"
            f"addr={0x10 + slot:#x}.{function}{multi}",
        ]
    return args


@dataclass(frozen=True, slots=True, kw_only=True)
class Netboot:
    """Boot from the first NIC's iPXE ROM: its user network serves `bootfile` from `tftp_dir`
    (slirp's own TFTP server) and carries `guestfwd` (the HTTP server, buildtools.netboot)."""

    tftp_dir: Path
    bootfile: str
    guestfwd: str


FIRMWARES = ("seabios", "ovmf", "ovmf-secboot")
# Debian's ovmf package: the 4 MiB builds; .ms.fd vars have Microsoft's keys enrolled and
# Secure Boot on.
OVMF = {
    "ovmf": ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    "ovmf-secboot": (
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    ),
}


def firmware_args(firmware: str, vars_copy: Path | None) -> list[str]:
    """SeaBIOS is QEMU's default; OVMF as pflash, its variables in a per-boot copy."""
    if firmware == "seabios":
        return []
    if firmware not in OVMF or vars_copy is None:
        raise HardwareError(f"unknown firmware {firmware!r} (one of {', '.join(FIRMWARES)})")
    code, _vars = OVMF[firmware]
    args = [
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(code)}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={_opt(str(vars_copy))}",
    ]
    if firmware == "ovmf-secboot":
        # The secboot build keeps its variables in SMM: the machine must have it.
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    return args


def nic_args(
    hw: Hardware,
    *,
    ssh_port: int | None,
    isolated_nics: frozenset[int] = frozenset(),
    netboot: Netboot | None = None,
) -> list[str]:
    """NICs on QEMU user networking (no route out: restrict=on), the first one carrying SSH
    forwarded from 127.0.0.1:ssh_port only.

    A NIC in isolated_nics sits alone on its own QEMU hub instead: link up, nothing answers,
    no DHCP, which is what a server on a dead or DHCP-less LAN sees.
    """
    args: list[str] = []
    for index, nic in enumerate(hw.nics):
        netdev = f"net{index}"
        # Each user network gets its own subnet (10.0.2.0/24, 10.0.3.0/24, ...). With the same
        # default subnet on two NICs the guest holds 10.0.2.15 twice and may answer the SSH
        # connection of NIC 1 through NIC 2, whose slirp drops it: SSH then hangs at random.
        user = f"user,id={netdev},restrict=on,net=10.0.{2 + index}.0/24"
        if index == 0 and netboot is not None:
            user += (
                f",tftp={_opt(str(netboot.tftp_dir))},bootfile={netboot.bootfile},"
                f"{netboot.guestfwd}"
            )
        if index in isolated_nics:
            args += ["-netdev", f"hubport,id={netdev},hubid={index}"]
        elif index == 0 and ssh_port is not None:
            args += ["-netdev", f"{user},hostfwd=tcp:127.0.0.1:{ssh_port}-:22"]
        else:
            args += ["-netdev", user]
        # bootindex: the firmware tries this NIC's ROM (iPXE) first, and nothing else.
        first = ",bootindex=0" if index == 0 and netboot is not None else ""
        args += [
            "-device",
            f"{nic.model},netdev={netdev},mac={nic.mac},bus=rp-nic{index}{first}",
        ]
    return args


def bmc_identity(bmc: dict[str, str | int]) -> str:
    """ipmi-bmc-sim properties for `ipmitool mc info`: firmware "1.74" is fwrev1=1, fwrev2=0x74."""
    major, _, minor = str(bmc.get("firmware", "0.00")).partition(".")
    return (
        f"device_id={int(bmc.get('device_id', 32))},device_rev={int(bmc.get('device_rev', 0))},"
        f"fwrev1={int(major)},fwrev2={int(minor or '0', 16)},"
        f"mfg_id={int(bmc.get('manufacturer_id', 0))},product_id={int(bmc.get('product_id', 0))}"
    )


def bmc_args(fru_path: Path, sdr_path: Path, bmc: dict[str, str | int] | None = None) -> list[str]:
    return [
        "-device",
        f"ipmi-bmc-sim,id=bmc0,frudatafile={_opt(str(fru_path))},"
        f"fruareasize={fru.FRU_AREA_SIZE},sdrfile={_opt(str(sdr_path))}," + bmc_identity(bmc or {}),
        "-device",
        "isa-ipmi-kcs,bmc=bmc0",
    ]


def machine_args(
    hw: Hardware,
    *,
    accel: Accel,
    boot: BootFiles,
    iso: Path,
    fru_path: Path,
    sdr_path: Path,
    serial_log: Path,
    ssh_port: int | None,
    isolated_nics: frozenset[int] = frozenset(),
    netboot: Netboot | None = None,
    firmware: str = "seabios",
    vars_copy: Path | None = None,
    via_bootloader: bool = False,
    qemu_command: Sequence[str] = (QEMU,),
    machine: str = "q35",
) -> list[str]:
    """The whole qemu-system-x86_64 command line for one boot of the image: the kernel and
    initrd handed to QEMU with the ISO as the CD; or the CD booted through its own bootloader
    (isolinux under SeaBIOS, GRUB under OVMF); or (netboot) no disk of bee at all.
    `qemu_command` and `machine`: the emulator, its -L options and its q35 machine type
    (buildtools/vm/emulator.py)."""
    append = guest_arguments(boot.append)
    return [
        *qemu_command,
        "-name",
        "bee-vm-test",
        "-machine",
        f"{machine},smm=on" if firmware == "ovmf-secboot" else machine,
        *firmware_args(firmware, vars_copy),
        "-accel",
        accel.name,
        "-cpu",
        accel.cpu,
        "-smp",
        f"{hw.cpus},sockets={hw.sockets},cores={hw.cores_per_socket},threads={hw.threads_per_core}",
        "-m",
        f"{hw.memory_mib}M",
        "-display",
        "none",
        "-vga",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        f"file:{serial_log}",
        "-monitor",
        "none",
        *smbios_args(hw),
        *root_ports(hw),
        *disk_args(hw),
        *(cdrom_args(iso, boot_from=via_bootloader) if netboot is None else []),
        *nic_args(hw, ssh_port=ssh_port, isolated_nics=isolated_nics, netboot=netboot),
        *bmc_args(fru_path, sdr_path, hw.bmc),
        *(
            ["-kernel", str(boot.kernel), "-initrd", str(boot.initrd), "-append", append]
            if netboot is None and not via_bootloader
            else []
        ),
    ]


def guest_arguments(image_append: str) -> str:
    """The image's kernel arguments as the VM test boots them."""
    # The image's own console= words are replaced by one serial console: bee-audit-boot prints
    # its banner once per console=ttyS* word, and the last console= is /dev/console.
    append = " ".join(
        word
        for word in image_append.split()
        if word not in ("quiet", "splash") and not word.startswith("console=")
    )
    # show_status=1: systemd prints every unit it starts on the console ("Started
    # ssh.service"), which is the only witness on a boot nobody can log into. systemd stops
    # printing while a unit holds the console, so the serial getty is masked: vm_test logs in
    # over SSH only.
    return (
        f"{append} console=ttyS0,115200n8 systemd.show_status=1 "
        "systemd.mask=serial-getty@ttyS0.service"
    ).strip()


def cdrom_args(iso: Path, *, boot_from: bool = False) -> list[str]:
    return [
        "-drive",
        f"file={_opt(str(iso))},format=raw,if=none,id=live,media=cdrom,readonly=on",
        "-device",
        "ide-cd,drive=live,bus=ide.5" + (",bootindex=0" if boot_from else ""),
    ]


# --- boot files from the ISO ------------------------------------------------------------------


def parse_isolinux_append(text: str) -> tuple[str, str, str] | None:
    """(kernel, initrd, other arguments) of the first live entry of isolinux/live.cfg.

    Matches live-build's menu:
        linux /live/vmlinuz
        initrd /live/initrd.img
        append boot=live components quiet splash
    and the older form `kernel /live/vmlinuz` + `append initrd=/live/initrd.img boot=live ...`.
    """
    kernel = initrd = None
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(" ")
        key, value = key.lower(), value.strip()
        if key in ("linux", "kernel") and kernel is None:
            kernel = value
        elif key == "initrd" and initrd is None and kernel is not None:
            initrd = value
        elif key == "append" and kernel is not None:
            words = []
            for word in value.split():
                if word.startswith("initrd="):
                    initrd = initrd or word.partition("=")[2].split(",")[0]
                else:
                    words.append(word)
            if initrd is None:
                return None
            return kernel, initrd, " ".join(words)
    return None


def extract_boot_files(iso: Path, out_dir: Path, runner: Runner) -> BootFiles:
    """Copy the kernel and initrd out of the ISO (xorriso -osirrox) with its boot arguments."""
    out_dir.mkdir(parents=True, exist_ok=True)
    menu = out_dir / "live.cfg"
    _xorriso(iso, ["-extract", "/isolinux/live.cfg", str(menu)], runner)
    parsed = parse_isolinux_append(menu.read_text(encoding="utf-8", errors="replace"))
    if parsed is None:
        raise QemuError(f"{iso}: /isolinux/live.cfg names no kernel, initrd and append line")
    kernel_in_iso, initrd_in_iso, append = parsed
    kernel, initrd = out_dir / "vmlinuz", out_dir / "initrd.img"
    extract = ["-extract", kernel_in_iso, str(kernel), "-extract", initrd_in_iso, str(initrd)]
    _xorriso(iso, extract, runner)
    for path in (kernel, initrd):
        if not path.is_file() or path.stat().st_size == 0:
            raise QemuError(f"{iso}: could not extract {path.name}")
    return BootFiles(kernel=kernel, initrd=initrd, append=append)


def _xorriso(iso: Path, actions: list[str], runner: Runner) -> None:
    argv = ["xorriso", "-osirrox", "on", "-indev", str(iso), *actions]
    try:
        runner.run(argv, timeout_s=120, name=f"xorriso -indev {iso}")
    except CommandError as exc:
        raise QemuError(str(exc)) from None


# --- acceleration -----------------------------------------------------------------------------

KVM_PROBE_SECONDS = 30
# The kernel reached its last step without a root file system: it ran in 64-bit mode with
# interrupts and timers, so the accelerator works. Either line ends a healthy probe.
_KVM_PROBE_DONE = re.compile(rb"Kernel panic|Unable to mount root|Run /init|Freeing unused kernel")


def probe_kvm(
    kernel: Path, work_dir: Path, runner: Runner, qemu_command: Sequence[str] = (QEMU,)
) -> Accel:
    """Boot the image's kernel briefly under KVM; fall back to TCG when that does not work.

    Seen on the project's build host: /dev/kvm exists, `-cpu host` aborts on an MSR write and
    other CPU models hang, so only a real boot (not the mere device node) decides.
    """
    tcg = "-accel tcg -cpu max"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel(name="tcg", cpu="max", why=f"/dev/kvm is not usable: {tcg}")
    log = work_dir / "kvm-probe.log"
    argv = [
        *qemu_command,
        "-machine",
        "q35",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "512",
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        f"file:{log}",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1",
    ]
    started = time.monotonic()
    try:
        err = runner.run(argv, timeout_s=KVM_PROBE_SECONDS, check=False).output
    except CommandError:  # timed out: the serial log decides
        err = ""
    seen = log.read_bytes() if log.exists() else b""
    took = time.monotonic() - started
    if _KVM_PROBE_DONE.search(seen):
        return Accel(name="kvm", cpu="host", why=f"KVM works (kernel ran in {took:.1f} s)")
    reason = (err.strip().splitlines() or [""])[-1]
    if not reason:
        reason = f"the kernel printed nothing useful in {KVM_PROBE_SECONDS} s"
    return Accel(name="tcg", cpu="max", why=f"KVM does not work here ({reason}): {tcg}")


# --- running ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (QEMU binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Vm:
    """One qemu-system-x86_64 process; `with Vm(argv, log) as vm:` stops it on the way out.

    Not a runner command: the VM runs while the test talks to it, and the test's waits bound it.
    """

    def __init__(self, argv: list[str], stderr_log: Path, serial_log: Path | None = None) -> None:
        self.argv = argv
        self.stderr_log = stderr_log
        self.serial_log = serial_log
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.clock: phases.SerialClock | None = None  # when each serial line came

    def __enter__(self) -> Vm:
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_log.open("wb") as err:
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise QemuError(
                    f"{self.argv[0]} is not installed (apt-get install qemu-system-x86)"
                ) from None
        self.started = time.monotonic()
        if self.serial_log is not None:
            self.clock = phases.SerialClock(self.serial_log, self.started).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_message(self) -> str:
        """Why QEMU ended, for an error line: its return code and last stderr line."""
        code = self.proc.returncode if self.proc else None
        lines = self.stderr_log.read_text(errors="replace").strip().splitlines()
        return f"QEMU exited with {code}: {lines[-1] if lines else 'no message'}"

    def serial_lines(self) -> list[phases.SerialLine]:
        return self.clock.lines() if self.clock is not None else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)
        if self.clock is not None:
            self.clock.stop()
