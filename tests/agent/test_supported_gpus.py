"""The NVIDIA module flavour per machine, from the driver's own supported-gpus.json.

The list is the real one Debian trixie ships in nvidia-driver 550.163.01-2 (fixtures/README.md);
the GPUs are read from real nvidia-smi outputs: the project's H200 capture and the GPUs in
../shared/realworld/nvidia-smi-xml/ (skipped when absent). Each GPU's expected flavour comes from
its architecture as nvidia-smi itself reports it (Volta and Pascal need the proprietary modules,
Turing and newer take the open ones), an independent source from the list the choice reads.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.probe import Probe
from bee.tools import nvidia_smi, supported_gpus
from bee.tools.supported_gpus import BusGpu, choose, findings, parse
from conftest import FIXTURES, REALWORLD, assert_section_valid, mangle, run_bee, write_capture

LIST_GZ = FIXTURES / "supported-gpus" / "debian-trixie-nvidia-driver-550.163.01.json.gz"
H200_XML = FIXTURES / "nvidia-smi" / "h200-firecracker-580.xml"
H200_PROC_VERSION = FIXTURES / "nvidia-smi" / "h200-firecracker-580.proc-version"
# bee-nvidia's record in a QEMU guest under Secure Boot, the image's key not enrolled.
SECBOOT_RECORD = FIXTURES / "nvidia-load" / "qemu-secboot-not-enrolled.txt"
REALWORLD_XML = sorted((REALWORLD / "nvidia-smi-xml").glob("*.xml"))
OPEN_ARCHITECTURES = {"Turing", "Ampere", "Ada Lovelace", "Hopper", "Blackwell"}
PROPRIETARY_ARCHITECTURES = {"Maxwell", "Pascal", "Volta"}
# Outputs whose XML (older DTDs) names no architecture: from the product's documented chip.
ARCHITECTURE_BY_NAME = {"Tesla V100": "Volta", "Tesla V100S": "Volta"}
ARCHITECTURE_BY_FILE = {"influxdata_telegraf__gtx-1660-ti.xml": "Turing"}  # 10de:2184 is TU116
VERSION = "550.163.01"


def list_text() -> str:
    return gzip.decompress(LIST_GZ.read_bytes()).decode("utf-8")


@pytest.fixture(scope="module")
def table():
    return parse(list_text())


def gpus_from_xml(path: Path) -> list[BusGpu]:
    """The GPUs of one nvidia-smi -q -x output as the PCI bus would show them."""
    found = []
    for gpu in nvidia_smi.parse(path.read_text(encoding="utf-8", errors="replace")).gpus:
        # <pci_device_id>233510DE</...> -> 2335; <pci_sub_system_id>18BE10DE</...>: device, vendor
        if not gpu.pci_device_id or gpu.pci_device_id == "0000":
            continue  # redacted in the published output (A10G, RTX 3090)
        sub = gpu.pci_subsystem_id or ""
        ok = len(sub) == 8 and all(c in "0123456789abcdef" for c in sub)
        found.append(
            BusGpu(
                pci_address=gpu.pci_address or f"0000:{gpu.index + 1:02x}:00.0",
                device_id=gpu.pci_device_id,
                subsystem_vendor_id=sub[4:] if ok else None,
                subsystem_device_id=sub[:4] if ok else None,
            )
        )
    return found


def architecture(path: Path) -> str | None:
    section = nvidia_smi.parse(path.read_text(encoding="utf-8", errors="replace"))
    gpu = section.gpus[0]
    if gpu.architecture:
        return gpu.architecture
    if path.name in ARCHITECTURE_BY_FILE:
        return ARCHITECTURE_BY_FILE[path.name]
    return next(
        (a for n, a in ARCHITECTURE_BY_NAME.items() if (gpu.name or "").startswith(n)), None
    )


def gpu(address: str, device: str, sub: tuple[str, str] | None = None) -> BusGpu:
    return BusGpu(
        pci_address=address,
        device_id=device,
        subsystem_vendor_id=sub[0] if sub else None,
        subsystem_device_id=sub[1] if sub else None,
    )


# -- the list -------------------------------------------------------------------------------


def test_the_driver_list_is_read_in_full(table):
    raw = json.loads(list_text())["chips"]
    assert table.count == len(raw) == 2224
    assert table.errors == []
    entries = [chip for chips in table.chips.values() for chip in chips]
    assert sum(chip.open_supported for chip in entries) == 736
    assert sum(chip.legacy_branch is not None for chip in entries) == sum(
        "legacybranch" in entry for entry in raw
    )


def test_h200_is_listed_only_per_board_and_still_found_for_another_board(table):
    [h200] = gpus_from_xml(H200_XML)
    assert (h200.device_id, h200.subsystem_vendor_id, h200.subsystem_device_id) == (
        "2335",
        "10de",
        "18bf",
    )
    assert supported_gpus.lookup(table, h200).name == "NVIDIA H200"
    other_board = gpu("0000:01:00.0", "2335", ("1028", "0001"))
    assert supported_gpus.lookup(table, other_board).name == "NVIDIA H200"


def test_the_project_h200_capture_takes_the_open_modules(table):
    choice = choose(gpus_from_xml(H200_XML), table)
    assert choice.flavour == "open"
    assert "kernelopen" in choice.reason
    [support] = choice.gpus
    assert support.pci_id == "10de:2335" and support.pci_subsystem_id == "10de:18bf"
    assert support.listed and support.open_supported


@pytest.mark.skipif(not REALWORLD_XML, reason="../shared/realworld/nvidia-smi-xml is absent")
@pytest.mark.parametrize("path", REALWORLD_XML, ids=lambda p: p.name)
def test_realworld_gpus_get_the_flavour_of_their_architecture(table, path):
    gpus = gpus_from_xml(path)
    if not gpus:
        pytest.skip("the published output redacts the PCI device id")
    arch = architecture(path)
    assert arch in OPEN_ARCHITECTURES | PROPRIETARY_ARCHITECTURES, f"unknown architecture {arch}"
    choice = choose(gpus, table)
    if not all(g.listed for g in choice.gpus):
        # The driver's list is incomplete (Tesla T4 10de:1eb8 is missing at 550.163.01): such
        # a GPU is not known to work with the open modules, so proprietary, and the reason says.
        assert choice.flavour == "proprietary", choice.reason
        assert "not in the driver's supported-gpus.json" in choice.reason
        return
    assert choice.flavour == ("open" if arch in OPEN_ARCHITECTURES else "proprietary"), (
        arch,
        choice.reason,
    )


def test_tesla_t4_is_missing_from_the_550_list(table):
    """Recorded because it shapes the rule: the list is not all the driver serves."""
    assert supported_gpus.lookup(table, gpu("0000:00:1e.0", "1eb8")) is None


def test_every_realworld_gpu_together_needs_proprietary(table):
    """One invented machine holding every real GPU above: the Volta and Pascal cards decide."""
    gpus = []
    for number, path in enumerate(REALWORLD_XML):
        for one in gpus_from_xml(path)[:1]:
            gpus.append(gpu(f"0000:{number + 1:02x}:00.0", one.device_id))
    if not gpus:
        pytest.skip("../shared/realworld/nvidia-smi-xml is absent")
    choice = choose(gpus, table)
    assert choice.flavour == "proprietary"
    assert "10de:1db6" in choice.reason and "lack kernelopen" in choice.reason


# -- invented machines ----------------------------------------------------------------------

V100 = "1db4"  # Tesla V100-PCIE-16GB: no kernelopen
A100 = "20b0"  # A100-SXM4-40GB: kernelopen
H100 = "2330"
B200 = "2901"  # Blackwell: not in 550's list at all
GTX_680 = "1180"  # Kepler: legacybranch 470.xx


def test_mixed_machine_takes_the_flavour_serving_every_gpu_and_names_the_rest(table):
    machine = [
        gpu("0000:18:00.0", A100),
        gpu("0000:3b:00.0", V100),
        gpu("0000:86:00.0", B200),
        gpu("0000:af:00.0", H100, ("10de", "16c1")),
    ]
    choice = choose(machine, table)
    assert choice.flavour == "proprietary"
    assert "10de:1db4 at 0000:3b:00.0 (Tesla V100-PCIE-16GB) lack kernelopen" in choice.reason
    assert "10de:2901 at 0000:86:00.0 (unnamed) not in the driver's" in choice.reason
    assert "proprietary serves every GPU this driver supports" in choice.reason
    by_address = {g.pci_address: g for g in choice.gpus}
    assert not by_address["0000:86:00.0"].listed
    assert by_address["0000:af:00.0"].name == "NVIDIA H100 80GB HBM3"


def test_hopper_and_ampere_together_take_open(table):
    choice = choose([gpu("0000:18:00.0", A100), gpu("0000:19:00.0", H100)], table)
    assert choice.flavour == "open"


def test_open_is_wanted_but_only_proprietary_is_shipped(table):
    choice = choose([gpu("0000:18:00.0", H100)], table, shipped=("proprietary",))
    assert choice.flavour == "proprietary"
    assert "ships only proprietary" in choice.reason


def test_proprietary_is_needed_but_only_open_is_shipped(table):
    choice = choose([gpu("0000:18:00.0", V100)], table, shipped=("open",))
    assert choice.flavour is None
    assert "ships no proprietary modules" in choice.reason


def test_only_legacy_gpus_load_nothing(table):
    choice = choose([gpu("0000:19:00.0", GTX_680)], table)
    assert choice.flavour is None
    assert choice.reason.startswith("no GPU on the bus is served by this driver")
    assert "legacy driver branch serves 10de:1180" in choice.reason
    assert choose([], table).flavour is None


def test_an_unlisted_gpu_alone_is_tried_with_proprietary(table):
    """B200 at 550: not listed; the driver will refuse it, which the loader then records."""
    choice = choose([gpu("0000:86:00.0", B200)], table)
    assert choice.flavour == "proprietary"


def driver_section(table, machine, **overrides):
    choice = choose(machine, table)
    fields = {
        "driver_version": VERSION,
        "flavours_shipped": ["open", "proprietary"],
        "supported_gpus_listed": table.count,
        "flavour_chosen": choice.flavour,
        "reason": choice.reason,
        "flavour_loaded": choice.flavour,
        "loaded_version": VERSION,
        "loader_status": "loaded",
        "loader_message": None,
        "loader_cause": None,
        "module_signing": None,
        "gpus": choice.gpus,
        "errors": [],
    }
    fields.update(overrides)
    return supported_gpus.NvidiaDriverSection(**fields)


def test_an_unsupported_gpu_is_a_finding_naming_its_id_the_driver_and_the_remedy(table):
    machine = [gpu("0000:86:00.0", B200), gpu("0000:87:00.0", GTX_680), gpu("0000:18:00.0", A100)]
    section = driver_section(table, machine)
    taken = {"0000:18:00.0"}
    gpus = [dataclasses.replace(g, taken_by_driver=g.pci_address in taken) for g in section.gpus]
    found = findings({"nvidia_driver": dataclasses.replace(section, gpus=gpus)})
    assert [f.subject for f in found] == ["0000:86:00.0", "0000:87:00.0"]
    b200, kepler = found
    assert "10de:2901" in b200.message and "driver 550.163.01" in b200.message
    assert "not in the driver's supported-gpus.json and the driver did not take it" in b200.message
    assert "NVIDIA_SOURCE=run" in b200.message and "NVIDIA_RUN_SHA256" in b200.message
    assert "legacy 470.xx driver branch" in kepler.message
    assert all(f.severity == "warning" for f in found)
    # Not listed but taken (Tesla T4 under 550): no finding.
    t4 = choose([gpu("0000:00:1e.0", "1eb8")], table).gpus
    t4 = [dataclasses.replace(g, taken_by_driver=True) for g in t4]
    assert findings({"nvidia_driver": dataclasses.replace(section, gpus=t4)}) == []


def failed_section(table, message, **overrides):
    return driver_section(
        table,
        [gpu("0000:18:00.0", H100)],
        flavour_loaded=None,
        loader_status="failed",
        loader_message=message,
        **overrides,
    )


def test_a_failed_load_is_a_critical_finding_with_the_loader_message(table):
    message = "nvidia: insmod: Key was rejected by service (Secure Boot rejected ...)"
    section = failed_section(table, message)
    [finding] = findings({"nvidia_driver": section})
    assert finding.severity == "critical" and message in finding.message
    assert "open NVIDIA modules" in finding.message


SIGNING = supported_gpus.ModuleSigning(
    origin="per-build",
    subject="CN=bee module signing (per-build 2026-12-01T13:00:00Z),O=bee",
    serial="3C:61:7B:0F",
    cert_sha256="83d12459" + "0" * 56,
    cert_path=supported_gpus.SIGNING_CERT,
)


def test_secure_boot_refusal_says_which_key_and_how_to_enrol_it(table):
    # bee-nvidia's record under Secure Boot with the key not enrolled (Debian: lockdown EPERM).
    message = (
        "nvidia: insmod /usr/local/lib/nvidia/open/nvidia.ko: insmod: ERROR: could not insert "
        "module /usr/local/lib/nvidia/open/nvidia.ko: Operation not permitted (Secure Boot "
        "refused it (lockdown integrity): signed by 'bee module signing', a key this machine "
        "does not trust)"
    )
    section = failed_section(table, message, loader_cause="secure-boot", module_signing=SIGNING)
    [finding] = findings({"nvidia_driver": section})
    assert finding.severity == "critical"
    assert finding.message.startswith("Secure Boot refused the open NVIDIA modules")
    assert message in finding.message
    assert SIGNING.cert_sha256 in finding.message and "per-build key" in finding.message
    assert "mokutil --import /usr/local/lib/nvidia/module-signing.der" in finding.message
    assert "MokManager" in finding.message and "docs/secure-boot.md" in finding.message
    # An older loader's record, without a cause: the kernel's words are enough.
    older = dataclasses.replace(section, loader_cause=None, module_signing=None)
    [finding] = findings({"nvidia_driver": older})
    assert (
        finding.message.startswith("Secure Boot refused") and "mokutil --import" in finding.message
    )


def test_a_failure_that_is_not_the_signature_gets_no_secure_boot_advice(table):
    message = "nvidia: insmod: No such device (the driver found no GPU it supports)"
    section = failed_section(table, message, module_signing=SIGNING)
    [finding] = findings({"nvidia_driver": section})
    assert "mokutil" not in finding.message and "Secure Boot" not in finding.message


def test_the_other_flavour_loaded_is_a_finding(table):
    section = driver_section(table, [gpu("0000:18:00.0", H100)], flavour_loaded="proprietary")
    [finding] = findings({"nvidia_driver": section})
    assert "proprietary NVIDIA modules are loaded" in finding.message
    assert findings({"nvidia_driver": None}) == []


# -- reading the machine --------------------------------------------------------------------


def manifest(flavour: str) -> str:
    return json.dumps({"version": VERSION, "flavour": flavour, "modules": ["nvidia.ko"]})


def machine_capture(
    root: Path, devices: dict[str, tuple[str, str, str, str, str]], dirs=None, **files
):
    """A capture of /sys/bus/pci/devices: address -> (vendor, device, class, subvendor, subdev)."""
    fs = {
        f"{supported_gpus.NVIDIA_DIR}/open/manifest.json": manifest("open"),
        f"{supported_gpus.NVIDIA_DIR}/proprietary/manifest.json": manifest("proprietary"),
        supported_gpus.SUPPORTED_GPUS: list_text(),
    }
    for address, (vendor, device, klass, subvendor, subdevice) in devices.items():
        base = f"{supported_gpus.PCI_DEVICES}/{address}"
        fs.update(
            {
                f"{base}/vendor": f"0x{vendor}\n",
                f"{base}/device": f"0x{device}\n",
                f"{base}/class": f"0x{klass}\n",
                f"{base}/subsystem_vendor": f"0x{subvendor}\n",
                f"{base}/subsystem_device": f"0x{subdevice}\n",
            }
        )
    fs.update(files)
    return write_capture(
        root, [], fs, {supported_gpus.PCI_DEVICES: sorted(devices), **(dirs or {})}
    )


H200_HOST = {
    "0000:00:00.0": ("8086", "0d57", "060000", "8086", "0000"),
    "0000:00:06.0": ("10de", "2335", "030200", "10de", "18bf"),  # the H200 capture's GPU
    "0000:00:07.0": ("10de", "22a3", "068000", "10de", "0000"),  # NVSwitch: a bridge, not a GPU
}


def test_collect_reads_the_bus_the_list_and_what_was_loaded(tmp_path):
    capture = machine_capture(
        tmp_path / "cap",
        H200_HOST,
        **{
            supported_gpus.PROC_VERSION: H200_PROC_VERSION.read_text(),
            supported_gpus.LOADER_RECORD: "status=loaded\nflavour=open\nmessage=\n",
        },
        dirs={supported_gpus.PROC_GPUS: ["0000:00:06.0"]},
    )
    probe = Probe(ReplayRunner(capture), "nvidia_driver")
    section = supported_gpus.collect(probe)
    assert section.flavours_shipped == ["open", "proprietary"]
    assert section.flavour_chosen == "open" and section.flavour_loaded == "open"
    assert section.loaded_version == "580.159.04"
    assert section.supported_gpus_listed == 2224
    assert [g.pci_address for g in section.gpus] == ["0000:00:06.0"]
    assert section.gpus[0].taken_by_driver is True
    assert section.loader_status == "loaded"
    assert findings({"nvidia_driver": section}) == []
    assert_section_valid("nvidia_driver", section)


def test_collect_reads_the_signing_record_and_the_loaders_cause(tmp_path):
    signed = json.dumps(
        {
            "version": VERSION,
            "flavour": "open",
            "modules": ["nvidia.ko"],
            "signing": {
                "origin": "operator",
                "subject": "CN=Example bee module signing,O=Example",
                "serial": "3C:61",
                "cert_sha256": "ab" * 32,
            },
        }
    )
    capture = machine_capture(
        tmp_path / "cap",
        H200_HOST,
        **{
            f"{supported_gpus.NVIDIA_DIR}/open/manifest.json": signed,
            supported_gpus.LOADER_RECORD: (
                "status=failed\nflavour=open\nreason=r\nmessage=nvidia: insmod: Key was "
                "rejected by service (Secure Boot refused it)\ncause=secure-boot\n"
            ),
        },
        dirs={supported_gpus.NVIDIA_DIR: ["module-signing.der", "open", "proprietary"]},
    )
    section = supported_gpus.collect(Probe(ReplayRunner(capture), "nvidia_driver"))
    assert section.loader_cause == "secure-boot"
    assert section.module_signing == supported_gpus.ModuleSigning(
        origin="operator",
        subject="CN=Example bee module signing,O=Example",
        serial="3C:61",
        cert_sha256="ab" * 32,
        cert_path=supported_gpus.SIGNING_CERT,
    )
    assert_section_valid("nvidia_driver", section)
    [finding] = findings({"nvidia_driver": section})
    assert "operator key CN=Example bee module signing" in finding.message


def test_the_real_secure_boot_refusal_is_a_finding_with_the_remedy(tmp_path):
    """The record bee-nvidia wrote in the vm_test --secure-boot-modules guest (Debian's
    6.12 kernel: "Key was rejected by service"), on a machine with a GPU."""
    capture = machine_capture(
        tmp_path / "cap",
        H200_HOST,
        **{supported_gpus.LOADER_RECORD: SECBOOT_RECORD.read_text()},
        dirs={supported_gpus.NVIDIA_DIR: ["module-signing.der", "open", "proprietary"]},
    )
    section = supported_gpus.collect(Probe(ReplayRunner(capture), "nvidia_driver"))
    assert (section.loader_status, section.loader_cause) == ("failed", "secure-boot")
    assert "Key was rejected by service" in section.loader_message
    [finding] = findings({"nvidia_driver": section})
    assert finding.severity == "critical"
    assert finding.message.startswith("Secure Boot refused the open NVIDIA modules")
    assert "mokutil --import /usr/local/lib/nvidia/module-signing.der" in finding.message
    # Forced by bee.nvidia= on a machine without a GPU (the guest itself): no flavour chosen.
    forced = dataclasses.replace(section, flavour_chosen=None)
    [finding] = findings({"nvidia_driver": forced})
    assert finding.message.startswith("Secure Boot refused the NVIDIA modules")


def test_collect_without_shipped_modules_is_empty(tmp_path):
    capture = write_capture(tmp_path / "cap", [], {}, {})
    probe = Probe(ReplayRunner(capture), "nvidia_driver")
    assert supported_gpus.collect(probe) is None
    assert probe.notes and probe.errors == []


def test_the_cli_prints_the_flavour_bee_nvidia_loads(tmp_path):
    h200 = machine_capture(tmp_path / "h200", H200_HOST)
    result = run_bee("nvidia-flavour", "--replay", str(h200))
    assert (result.returncode, result.stdout) == (0, "open\n")
    assert "kernelopen" in result.stderr
    kepler = {"0000:86:00.0": ("10de", GTX_680, "030000", "10de", "0969")}
    result = run_bee("nvidia-flavour", "--replay", str(machine_capture(tmp_path / "k", kepler)))
    assert (result.returncode, result.stdout) == (1, "none\n")
    assert "10de:1180" in result.stderr
    result = run_bee("nvidia-flavour", "--replay", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_loaded_flavour_reads_both_spellings():
    assert supported_gpus.loaded_flavour(H200_PROC_VERSION.read_text()) == ("open", "580.159.04")
    proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.163.01  Mon Apr  7 2025\n"
    assert supported_gpus.loaded_flavour(proprietary) == ("proprietary", "550.163.01")
    assert supported_gpus.loaded_flavour("") == (None, None)
    assert supported_gpus.loaded_flavour("garbage") == (None, None)


# -- never raises ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.text())
def test_parse_never_raises(text):
    parse(text)


@settings(max_examples=30)
@given(st.data())
def test_parse_never_raises_on_a_damaged_real_list(data):
    parse(mangle(data, json.dumps(json.loads(list_text()), indent=1)))


@settings(max_examples=200)
@given(st.text())
def test_loader_parsers_never_raise(text):
    supported_gpus.loaded_flavour(text)
    supported_gpus.parse_loader_record(text)
