"""buildtools.vm.checks against real evidence from the QEMU guest that `nox -s vm_test` boots.

tests/vm/qemu-q35/ holds what came back from that guest (see its README): `ipmitool fru` and
`ip -j addr show` outputs, the serial console of a boot without DHCP, and a `bee audit --capture`
directory. The audit document is rebuilt here with the agent's own `--replay`, so these tests
prove that today's agent, on the emulated server, produces what the hardware description says.
Each check is also shown to fail when the evidence disagrees.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.registry import section_names
from buildtools.vm import checks as vm_checks
from buildtools.vm import phases, qemu, vm_test

EVIDENCE = Path(__file__).resolve().parents[2] / "vm" / "qemu-q35"


@pytest.fixture(scope="module")
def hw() -> qemu.Hardware:
    return qemu.load_hardware()


# Collectors added after tests/vm/qemu-q35/bee-capture was recorded: the capture holds nothing
# they read, so their sections are left out, as the bee that recorded it wrote none.
NEWER_THAN_CAPTURE = ("boot",)


def replayed() -> dict[str, Any]:
    doc = run_audit(ReplayRunner(EVIDENCE / "bee-capture"), mode="replay")
    return json.loads(json.dumps(doc))  # exactly what lands in the JSON file


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc = replayed()
    for name in NEWER_THAN_CAPTURE:
        assert doc["collectors"].pop(name)["status"] == "empty", f"{name} is in the capture now"
        doc.pop(name)
    # bmc and health run on it too (its /dev lists ipmi0) but find none of their commands in it;
    # they are checked below on documents made from the QEMU BMC fixtures.
    for name in vm_checks.SINCE_REGISTRY:
        doc["collectors"].pop(name)
        doc.pop(name)
    return doc


def failures(results: list[vm_checks.CheckResult]) -> list[vm_checks.CheckResult]:
    return [r for r in results if not r[1]]


# --- the audit --------------------------------------------------------------------------------


def test_the_replayed_audit_matches_the_hardware(document: dict, hw: qemu.Hardware) -> None:
    results = vm_checks.check_audit(document, hw)
    assert failures(results) == []
    names = {r[0] for r in results}
    assert {"system serial", "CPU sockets", "DIMM sizes (MiB)", "PCIe NICs"} <= names
    assert any(n.endswith("NVMe critical_warning") for n in names)
    assert any(n.startswith("PSU PS2") for n in names)
    assert len(results) >= 40


def test_every_registered_collector_is_checked(hw: qemu.Hardware) -> None:
    names = {r[0] for r in vm_checks.check_collectors(replayed(), hw)}
    for section in section_names():
        assert any(n.startswith(f"collector {section} ") for n in names), section
    assert set(vm_checks.MAY_BE_EMPTY) <= set(section_names())


def _changed(document: dict, path: tuple, value: object) -> dict:
    doc = copy.deepcopy(document)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "failing"),
    [
        (("board", "system", "serial"), "0123456789", "system serial"),
        (("board", "chassis", "type"), "Rack Mount Chassis", "chassis type"),
        (("cpu", "sockets", 1, "model"), "QEMU Virtual CPU", "CPU model"),
        (("memory", "slots", 1, "size_bytes"), 4 * 1024**3, "DIMM sizes (MiB)"),
        (("collectors", "psu", "status"), "failed", "collector psu status"),
    ],
)
def test_a_wrong_field_fails_its_check(
    document: dict, hw: qemu.Hardware, path: tuple, value: object, failing: str
) -> None:
    names = [r[0] for r in failures(vm_checks.check_audit(_changed(document, path, value), hw))]
    assert names == [failing]


def _disk(document: dict, serial: str) -> dict:
    return next(d for d in document["storage"]["disks"] if d.get("serial") == serial)


def test_a_missing_disk_and_a_wrong_size_fail(document: dict, hw: qemu.Hardware) -> None:
    nvme, sata = (d for d in hw.disks if d.bus in ("nvme", "sata"))
    doc = copy.deepcopy(document)
    doc["storage"]["disks"] = [d for d in doc["storage"]["disks"] if d.get("serial") != sata.serial]
    _disk(doc, nvme.serial)["size_bytes"] -= 512
    names = [r[0] for r in failures(vm_checks.check_audit(doc, hw))]
    assert names == [f"nvme disk {nvme.serial} size", f"sata disk {sata.serial}"]


def test_nvme_health_is_checked(document: dict, hw: qemu.Hardware) -> None:
    (nvme,) = (d for d in hw.disks if d.bus == "nvme")
    doc = copy.deepcopy(document)
    _disk(doc, nvme.serial)["nvme"]["health"]["critical_warning"] = 4
    names = [r[0] for r in failures(vm_checks.check_audit(doc, hw))]
    assert names == [f"nvme disk {nvme.serial} NVMe critical_warning"]
    _disk(doc, nvme.serial)["nvme"] = None
    names = [r[0] for r in failures(vm_checks.check_audit(doc, hw))]
    assert names == [f"nvme disk {nvme.serial} NVMe health section"]


def test_a_downtrained_nic_link_fails(document: dict, hw: qemu.Hardware) -> None:
    doc = copy.deepcopy(document)
    nic = next(d for d in doc["pcie"]["devices"] if d.get("device_id") == hw.nics[0].device_id)
    nic["current_link_width"] = 0
    names = [r[0] for r in failures(vm_checks.check_audit(doc, hw))]
    assert names == [f"NIC {nic['address']} current link"]


def test_psus_are_checked_by_serial_name_and_capacity(document: dict, hw: qemu.Hardware) -> None:
    doc = copy.deepcopy(document)
    doc["psu"]["power_supplies"][0]["capacity_w"] = None
    assert len(failures(vm_checks.check_audit(doc, hw))) == 1
    doc["psu"]["power_supplies"] = doc["psu"]["power_supplies"][:1]
    names = [r[0] for r in failures(vm_checks.check_audit(doc, hw))]
    assert "power supplies" in names


def test_collector_errors_fail_except_nvidia(document: dict, hw: qemu.Hardware) -> None:
    doc = copy.deepcopy(document)
    doc["errors"] = [{"collector": "nvidia", "message": "nvidia-smi failed"}]
    assert failures(vm_checks.check_audit(doc, hw)) == []
    doc["errors"].append({"collector": "storage", "message": "smartctl exit 2 on /dev/sda"})
    (failed,) = failures(vm_checks.check_audit(doc, hw))
    expected = "no collector errors except network, nvidia, nvidia_driver"
    assert failed[0] == expected and "smartctl" in failed[2]


def test_a_document_of_another_shape_fails_without_raising(hw: qemu.Hardware) -> None:
    results = vm_checks.check_audit({"board": [], "cpu": "x", "storage": {"disks": 3}}, hw)
    results += vm_checks.check_network({"network": [], "pcie": "x"}, hw)
    assert results and all(not r[1] for r in results if not r[0].startswith("no collector errors"))


# --- ipmitool fru, as the real ipmitool printed it in the guest -------------------------------


def test_ipmitool_decodes_the_generated_fru(hw: qemu.Hardware) -> None:
    text = (EVIDENCE / "ipmitool-v-fru-print.txt").read_text()
    results = vm_checks.check_ipmitool_fru(text, hw)
    assert failures(results) == []
    assert len(results) == len(hw.fru_devices)


def test_without_verbose_ipmitool_hides_the_psu_capacity(hw: qemu.Hardware) -> None:
    """Plain `ipmitool fru` leaves out multirecords: the check notices the missing capacity."""
    results = vm_checks.check_ipmitool_fru((EVIDENCE / "ipmitool-fru.txt").read_text(), hw)
    assert [r[0] for r in failures(results)] == [
        "ipmitool fru: PS1 (ID 2)",
        "ipmitool fru: PS2 (ID 3)",
    ]
    assert all("Capacity: got None, want '2200 W'" in r[2] for r in failures(results))


def test_ipmitool_fru_mismatch_and_missing_device(hw: qemu.Hardware) -> None:
    text = (EVIDENCE / "ipmitool-v-fru-print.txt").read_text()
    wrong = text.replace("P2K2ACJ19NT0598", "P2K2ACJ19NT0599")
    (failed,) = failures(vm_checks.check_ipmitool_fru(wrong, hw))
    assert failed[0] == "ipmitool fru: PS2 (ID 3)" and "P2K2ACJ19NT0599" in failed[2]
    cut = text[: text.index("FRU Device Description : PS2")]
    (failed,) = failures(vm_checks.check_ipmitool_fru(cut, hw))
    assert "not in the output" in failed[2]


def test_parse_ipmitool_fru_keeps_ids_and_fields() -> None:
    devices = vm_checks.parse_ipmitool_fru((EVIDENCE / "ipmitool-fru.txt").read_text())
    assert sorted(devices) == [0, 1, 2, 3]
    assert devices[0] == {"Description": "Builtin FRU Device"}
    assert devices[1]["Chassis Type"] == "Rack Mount Chassis"
    assert vm_checks.parse_ipmitool_fru("") == {}
    assert vm_checks.parse_ipmitool_fru(" Board Serial : X\nnoise\n") == {}


# --- boot 2 and boot 3 ------------------------------------------------------------------------


def test_nic_without_dhcp_has_no_ipv4(hw: qemu.Hardware) -> None:
    text = (EVIDENCE / "ip-j-addr-second-nic-no-dhcp.json").read_text()
    ok, detail = vm_checks.nic_without_ipv4(text, hw.nics[1].mac)
    assert ok, detail
    ok, detail = vm_checks.nic_without_ipv4(text, hw.nics[0].mac)
    assert not ok and "has IPv4 10.0.2.15" in detail
    assert vm_checks.nic_without_ipv4(text, "52:54:00:00:00:00") == (
        False,
        "no interface with MAC 52:54:00:00:00:00",
    )
    assert vm_checks.nic_without_ipv4("not json", hw.nics[1].mac)[0] is False


def test_host_keys_differ() -> None:
    a, b = {"ssh-ed25519 AAAA1"}, {"ssh-ed25519 AAAA2"}
    assert vm_checks.host_keys_differ(a, b, "ssh client")[1] is True
    assert vm_checks.host_keys_differ(a, a | b, "ssh client")[1] is False
    assert vm_checks.host_keys_differ(set(), b, "ssh client")[1] is False


def test_serial_console_of_a_boot_without_dhcp() -> None:
    text = (EVIDENCE / "serial-no-dhcp.log").read_text(errors="replace")
    clean = vm_checks.strip_ansi(text)
    seen = {
        name: 1.0 for name, pattern in vm_checks.SERIAL_MARKERS.items() if pattern.search(clean)
    }
    assert failures(vm_checks.check_serial_markers(seen)) == []
    keys = vm_checks.serial_host_keys(text)
    assert {k.split()[0] for k in keys} == {"ECDSA", "ED25519", "RSA"}
    assert failures(vm_checks.check_serial_markers({})) != []


# --- vm_test's own pure helpers ---------------------------------------------------------------


def test_ssh_uses_only_the_given_key() -> None:
    ssh = vm_test.Ssh(key=Path("/run/k"), port=40022, known_hosts=Path("/run/kh"))
    argv = ssh.argv("true")
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    for option in ("BatchMode=yes", "IdentitiesOnly=yes", "IdentityAgent=none"):
        assert option in argv
    assert argv[argv.index("-i") + 1] == "/run/k" and argv[argv.index("-p") + 1] == "40022"
    assert argv[-2:] == ["root@127.0.0.1", "true"]


def test_ssh_with_a_password_offers_nothing_else() -> None:
    ssh = vm_test.Ssh(key=Path("/run/k"), port=40022, known_hosts=Path("/run/kh"))
    argv = ssh.argv("true", user="user", password=True)
    assert "-i" not in argv and "BatchMode=yes" not in argv
    for option in ("PubkeyAuthentication=no", "PreferredAuthentications=password"):
        assert option in argv
    assert argv[-2:] == ["user@127.0.0.1", "true"]


def test_the_console_password_line() -> None:
    # As bee-sshsetup writes it on each console (its alphabet has no 0, O, 1, I or l).
    line = "*** bee: no SSH keys were built in. One-time root password for this boot: "
    match = vm_test.PASSWORD_LINE.search(line + "Kq7RwXz3HpTn9bAe ***")
    assert match is not None and match[1] == "Kq7RwXz3HpTn9bAe"
    assert vm_test.PASSWORD_LINE.search(line + "short ***") is None


def test_each_boot_s_firmware(tmp_path: Path) -> None:
    args = vm_test.parse_args([])
    ctx = vm_test.Context(
        hw=None, iso=tmp_path, key=tmp_path, run_dir=tmp_path, boot=None, accel=None,
        fru_path=tmp_path, sdr_path=tmp_path, guest_capture_dir=None, runner=None,
        spec_baked=False, firmware=args.firmware, direct_kernel=args.direct_kernel,
    )  # fmt: skip
    assert [vm_test.firmware_of(ctx, b) for b in ("boot1", "boot2", "boot3-no-dhcp")] == [
        "seabios",
        "ovmf",
        "seabios",
    ]
    assert not ctx.direct_kernel
    ctx.firmware = "ovmf-secboot"
    assert vm_test.firmware_of(ctx, "boot1") == "ovmf-secboot"
    with pytest.raises(SystemExit):
        vm_test.parse_args(["--keyless", "--ssh-key", "k"])
    assert vm_test.parse_args(["--keyless", "--iso", "x.iso"]).keyless


def test_known_host_keys(tmp_path: Path) -> None:
    # As ssh wrote it in boot 1 (StrictHostKeyChecking=no, UserKnownHostsFile=this file).
    path = tmp_path / "known_hosts"
    path.write_text(
        "[127.0.0.1]:52125 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIMZhaUFVgboL/0206KDVv3xjj9fyiv4G9ciVOoFkCwHg\n\nbroken\n"
    )
    assert vm_test.known_host_keys(path) == {
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZhaUFVgboL/0206KDVv3xjj9fyiv4G9ciVOoFkCwHg"
    }
    assert vm_test.known_host_keys(tmp_path / "missing") == set()


def test_report_lists_timings_and_every_check(tmp_path: Path) -> None:
    boot = vm_test.BootReport(name="boot1", accel="tcg", to_ssh_s=201.4, to_audit_s=230.0)
    boot.checks = [vm_test.Check("a", True, "fine"), vm_test.Check("b", False, "wrong")]
    text = vm_test.render_report([boot], 512.0, tmp_path)
    assert "boot1" in text and "201 s" in text and "230 s" in text
    assert "PASS boot1: a: fine" in text and "FAIL boot1: b: wrong" in text
    assert text.rstrip().endswith("1/2 checks passed; whole run 512 s")


def test_report_shows_where_the_boot_went(tmp_path: Path) -> None:
    boot = vm_test.BootReport(name="boot2", accel="tcg", firmware="ovmf", to_ssh_s=150.0)
    boot.phases = phases.Phases(
        bootloader_at_s=8.0,
        kernel_at_s=20.0,
        init_at_s=27.0,
        switch_root_at_s=45.0,
        systemd_at_s=60.0,
        ssh_at_s=150.0,
    )
    boot.systemd = {"firmware": 7.5, "loader": 12.0, "kernel": 40.0, "userspace": 90.0}
    boot.blame = [(40.1, "live-config.service")]
    boot.silences = [(33.0, "Begin: Running /scripts/init-bottom ... done.", "systemd 257")]
    text = vm_test.render_report([boot], 300.0, tmp_path)
    assert "boot2 (ovmf): phase" in text
    for row in ("firmware", "bootloader", "kernel", "initramfs", "systemd start", "systemd to"):
        assert f"  {row} " in text
    assert "90.0 s (userspace)" in text and "live-config.service 40.1 s" in text
    assert "silent  33.0 s" in text
    assert vm_test._phases_json(boot)["phases"][5] == {
        "phase": "systemd to SSH",
        "took_s": 90.0,
        "at_s": 150.0,
    }


def test_bad_arguments_are_one_line_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    missing = str(tmp_path / "missing.iso")
    assert vm_test.main(["--iso", missing, "--ssh-key", missing, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"vm_test: {missing} does not exist\n"
    assert not out.exists()
    with pytest.raises(SystemExit):
        vm_test.parse_args(["--iso", missing])
    with pytest.raises(SystemExit):
        vm_test.parse_args(["--iso-has-spec"])
    args = vm_test.parse_args(["--iso", missing, "--ssh-key", missing, "--iso-has-spec"])
    assert args.iso_has_spec


# --- bmc and health, on documents made from the QEMU BMC fixtures ------------------------------

BMC_FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def bmc_document(sel: str) -> dict[str, Any]:
    """The bmc part of a document, as run_audit makes it, from the QEMU BMC's real outputs."""
    from bee.serialize import to_jsonable
    from bee.tools import bmc, ipmitool_mc, ipmitool_sdr, ipmitool_sel

    section = bmc.Bmc(
        ipmi_device="/dev/ipmi0",
        identity=ipmitool_mc.parse(
            (BMC_FIXTURES / "ipmitool-mc-info" / "qemu-bmc-sim-supermicro.txt").read_text()
        ),
        lan_channels=[],
        sel=ipmitool_sel.parse(sel),
        sensors=ipmitool_sdr.parse(
            (BMC_FIXTURES / "ipmitool-sdr" / "qemu-bmc-sim-ps2-failed.txt").read_text()
        ),
    )
    return {
        "collectors": {"bmc": {"status": "ok", "duration_s": 1.0, "notes": []}},
        "bmc": to_jsonable(section),
        "findings": to_jsonable(bmc.findings({"bmc": section})),
    }


QEMU_SEL = BMC_FIXTURES / "ipmitool-sel" / "qemu-bmc-sim-events-and-watchdog.txt"


def test_bmc_identity_sensors_and_every_sel_event_with_its_finding(hw: qemu.Hardware) -> None:
    document = bmc_document(QEMU_SEL.read_text())
    results = vm_checks.check_bmc(document, hw) + vm_checks.check_bmc_events(document, hw)
    assert failures(results) == []
    assert len(results) == 2 + len(hw.sensors) + len(hw.sel_events) + 6  # 6 events expect one


def test_a_missing_sel_event_fails_its_checks(hw: qemu.Hardware) -> None:
    text = "\n".join(
        line for line in QEMU_SEL.read_text().splitlines() if "Drive Fault" not in line
    )
    failed = {r[0] for r in failures(vm_checks.check_bmc_events(bmc_document(text), hw))}
    assert failed == {
        "SEL: HDD0 Status Drive Fault asserted",
        "finding for SEL HDD0 Status Drive Fault",
    }
