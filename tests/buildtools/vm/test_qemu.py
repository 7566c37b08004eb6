"""buildtools.vm.qemu: the hardware description, and the QEMU command line made from it."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from buildtools.vm import fru, qemu

ACCEL = qemu.Accel(name="tcg", cpu="max", why="test")
BOOT = qemu.BootFiles(
    kernel=Path("/k/vmlinuz"),
    initrd=Path("/k/initrd.img"),
    append="boot=live components hostname=bee console=ttyS0,115200 console=tty1 quiet splash",
)


def doc() -> dict:
    with qemu.HARDWARE_FILE.open("rb") as handle:
        return tomllib.load(handle)


def args_for(hw: qemu.Hardware, tmp_path: Path, **kw: object) -> list[str]:
    options = {"ssh_port": 2222, **kw}
    return qemu.machine_args(
        hw,
        accel=ACCEL,
        boot=BOOT,
        iso=tmp_path / "bee.iso",
        fru_path=tmp_path / "fru.bin",
        sdr_path=tmp_path / "sdr.bin",
        serial_log=tmp_path / "serial.log",
        **options,
    )


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_the_description_loads() -> None:
    hw = qemu.load_hardware()
    assert hw.cpus == hw.sockets * hw.cores_per_socket * hw.threads_per_core
    assert hw.sockets >= 2 and len(hw.nics) >= 2
    assert {d.bus for d in hw.disks} == {"nvme", "sata", "scsi"}
    assert all(d.serial for d in hw.disks)


@pytest.mark.parametrize(
    ("memory_mib", "dimms"),
    [(4096, [4096]), (16384, [16384]), (18432, [16384, 2048]), (40960, [16384, 16384, 8192])],
)
def test_qemu_dimm_split(memory_mib: int, dimms: list[int]) -> None:
    assert qemu.qemu_dimm_split(memory_mib) == dimms


def test_dimm_sizes_qemu_cannot_make_are_refused() -> None:
    bad = doc()
    bad["machine"]["dimm_sizes_mib"] = [8192, 8192]
    with pytest.raises(qemu.HardwareError, match=r"would make \[16384\]"):
        qemu.parse_hardware(bad)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("disk", 0, "bus"), "usb", "bus must be one of"),
        (("disk", 0, "size_bytes"), 1000, "multiple of 512"),
        (("disk", 0, "serial"), "", "serial"),
        (("disk", 0, "serial"), "X" * 21, "20 characters"),
        (("nic", 0, "mac"), "52:54:00:BE:E0:01", "lower-case"),
        (("machine", "sockets"), 0, "positive integer"),
        (("system", "serial"), "", "non-empty string"),
        (("fru", 0, "id"), 300, "1..254"),
    ],
)
def test_bad_descriptions_are_refused(path: tuple, value: object, message: str) -> None:
    bad = doc()
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(qemu.HardwareError, match=message):
        qemu.parse_hardware(bad)


def test_load_hardware_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "hw.toml"
    broken.write_text("[machine\n")
    with pytest.raises(qemu.HardwareError, match=str(broken)):
        qemu.load_hardware(broken)
    with pytest.raises(qemu.HardwareError, match="cannot read"):
        qemu.load_hardware(tmp_path / "missing.toml")


def test_smbios_strings_come_from_the_description(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    smbios = values(args_for(hw, tmp_path), "-smbios")
    assert [s.split(",")[0] for s in smbios] == [f"type={t}" for t in (0, 1, 2, 3, 4, 17)]
    assert f"serial={hw.system['serial']}" in smbios[1]
    assert f"product={hw.baseboard['product']}" in smbios[2]
    assert f"version={hw.processor['version']}" in smbios[4]
    assert f"serial={hw.memory['serial']}" in smbios[5]
    # QEMU's option parser splits on commas: "International, LLC." must be doubled.
    assert "vendor=American Megatrends International,, LLC." in smbios[0]


def test_cpus_memory_and_acceleration(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    argv = args_for(hw, tmp_path)
    assert values(argv, "-smp") == [
        f"{hw.cpus},sockets={hw.sockets},cores={hw.cores_per_socket},threads={hw.threads_per_core}"
    ]
    assert values(argv, "-m") == [f"{sum(hw.dimm_sizes_mib)}M"]
    assert values(argv, "-accel") == ["tcg"] and values(argv, "-cpu") == ["max"]
    assert values(argv, "-machine") == ["q35"]


def test_every_disk_has_its_serial_and_size(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    argv = args_for(hw, tmp_path)
    devices = values(argv, "-device")
    blockdevs = values(argv, "-blockdev")
    for index, disk in enumerate(hw.disks):
        assert (
            f"driver=null-co,node-name=disk{index},size={disk.size_bytes},read-zeroes=on"
            in blockdevs
        )
        (device,) = [d for d in devices if f"drive=disk{index}," in d]
        assert (
            device.split(",")[0] == {"nvme": "nvme", "sata": "ide-hd", "scsi": "scsi-hd"}[disk.bus]
        )
        assert f"serial={disk.serial}" in device
    assert any(d.startswith("virtio-scsi-pci,") for d in devices)


def test_each_pcie_endpoint_sits_on_its_own_root_port(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    devices = values(args_for(hw, tmp_path), "-device")
    ports = {d.split("id=")[1].split(",")[0] for d in devices if d.startswith("pcie-root-port")}
    used = {d.split("bus=")[1].split(",")[0] for d in devices if "bus=rp-" in d}
    assert used == ports
    addresses = [
        d.split("addr=")[1].split(",")[0] for d in devices if d.startswith("pcie-root-port")
    ]
    assert len(set(addresses)) == len(addresses)


def test_ssh_is_forwarded_on_localhost_only(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    netdevs = values(args_for(hw, tmp_path, ssh_port=40123), "-netdev")
    assert netdevs[0] == "user,id=net0,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:40123-:22"
    assert all("hostfwd" not in n for n in netdevs[1:])
    # one subnet per NIC, or the guest answers NIC 1's SSH through NIC 2
    subnets = [n.split("net=")[1].split(",")[0] for n in netdevs]
    assert len(set(subnets)) == len(subnets)
    assert len(netdevs) == len(hw.nics)


def test_isolated_nics_get_an_empty_hub(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    netdevs = values(args_for(hw, tmp_path, isolated_nics=frozenset({1})), "-netdev")
    assert netdevs[1] == "hubport,id=net1,hubid=1"
    assert netdevs[0].startswith("user,")
    everything = frozenset(range(len(hw.nics)))
    netdevs = values(args_for(hw, tmp_path, ssh_port=None, isolated_nics=everything), "-netdev")
    assert all(n.startswith("hubport,") for n in netdevs)


def test_bmc_and_kernel_arguments(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    argv = args_for(hw, tmp_path)
    devices = values(argv, "-device")
    bmc = f"ipmi-bmc-sim,id=bmc0,frudatafile={tmp_path / 'fru.bin'},fruareasize=1024,"
    # [bmc] of hardware.toml: what `ipmitool mc info` reports (firmware 1.74 = 1, BCD 0x74).
    identity = "device_id=32,device_rev=1,fwrev1=1,fwrev2=116,mfg_id=10876,product_id=6929"
    assert bmc + f"sdrfile={tmp_path / 'sdr.bin'},{identity}" in devices
    assert "isa-ipmi-kcs,bmc=bmc0" in devices
    (append,) = values(argv, "-append")
    assert append == (
        "boot=live components hostname=bee console=ttyS0,115200n8 systemd.show_status=1 "
        "systemd.mask=serial-getty@ttyS0.service"
    )
    assert values(argv, "-serial") == [f"file:{tmp_path / 'serial.log'}"]


LIVE_CFG = """\
label live-amd64
\tmenu label ^Live system (amd64)
\tmenu default
\tlinux /live/vmlinuz-6.1.0-56-amd64
\tinitrd /live/initrd.img-6.1.0-56-amd64
\tappend boot=live components quiet splash

