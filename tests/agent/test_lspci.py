"""lspci -vmm in its three ID forms, -vm, five-digit domains; sysfs links; the width finding."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.findings import Finding
from bee.serialize import to_jsonable
from bee.tools import ipmitool, lspci
from bee.tools.lspci import normalize_address, parse, split_name_id
from conftest import (
    FIXTURES,
    REALWORLD,
    assert_section_valid,
    mangle,
    probe_over,
    write_capture,
)

FIXTURE_FILES = sorted(p for p in (FIXTURES / "lspci").glob("*.txt") if ".expected." not in p.name)
REALWORLD_FILES = sorted((REALWORLD / "lspci-vmm").glob("*.txt"))
H200 = FIXTURES / "lspci" / "h200-firecracker-vmm-nn-D.txt"
LSPCI_ARGV = ["lspci", "-vmm", "-nn", "-D"]


def by_address(text: str) -> dict[str, lspci.PciDevice]:
    return {d.address: d for d in parse(text).devices}


# -- parser ---------------------------------------------------------------------------------


def test_the_three_id_forms_agree_on_what_each_can_say():
    names = by_address((FIXTURES / "lspci" / "firecracker-vmm-D.txt").read_text())
    numeric = by_address((FIXTURES / "lspci" / "firecracker-vmm-n-D.txt").read_text())
    both = by_address((FIXTURES / "lspci" / "firecracker-vmm-nn-D.txt").read_text())
    assert list(names) == list(numeric) == list(both)
    for address, device in both.items():
        assert device.vendor == names[address].vendor
        assert device.device == names[address].device
        assert (device.vendor_id, device.device_id) == (
            numeric[address].vendor_id,
            numeric[address].device_id,
        )
        assert device.class_id == numeric[address].class_id
    net = both["0000:00:03.0"]
    assert (net.class_id, net.class_name) == ("0200", "Ethernet controller")
    assert (net.vendor_id, net.vendor) == ("1af4", "Red Hat, Inc.")
    assert (net.device_id, net.device) == ("1041", "Virtio 1.0 network device")
    assert (net.subsystem_vendor_id, net.subsystem_id, net.revision) == ("1af4", "1041", "01")
    # A device lspci has no name for: "Device [0d57]" (-nn) and "Device 0d57" (plain).
    host = both["0000:00:00.0"]
    assert (host.device, host.device_id) == (None, "0d57")
    assert names["0000:00:00.0"].device is None and names["0000:00:00.0"].device_id == "0d57"


def test_h200_gpu_in_a_firecracker_vm():
    gpu = by_address(H200.read_text())["0000:00:06.0"]
    assert (gpu.class_id, gpu.vendor_id, gpu.device_id) == ("0302", "10de", "2335")
    assert (gpu.subsystem_vendor_id, gpu.subsystem_id, gpu.revision) == ("10de", "18bf", "a1")


def test_five_digit_vmd_domain_and_extra_tags():
    devices = by_address((FIXTURES / "lspci" / "handwritten-vmd-5-digit-domain.txt").read_text())
    nvme = devices["10000:e1:00.0"]
    assert nvme.class_id == "0108" and nvme.physical_slot == "5"
    assert (nvme.driver, nvme.kernel_modules, nvme.numa_node, nvme.iommu_group) == (
        "nvme",
        ["nvme"],
        1,
        30,
    )
    assert nvme.extra == {"FutureTag": "something new"}
    assert "10000:e0:06.0" in devices


def test_single_m_repeats_device_first_as_the_address():
    devices = parse((FIXTURES / "lspci" / "handwritten-vm-repeated-device-tag.txt").read_text())
    gpu = devices.devices[1]
    assert gpu.address == "0000:01:00.0"
    assert (gpu.device, gpu.device_id) == ("GH100 [H100 SXM5 80GB]", "2330")
    assert gpu.kernel_modules == ["nvidiafb", "nouveau", "nvidia_drm", "nvidia"]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0000:3b:00.0", "0000:3b:00.0"),
        ("00:1F.3", "0000:00:1f.3"),
        ("10001:80:05.0", "10001:80:05.0"),
        ("3b:00.8", None),
        ("junk", None),
    ],
)
def test_addresses(text, address):
    assert normalize_address(text) == address


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Intel Corporation [8086]", ("Intel Corporation", "8086")),
        ("8086", (None, "8086")),
        ("Intel Corporation", ("Intel Corporation", None)),
        ("Device [2335]", (None, "2335")),
        ("Device 2335", (None, "2335")),
        ("Unassigned class [ffff]", ("Unassigned class", "ffff")),
        ("", (None, None)),
    ],
)
def test_name_and_id(value, expected):
    assert split_name_id(value) == expected


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixtures_match_the_schema(path):
    assert_section_valid("pcie", parse(path.read_text()))


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    assert_section_valid("pcie", parse(text))


@settings(
    max_examples=30, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_never_raises_on_real_fixtures_with_lines_dropped_duplicated_or_cut(path, data):
    text = mangle(data, path.read_text())
    assert_section_valid("pcie", parse(text))


# -- collector: lspci plus sysfs, through a replay -------------------------------------------

# Transcribed from the H200 capture (dist/gpu-capture/h200-firecracker, fixtures/README.md).
H200_GPU_SYSFS = {
    "vendor": "0x10de\n",
    "device": "0x2335\n",
    "class": "0x030200\n",
    "revision": "0xa1\n",
    "subsystem_vendor": "0x10de\n",
    "subsystem_device": "0x18bf\n",
    "numa_node": "-1\n",
    "current_link_speed": "32.0 GT/s PCIe\n",
    "current_link_width": "16\n",
    "max_link_speed": "32.0 GT/s PCIe\n",
    "max_link_width": "16\n",
}
SYSFS = "/sys/bus/pci/devices"


def h200_capture(tmp_path, *, lspci_present=True):
    addresses = ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:03.0"]
    addresses += ["0000:00:04.0", "0000:00:05.0", "0000:00:06.0"]
    files = {f"{SYSFS}/0000:00:06.0/{name}": text for name, text in H200_GPU_SYSFS.items()}
    files[f"{SYSFS}/0000:00:03.0/vendor"] = "0x1af4\n"
    files[f"{SYSFS}/0000:00:03.0/device"] = "0x1041\n"
    files[f"{SYSFS}/0000:00:03.0/class"] = "0x020000\n"
    links = {
        f"{SYSFS}/0000:00:06.0/driver": "../../../bus/pci/drivers/nvidia",
        f"{SYSFS}/0000:00:03.0/driver": "../../../bus/pci/drivers/virtio-pci",
    }
    commands = [(LSPCI_ARGV, 0, H200.read_text(), "")] if lspci_present else []
    return write_capture(tmp_path, commands, files=files, dirs={SYSFS: addresses}, links=links)


def test_collector_adds_driver_numa_and_link_from_sysfs(tmp_path):
    probe, recorder = probe_over(h200_capture(tmp_path), "pcie")
    pcie = lspci.collect(probe)
    assert pcie.source == "lspci+sysfs" and pcie.device_count == 7
    gpu = {d.address: d for d in pcie.devices}["0000:00:06.0"]
    assert gpu.driver == "nvidia" and gpu.numa_node is None and gpu.iommu_group is None
    assert (gpu.current_link_speed_gts, gpu.current_link_width) == (32.0, 16)
    assert (gpu.max_link_speed_gts, gpu.max_link_width) == (32.0, 16)
    assert gpu.current_link_speed_raw == "32.0 GT/s PCIe"
    assert probe.errors == []
    assert [r.argv for r in recorder.results] == [tuple(LSPCI_ARGV)]
    assert_section_valid("pcie", pcie)
    assert lspci.findings({"pcie": pcie}) == []


def test_without_lspci_sysfs_still_lists_the_functions_by_id(tmp_path):
    probe, _ = probe_over(h200_capture(tmp_path, lspci_present=False), "pcie")
    pcie = lspci.collect(probe)
    assert pcie.source == "sysfs" and pcie.device_count == 7
    devices = {d.address: d for d in pcie.devices}
    gpu, net = devices["0000:00:06.0"], devices["0000:00:03.0"]
    assert (gpu.vendor_id, gpu.device_id, gpu.class_id, gpu.prog_if) == (
        "10de",
        "2335",
        "0302",
        "00",
    )
    assert (gpu.subsystem_id, gpu.revision, gpu.vendor) == ("18bf", "a1", None)
    assert (net.class_id, net.driver) == ("0200", "virtio-pci")
    assert probe.notes == ["lspci is not installed"]
    assert_section_valid("pcie", pcie)


def test_neither_lspci_nor_sysfs_is_null(tmp_path):
    probe, _ = probe_over(write_capture(tmp_path, []), "pcie")
    assert lspci.collect(probe) is None


# -- findings -------------------------------------------------------------------------------


def with_link(address, class_id, current, maximum, speed="8.0 GT/s PCIe"):
    device = parse(f"Slot:\t{address}\nClass:\tX [{class_id}]\nVendor:\tV [10de]\n").devices[0]
    from dataclasses import replace

    return replace(
        device,
        current_link_width=current,
        max_link_width=maximum,
        current_link_speed_raw=speed,
    )


def test_width_below_maximum_is_a_warning_speed_alone_is_not():
    narrow = with_link("0000:17:00.0", "0302", 8, 16)
    slow_but_wide = with_link("0000:18:00.0", "0302", 16, 16, "2.5 GT/s PCIe")
    bridge = with_link("0000:16:00.0", "0604", 4, 16)
    link_down = with_link("0000:19:00.0", "0200", 0, 8)
    pcie = lspci.Pcie(
        devices=[narrow, slow_but_wide, bridge, link_down], device_count=4, source="x"
    )
    assert lspci.findings({"pcie": pcie}) == [
        Finding(
            source="pcie",
            severity="warning",
            subject="0000:17:00.0",
            message="PCIe link runs at x8 of x16 (8.0 GT/s PCIe): V",
        )
    ]
    # The audit may hand the section over as JSON (dicts) as well.
    assert lspci.findings({"pcie": to_jsonable(pcie)}) == lspci.findings({"pcie": pcie})
    assert lspci.findings({"pcie": None}) == [] and lspci.findings({}) == []


# -- real-world outputs ---------------------------------------------------------------------


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/lspci-vmm is not there")
@pytest.mark.parametrize("path", REALWORLD_FILES, ids=lambda p: p.stem)
def test_realworld_outputs_parse_and_match_the_schema(path):
    parsed = parse(path.read_bytes().decode("utf-8", errors="replace"))
    assert parsed.device_count > 0
    assert_section_valid("pcie", parsed)
    assert all(d.address.count(":") == 2 for d in parsed.devices)


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/lspci-vmm is not there")
def test_realworld_values_a_reader_sees():
    def load(stem):
        return by_address((REALWORLD / "lspci-vmm" / f"{stem}.txt").read_text())

    nn = load("kellyjonbrazil_jc__ubuntu-20.10-lspci-nnmmv")
    n = load("kellyjonbrazil_jc__ubuntu-20.10-lspci-nmmv")
    plain = load("kellyjonbrazil_jc__ubuntu-20.10-lspci-mmv")
    assert len(nn) == len(n) == len(plain) == 46
    scsi = nn["0000:00:10.0"]
    assert (scsi.vendor_id, scsi.vendor, scsi.device_id) == ("1000", "Broadcom / LSI", "0030")
    assert scsi.class_id == n["0000:00:10.0"].class_id == "0100"
    assert plain["0000:00:10.0"].device == scsi.device
    ohai = load("chef_ohai__lspci-vnnmk-thinkpad-partial")
    wifi = ohai["0000:04:00.0"]
    assert (wifi.vendor_id, wifi.device_id, wifi.driver) == ("8086", "24fd", "iwlwifi")


# -- the QEMU q35 guest of `nox -s vm_test` ---------------------------------------------------

QEMU_LSPCI = FIXTURES / "lspci" / "qemu-q35-vmm-nn-D.txt"
# Transcribed from the guest's /sys/bus/pci/devices (dist/guest-capture/qemu-q35, capture.sh):
# (class, vendor, device, current speed, current width, max speed, max width, driver)
QEMU_SYSFS = {
    "0000:00:10.2": ("0x060400", "0x1b36", "0x000c", "2.5", "1", "16.0", "32", "pcieport"),
    "0000:00:10.3": ("0x060400", "0x1b36", "0x000c", "2.5", "1", "16.0", "32", "pcieport"),
    "0000:01:00.0": ("0x010802", "0x1b36", "0x0010", "2.5", "1", "2.5", "1", "nvme"),
    "0000:03:00.0": ("0x020000", "0x8086", "0x10d3", "2.5", "1", "2.5", "1", "e1000e"),
    "0000:04:00.0": ("0x020000", "0x8086", "0x10d3", "2.5", "1", "2.5", "1", "e1000e"),
}


def qemu_sysfs() -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    files, links = {}, {}
    for address, values in QEMU_SYSFS.items():
        names = ("class", "vendor", "device", "current_link_speed", "current_link_width")
        names += ("max_link_speed", "max_link_width")
        for name, value in zip(names, values, strict=False):
            suffix = " GT/s PCIe" if name.endswith("speed") else ""
            files[f"{SYSFS}/{address}/{name}"] = f"{value}{suffix}\n"
        files[f"{SYSFS}/{address}/numa_node"] = "-1\n"
        links[f"{SYSFS}/{address}/driver"] = f"../../../../bus/pci/drivers/{values[-1]}"
    addresses = [d.address for d in parse(QEMU_LSPCI.read_text()).devices]
    return files, {SYSFS: addresses}, links


def test_qemu_guest_nics_links_and_no_false_width_finding(tmp_path):
    files, dirs, links = qemu_sysfs()
    capture = write_capture(
        tmp_path, [(LSPCI_ARGV, 0, QEMU_LSPCI.read_text(), "")], files, dirs, links
    )
    probe, _ = probe_over(capture, "pcie")
    pcie = lspci.collect(probe)
    nics = [d for d in pcie.devices if (d.vendor_id, d.device_id) == ("8086", "10d3")]
    assert [n.address for n in nics] == ["0000:03:00.0", "0000:04:00.0"]
    assert {(n.driver, n.current_link_speed_gts, n.current_link_width) for n in nics} == {
        ("e1000e", 2.5, 1)
    }
    assert nics[0].device == "82574L Gigabit Network Connection"
    # The root ports above them run x1 of x32: a port's own maximum, not a degraded link.
    port = {d.address: d for d in pcie.devices}["0000:00:10.2"]
    assert (port.current_link_width, port.max_link_width) == (1, 32)
    assert lspci.findings({"pcie": pcie}) == []
    assert_section_valid("pcie", pcie)


def test_qemu_guest_replay_passes_the_vm_test_checks_for_these_sections(
    tmp_path, validate_document
):
    """The whole audit over the guest's real outputs, judged by buildtools.vm.checks."""
    from bee.audit import run_audit
    from buildtools.vm import checks as vm_checks
    from buildtools.vm.qemu import load_hardware

    hw = load_hardware()
    if hw.system.get("serial") != "S411294X9C07713":
        pytest.skip("tests/vm/hardware.toml no longer describes the captured QEMU guest")
    dmi = {n: (FIXTURES / "dmidecode" / f"qemu-q35-{n}.txt").read_text() for n in ("t0123", "t4")}
    memory = (FIXTURES / "dmidecode" / "qemu-q35-t16-17.txt").read_text()
    fru = (FIXTURES / "ipmitool-fru" / "qemu-q35-bmc-sim.txt").read_text()
    files, dirs, links = qemu_sysfs()
    dirs["/dev"] = ["ipmi0", "null"]
    capture = write_capture(
        tmp_path,
        [
            (["dmidecode", "-t", "0,1,2,3"], 0, dmi["t0123"], ""),
            (["dmidecode", "-t", "4"], 0, dmi["t4"], ""),
            (["dmidecode", "-t", "16,17"], 0, memory, ""),
            (["dmidecode", "-t", "39"], 0, "# dmidecode 3.4\n", ""),
            (LSPCI_ARGV, 0, QEMU_LSPCI.read_text(), ""),
            (list(ipmitool.FRU_ARGV), 0, fru, ""),
        ],
        files,
        dirs,
        links,
    )
    document = run_audit(ReplayRunner(capture), deadline_s=30, mode="replay")
    validate_document(document)
    results = []
    for check in (vm_checks.check_board, vm_checks.check_cpu, vm_checks.check_memory):
        results += check(document, hw)
    results += vm_checks.check_pcie(document, hw) + vm_checks.check_psu(document, hw)
    # The captured output is plain `ipmitool fru`, which leaves out the Power Supply multirecord
    # (see test_ipmitool.test_qemu_bmc_sim_fru_devices): no capacity to check until the guest is
    # captured with `ipmitool -v fru print`, as the collector runs it.
    checked = [r for r in results if "capacity" not in r[0]]
    failed = [r for r in checked if not r[1]]
    assert not failed, failed
    assert len(checked) >= 14