label live-amd64-failsafe
\tmenu label ^Live system (amd64 fail-safe mode)
\tlinux /live/vmlinuz-6.1.0-56-amd64
\tinitrd /live/initrd.img-6.1.0-56-amd64
\tappend boot=live components memtest noapic noapm nodma nomce nosmp nosplash vga=788
"""


def test_isolinux_menu_first_entry() -> None:
    assert qemu.parse_isolinux_append(LIVE_CFG) == (
        "/live/vmlinuz-6.1.0-56-amd64",
        "/live/initrd.img-6.1.0-56-amd64",
        "boot=live components quiet splash",
    )


def test_isolinux_menu_old_form_and_garbage() -> None:
    old = "label live\n  kernel /live/vmlinuz\n  append initrd=/live/initrd.img boot=live\n"
    assert qemu.parse_isolinux_append(old) == ("/live/vmlinuz", "/live/initrd.img", "boot=live")
    assert qemu.parse_isolinux_append("") is None
    assert qemu.parse_isolinux_append("append boot=live\nlinux /x\n") is None


@pytest.mark.skipif(shutil.which(qemu.QEMU) is None, reason=f"{qemu.QEMU} not installed")
def test_qemu_accepts_the_machine(tmp_path: Path) -> None:
    """QEMU realises every device of the command line (then quits before running any code)."""
    hw = qemu.load_hardware()
    fru_path, sdr_path = fru.write_images(list(hw.fru_devices), tmp_path)
    (tmp_path / "bee.iso").write_bytes(bytes(2048))
    argv = args_for(hw, tmp_path, ssh_port=qemu.free_port())
    cut = argv.index("-kernel")  # no kernel here: -S stops before any code would run
    argv = [*argv[:cut], "-S", "-monitor", "stdio"]
    result = subprocess.run(
        argv, input="quit\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert fru_path.exists() and sdr_path.exists()


def test_netboot_boots_the_first_nic_with_no_bee_disk_or_cd(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    netboot = qemu.Netboot(
        tftp_dir=tmp_path / "tftp",
        bootfile="boot.ipxe",
        guestfwd="guestfwd=tcp:10.0.2.100:80-cmd:python3 serve.py bridge 8000",
    )
    argv = args_for(hw, tmp_path, netboot=netboot)
    assert "-kernel" not in argv and "-initrd" not in argv
    assert not [d for d in values(argv, "-drive") if "media=cdrom" in d]
    first = values(argv, "-netdev")[0]
    assert f"tftp={tmp_path / 'tftp'},bootfile=boot.ipxe,guestfwd=tcp:10.0.2.100:80-cmd:" in first
    assert "restrict=on" in first and "hostfwd=tcp:127.0.0.1:2222-:22" in first
    nics = [d for d in values(argv, "-device") if "netdev=net" in d]
    assert nics[0].endswith(",bootindex=0") and "bootindex" not in nics[1]


@pytest.mark.parametrize("firmware", ["ovmf", "ovmf-secboot"])
def test_ovmf_through_the_iso_s_bootloader(tmp_path: Path, firmware: str) -> None:
    hw = qemu.load_hardware()
    vars_copy = tmp_path / "vars.fd"
    argv = args_for(hw, tmp_path, firmware=firmware, vars_copy=vars_copy, via_bootloader=True)
    assert "-kernel" not in argv
    drives = values(argv, "-drive")
    code, _vars = qemu.OVMF[firmware]
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in drives
    assert f"if=pflash,format=raw,unit=1,file={vars_copy}" in drives
    assert "ide-cd,drive=live,bus=ide.5,bootindex=0" in values(argv, "-device")
    secure = "driver=cfi.pflash01,property=secure,value=on" in values(argv, "-global")
    assert secure == (firmware == "ovmf-secboot")
    assert values(argv, "-machine") == ["q35,smm=on" if secure else "q35"]


def test_seabios_keeps_the_kernel_handed_over_unless_asked(tmp_path: Path) -> None:
    hw = qemu.load_hardware()
    assert "-kernel" in args_for(hw, tmp_path)
    argv = args_for(hw, tmp_path, via_bootloader=True)
    assert "-kernel" not in argv and not values(argv, "-global")
    with pytest.raises(qemu.HardwareError, match="unknown firmware"):
        args_for(hw, tmp_path, firmware="coreboot", vars_copy=tmp_path / "v")
