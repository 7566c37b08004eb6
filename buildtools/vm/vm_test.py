"""Boot the bee ISO in QEMU on emulated server hardware and check what it reports.

    nox -s vm_test -- [--iso PATH --ssh-key PRIVATE_KEY] [--no-nvidia] [--out DIR]
                      [--guest-capture DIR] [--skip-no-dhcp] [--netboot]

Without --iso it builds an image (buildtools.image.build_iso) that trusts a throwaway key pair made
for this run, never a developer's own key. The machine is tests/vm/hardware.toml (see
buildtools/vm/qemu.py); the BMC's FRU and SDR images come from buildtools/vm/fru.py.

Boots:
  1. both NICs on QEMU user networking (SSH forwarded on 127.0.0.1 only): wait for SSH with a
     real `ssh -o BatchMode=yes`, wait for bee-audit.service, run iso/builder/smoketest.sh as
     an operator would, copy back the audit, the journal and `ipmitool -v fru print`, check
     the audit against the hardware description (buildtools/vm/checks.py).
  2. again, with the second NIC on an empty network where no DHCP answers: SSH still comes up,
     the second NIC has no IPv4 address, and the SSH host keys differ from boot 1.
  3. no NIC has DHCP (every NIC on an empty network): the serial console must show sshd started
     and the audit finished. Skipped with --skip-no-dhcp.

With --netboot no boot has a bee disk or CD: each machine boots its first NIC's iPXE ROM,
which takes boot.ipxe from QEMU's own TFTP server (`-netdev user,tftp=DIR,bootfile=boot.ipxe`);
the script loads the kernel and initrd, and live-boot the squashfs (`fetch=`), over HTTP from a
server this test runs on 127.0.0.1 (buildtools/netboot/serve.py; the guest reaches it as
http://10.0.2.100/, the network stays restricted). The artefacts are dist/netboot/'s, made
from the ISO (buildtools/netboot/artefacts.py). The same boots and checks run, each reporting
the bytes it fetched, and one more boot with a wrong squashfs URL must say so on the console
within NETBOOT_FAIL_WAIT_S.

Everything lands in DIR/vm-test-<UTC timestamp>/ (DIR defaults to dist/): serial logs, QEMU
stderr, the audit, the journal, the smoke test's output, report.json. Exit 0 when every check
passes, 1 when one fails, 2 when the run could not start (a one-line reason).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from buildtools import hosttools
from buildtools.hosttools import HostToolsError
from buildtools.netboot import artefacts as netboot
from buildtools.netboot.serve import GUEST_ADDRESS, NetbootServer
from buildtools.runner import CommandError, Runner
from buildtools.vm import checks as vm_checks
from buildtools.vm import emulator, fru, hwspec, phases, qemu, secureboot

REPO_ROOT = qemu.REPO_ROOT
SMOKETEST = REPO_ROOT / "iso" / "builder" / "smoketest.sh"
CAPTURE_SCRIPT = REPO_ROOT / "fixtures" / "capture.sh"
SSH_WAIT_S = 900  # TCG boots take about 3 minutes on the project's build host
AUDIT_WAIT_S = 400
SERIAL_WAIT_S = 900
SSH_ATTEMPT_S = 30
NETBOOT_FAIL_WAIT_S = 300
# What the console shows when the squashfs is not there (seen in QEMU): live-boot's panic
# (9990-main.sh), the image's bee-netboot panic script with the URL and busybox wget's error
# (which live-boot's own copy of its log to the console loses), then the initramfs shell.
NETBOOT_FAILURE = {
    "live-boot": re.compile(r"Unable to find a live file system on the network"),
    "url": re.compile(r"bee netboot: FAILED to fetch the root file system from fetch=\S+/missing"),
    "reason": re.compile(r"bee netboot: wget: server returned error: HTTP/1\.0 404[^\r\n]*"),
    "shell": re.compile(r"\(initramfs\)"),
}
BUILD_TIMEOUT_S = 4 * 3600  # build_iso bounds each of its own commands; this bounds the whole


class VmTestError(Exception):
    """The run cannot go on; the message is one line."""


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class BootReport:
    name: str
    accel: str = ""
    to_ssh_s: float | None = None
    to_audit_s: float | None = None
    total_s: float | None = None
    bytes_served: int | None = None  # netboot: what the HTTP server sent during this boot
    checks: list[Check] = field(default_factory=list)
    firmware: str = ""
    phases: phases.Phases | None = None
    silences: list[tuple[float, str, str]] = field(default_factory=list)
    systemd: dict[str, float] = field(default_factory=dict)  # systemd-analyze's parts
    blame: list[tuple[float, str]] = field(default_factory=list)
    password: str | None = field(default=None, repr=False)  # keyless: never in the report


# --- ssh --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ssh:
    key: Path
    port: int
    known_hosts: Path

    def argv(self, *remote: str, user: str = "root", password: bool = False) -> list[str]:
        # -F /dev/null and IdentitiesOnly/IdentityAgent=none: only the throwaway key, never a
        # developer's config, agent or keys. The known_hosts file records this boot's host key.
        # With password, only password authentication, answered by ASKPASS (see run).
        auth = (
            [
                *("-o", "BatchMode=no", "-o", "PubkeyAuthentication=no"),
                *("-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1"),
            ]
            if password
            else ["-i", str(self.key), "-o", "BatchMode=yes"]
        )
        return [
            "ssh",
            "-F",
            "/dev/null",
            *auth,
            "-p",
            str(self.port),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            f"{user}@127.0.0.1",
            *remote,
        ]

    def run(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float = 120,
        user: str = "root",
        password: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        env = None
        if password is not None:
            # ssh reads a password only from a terminal or from SSH_ASKPASS: a script next to
            # the key that prints it from the environment, so it is never in a file or argv.
            askpass = self.key.with_name("askpass")
            if not askpass.exists():
                askpass.write_text('#!/bin/sh\nprintf "%s\\n" "$BEE_VM_TEST_PASSWORD"\n')
                askpass.chmod(0o700)
            env = {
                **os.environ,
                "SSH_ASKPASS": str(askpass),
                "SSH_ASKPASS_REQUIRE": "force",
                "BEE_VM_TEST_PASSWORD": password,
            }
        try:
            return subprocess.run(
                self.argv(command, user=user, password=password is not None),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or b"", exc.stderr or b"")


def wait_for_ssh(ssh: Ssh, vm: qemu.Vm, timeout_s: float) -> float:
    """Retry a real login until it works; slirp accepts TCP long before sshd exists."""
    end = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < end:
        if not vm.running():
            raise VmTestError(f"the VM stopped before SSH came up: {vm.exit_message()}")
        result = ssh.run("true", timeout=SSH_ATTEMPT_S)
        if result.returncode == 0:
            return time.monotonic() - vm.started
        last = (result.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        time.sleep(1)
    raise VmTestError(f"no SSH login within {timeout_s:.0f} s (last: {last or 'no answer'})")


def wait_for_audit(ssh: Ssh, vm: qemu.Vm, timeout_s: float) -> float:
    """Until bee-audit.service has finished (bee-audit-boot writes /run/bee/audit-status)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        result = ssh.run("test -s /run/bee/audit-status", timeout=SSH_ATTEMPT_S)
        if result.returncode == 0:
            return time.monotonic() - vm.started
        if not vm.running():
            raise VmTestError(f"the VM stopped before the audit finished: {vm.exit_message()}")
        time.sleep(3)
    raise VmTestError(f"bee-audit.service did not finish within {timeout_s:.0f} s")


PASSWORD_LINE = re.compile(r"One-time root password for this boot: ([A-HJ-NP-Za-km-z2-9]{16})\b")
ANALYZE_WAIT_S = 120


def wait_for_password(vm: qemu.Vm, timeout_s: float) -> tuple[str, float]:
    """The one-time root password bee-sshsetup printed on the serial console, and when."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for line in vm.serial_lines():
            if match := PASSWORD_LINE.search(line.text):
                return match[1], line.at_s
        if not vm.running():
            raise VmTestError(f"the VM stopped before a password was shown: {vm.exit_message()}")
        time.sleep(2)
    raise VmTestError(f"no one-time root password on the serial console within {timeout_s:.0f} s")


def password_login(ssh: Ssh, vm: qemu.Vm, report: BootReport, timeout_s: float) -> float:
    """Keyless image: read the password off the console, log in with it over SSH (installing the
    run's key, so the rest of the boot's checks log in as usual), check the live user."""
    password, shown_at = wait_for_password(vm, timeout_s)
    report.password = password
    report.checks.append(
        Check("one-time root password on the serial console", True, f"after {shown_at:.0f} s")
    )
    install = "umask 077 && mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys"
    public = ssh.key.with_suffix(".pub").read_bytes()
    end = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < end:
        result = ssh.run(install, stdin=public, timeout=SSH_ATTEMPT_S, password=password)
        if result.returncode == 0:
            break
        last = (result.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        if not vm.running():
            raise VmTestError(f"the VM stopped before SSH came up: {vm.exit_message()}")
        time.sleep(3)
    else:
        raise VmTestError(f"no SSH login with the console's password (last: {last or 'none'})")
    at = time.monotonic() - vm.started
    report.checks.append(
        Check("root logs in over SSH with that password", True, f"after {at:.0f} s")
    )
    refused = ssh.run("true", user="user", password=password, timeout=SSH_ATTEMPT_S)
    why = (refused.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
    report.checks.append(
        Check(
            "the live user 'user' cannot log in with it",
            refused.returncode == 255 and "Permission denied" in why,
            f"exit {refused.returncode}: {why}",
        )
    )
    state = ssh.run("passwd -S user 2>/dev/null || echo 'user absent'", timeout=60)
    words = state.stdout.decode(errors="replace").split()
    report.checks.append(
        Check(
            "the live user stays locked",
            words[:2] in (["user", "L"], ["user", "absent"]),
            " ".join(words[:3]) or "no answer",
        )
    )
    return at


def login(ctx: Context, ssh: Ssh, vm: qemu.Vm, report: BootReport) -> float:
    if ctx.keyless:
        password_login(ssh, vm, report, SSH_WAIT_S)
    return wait_for_ssh(ssh, vm, SSH_WAIT_S)


def systemd_timings(ctx: Context, ssh: Ssh, name: str, report: BootReport) -> None:
    """systemd-analyze's own account of the boot, once it has finished (multi-user.target)."""
    end = time.monotonic() + ANALYZE_WAIT_S
    while True:
        summary = ssh.run("systemd-analyze time", timeout=60)
        if summary.returncode == 0 or time.monotonic() > end:
            break
        time.sleep(5)
    blame = ssh.run("systemd-analyze blame --no-pager", timeout=60)
    chain = ssh.run(
        "systemd-analyze critical-chain --no-pager ssh.service bee-audit.service", timeout=60
    )
    text = b"".join(
        [
            *(b"$ systemd-analyze time\n", summary.stdout, summary.stderr),
            *(b"\n$ systemd-analyze blame\n", blame.stdout, blame.stderr),
            b"\n$ systemd-analyze critical-chain ssh.service bee-audit.service\n",
            *(chain.stdout, chain.stderr),
        ]
    )
    (ctx.run_dir / f"{name}-systemd-analyze.txt").write_bytes(text)
    report.systemd = phases.parse_startup_finished(summary.stdout.decode(errors="replace"))
    report.blame = phases.parse_blame(blame.stdout.decode(errors="replace"), 8)


def record_phases(report: BootReport, vm: qemu.Vm) -> None:
    """After the boot: its phases from the serial console's arrival times."""
    lines = vm.serial_lines()
    report.phases = dataclasses.replace(
        phases.phases_from_lines(lines), ssh_at_s=report.to_ssh_s, audit_at_s=report.to_audit_s
    )
    report.silences = phases.longest_silences(lines, 6)


def wait_for_serial(log: Path, patterns: dict[str, re.Pattern[str]], vm: qemu.Vm, timeout_s: float):
    """Seconds from QEMU start until each pattern first appears on the serial console."""
    seen: dict[str, float] = {}
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and len(seen) < len(patterns):
        text = vm_checks.strip_ansi(log.read_text(errors="replace")) if log.exists() else ""
        for name, pattern in patterns.items():
            if name not in seen and pattern.search(text):
                seen[name] = time.monotonic() - vm.started
        if not vm.running():
            break
        time.sleep(2)
    return seen


# --- one run ----------------------------------------------------------------------------------


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def make_throwaway_key(run_dir: Path, runner: Runner) -> Path:
    key = run_dir / "ssh" / "id_ed25519"
    key.parent.mkdir(parents=True, exist_ok=True)
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bee-vm-test", "-f", str(key)]
    runner.run(argv, timeout_s=60)
    return key


def build_image(
    key: Path,
    out_dir: Path,
    cache: Path,
    runner: Runner,
    *,
    no_nvidia: bool,
    spec: Path,
    keyless: bool = False,
) -> Path:
    """image/build_iso.py with the throwaway public key (none when keyless) and the hardware's
    spec into `out_dir`, sharing dist/'s caches (the NVIDIA build, apt lists, live-build's
    cache) with `nox -s build_iso`."""
    keys = [] if keyless else ["--authorized-keys", str(key.with_suffix(".pub"))]
    argv = [
        sys.executable,
        "-m",
        "buildtools.image.build_iso",
        *keys,
        "--out",
        str(out_dir),
        "--cache",
        str(cache),
        "--spec",
        str(spec),
    ]
    if no_nvidia:
        argv.append("--no-nvidia")
    print(f"vm_test: building the image: {' '.join(argv[1:])}", flush=True)
    # Its progress lines go on to the console as they come; its own log is out_dir/build-iso.log.
    runner.run(argv, cwd=REPO_ROOT, timeout_s=BUILD_TIMEOUT_S, on_line=print, name="build_iso")
    isos = sorted(out_dir.glob("bee-*.iso"), key=lambda p: p.stat().st_mtime)
    if not isos:
        raise VmTestError(f"build_iso succeeded but left no bee-*.iso in {out_dir}")
    return isos[-1]


def fetch(ssh: Ssh, command: str, dest: Path, *, timeout: float = 120) -> int:
    result = ssh.run(command, timeout=timeout)
    dest.write_bytes(result.stdout)
    if result.stderr:
        dest.with_name(dest.name + ".stderr").write_bytes(result.stderr)
    return result.returncode


def known_host_keys(path: Path) -> set[str]:
    """'type base64' of every host key the client recorded."""
    keys: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                keys.add(f"{parts[1]} {parts[2]}")
    return keys


def guest_capture(ssh: Ssh, dest: Path, runner: Runner) -> list[str]:
    """fixtures/capture.sh and `bee audit --capture` in the guest, copied back under dest."""
    notes: list[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    if CAPTURE_SCRIPT.is_file():
        result = ssh.run(
            "rm -rf /tmp/cap && sh -s -- /tmp/cap", stdin=CAPTURE_SCRIPT.read_bytes(), timeout=600
        )
        notes.append(f"capture.sh exit {result.returncode}")
        _copy_dir_back(ssh, "/tmp/cap", dest / "capture-sh", runner)
    else:
        notes.append(f"{CAPTURE_SCRIPT} missing: no raw capture")
    result = ssh.run(
        "rm -rf /tmp/beecap && bee audit --capture /tmp/beecap --output /tmp/beecap-audit.json",
        timeout=600,
    )
    notes.append(f"bee audit --capture exit {result.returncode}")
    (dest / "bee-audit-capture.log").write_bytes(result.stdout + result.stderr)
    _copy_dir_back(ssh, "/tmp/beecap", dest / "bee-capture", runner)
    fetch(ssh, "cat /tmp/beecap-audit.json", dest / "bee-capture-audit.json")
    return notes


def _copy_dir_back(ssh: Ssh, remote: str, local: Path, runner: Runner) -> None:
    result = ssh.run(f"tar -C {remote} -cf - .", timeout=300)
    if result.returncode != 0:
        raise VmTestError(f"could not copy {remote} back: {result.stderr.decode().strip()}")
    local.mkdir(parents=True, exist_ok=True)
    archive = local.with_name(local.name + ".tar")
    archive.write_bytes(result.stdout)
    runner.run(["tar", "-C", str(local), "-xf", str(archive)], timeout_s=300)
    archive.unlink()


@dataclass(slots=True, kw_only=True)
class Context:
    hw: qemu.Hardware
    iso: Path
    key: Path
    run_dir: Path
    boot: qemu.BootFiles
    accel: qemu.Accel
    fru_path: Path
    sdr_path: Path
    guest_capture_dir: Path | None
    runner: Runner
    spec_baked: bool  # the image was built here, with hwspec's spec of the hardware
    netboot: qemu.Netboot | None = None
    server: NetbootServer | None = None
    firmware: str | None = None  # every boot's; None: BOOT_FIRMWARE's plan
    direct_kernel: bool = False  # -kernel/-initrd instead of the CD's own bootloader
    keyless: bool = False  # the image trusts no key: log in with the console's password
    virt_fw_vars: str | None = None  # --secure-boot-modules: adds the MOK to the OVMF vars
    qemu_command: tuple[str, ...] = (qemu.QEMU,)  # the emulator and its -L (emulator.py)
    machine: str = "q35"  # its q35 machine type (emulator.py)


# Without --firmware the CD boots through both of its bootloaders: isolinux under SeaBIOS (boot 1)
# and GRUB EFI under OVMF (boot 2). Netboot stays on SeaBIOS (its iPXE ROM is the BIOS one).
BOOT_FIRMWARE = {"boot2": "ovmf"}


def firmware_of(ctx: Context, name: str) -> str:
    if ctx.firmware is not None:
        return ctx.firmware
    return "seabios" if ctx.netboot is not None else BOOT_FIRMWARE.get(name, "seabios")


def _vm(
    ctx: Context,
    name: str,
    ssh_port: int | None,
    isolated: frozenset[int],
    vars_source: Path | None = None,
) -> qemu.Vm:
    firmware = firmware_of(ctx, name)
    vars_copy = None
    if firmware in qemu.OVMF:
        # Each boot starts from the package's variables (boot order, Secure Boot keys), or
        # from `vars_source` (those with a MOK added).
        vars_copy = ctx.run_dir / f"{name}-OVMF_VARS.fd"
        shutil.copyfile(vars_source or qemu.OVMF[firmware][1], vars_copy)
    argv = qemu.machine_args(
        ctx.hw,
        accel=ctx.accel,
        boot=ctx.boot,
        iso=ctx.iso,
        fru_path=ctx.fru_path,
        sdr_path=ctx.sdr_path,
        serial_log=ctx.run_dir / f"{name}-serial.log",
        ssh_port=ssh_port,
        isolated_nics=isolated,
        netboot=ctx.netboot,
        firmware=firmware,
        vars_copy=vars_copy,
        via_bootloader=not ctx.direct_kernel,
        qemu_command=ctx.qemu_command,
        machine=ctx.machine,
    )
    (ctx.run_dir / f"{name}-qemu-argv.txt").write_text("\n".join(argv) + "\n")
    serial = ctx.run_dir / f"{name}-serial.log"
    return qemu.Vm(argv, ctx.run_dir / f"{name}-qemu-stderr.log", serial_log=serial)


AFTER_EVENTS_AUDIT = "/tmp/bee-audit-after-sel-events.json"


def boot_full(ctx: Context) -> tuple[BootReport, set[str]]:
    """Boot 1: SSH, the audit, the smoke test, the checks."""
    report = BootReport(name="boot1", accel=ctx.accel.why, firmware=firmware_of(ctx, "boot1"))
    port = qemu.free_port()
    ssh = Ssh(key=ctx.key, port=port, known_hosts=ctx.run_dir / "boot1-known_hosts")
    with _vm(ctx, "boot1", port, frozenset()) as vm:
        print(f"vm_test: boot 1 ({report.firmware}): waiting for SSH", flush=True)
        report.to_ssh_s = login(ctx, ssh, vm, report)
        print(f"vm_test: boot 1: SSH after {report.to_ssh_s:.0f} s", flush=True)
        report.to_audit_s = wait_for_audit(ssh, vm, AUDIT_WAIT_S)
        print(f"vm_test: boot 1: audit finished after {report.to_audit_s:.0f} s", flush=True)
        systemd_timings(ctx, ssh, "boot1", report)
        smoke = ssh.run("sh -s", stdin=SMOKETEST.read_bytes(), timeout=300)
        (ctx.run_dir / "smoketest.log").write_bytes(smoke.stdout + smoke.stderr)
        fails = [
            line
            for line in smoke.stdout.decode(errors="replace").splitlines()
            if line.startswith("FAIL")
        ]
        report.checks.append(
            Check(
                "smoketest.sh exit 0",
                smoke.returncode == 0,
                f"exit {smoke.returncode}; " + ("; ".join(fails[:5]) or "no FAIL lines"),
            )
        )
        audit_path = ctx.run_dir / "bee-audit.json"
        fetch(ssh, "cat /var/log/bee-audit.json", audit_path)
        fetch(ssh, "journalctl -b --no-pager -o short-precise", ctx.run_dir / "journal.txt")
        fetch(ssh, "ipmitool -v fru print", ctx.run_dir / "ipmitool-v-fru-print.txt")
        if ctx.spec_baked:
            report.checks += spec_checks(ctx, ssh)
        if ctx.guest_capture_dir is not None:
            for note in guest_capture(ssh, ctx.guest_capture_dir, ctx.runner):
                print(f"vm_test: guest capture: {note}", flush=True)
        after_events = log_sel_events(ssh, ctx)
        report.total_s = time.monotonic() - vm.started
    record_phases(report, vm)
    try:
        document = json.loads(audit_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.checks.append(Check("audit is JSON", False, f"{audit_path}: {exc}"))
        document = None
    if isinstance(document, dict):
        report.checks += [Check(*c) for c in vm_checks.check_audit(document, ctx.hw)]
        report.checks += [Check(*c) for c in vm_checks.check_network(document, ctx.hw)]
    fru_text = (ctx.run_dir / "ipmitool-v-fru-print.txt").read_text(errors="replace")
    report.checks += [Check(*c) for c in vm_checks.check_ipmitool_fru(fru_text, ctx.hw)]
    if after_events is not None:
        try:
            later = json.loads(after_events.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report.checks.append(Check("audit after SEL events is JSON", False, str(exc)))
        else:
            report.checks += [Check(*c) for c in vm_checks.check_bmc_events(later, ctx.hw)]
    return report, known_host_keys(ssh.known_hosts)


def spec_checks(ctx: Context, ssh: Ssh) -> list[Check]:
    """The baked spec: ACCEPT on the console and in the document; then `bee check` in the guest
    with a spec that wants one DIMM more must REJECT, naming memory."""
    serial = (ctx.run_dir / "boot1-serial.log").read_text(encoding="utf-8", errors="replace")
    accept = re.search(r"^ACCEPT: \d+ of \d+ checks passed.*$", serial, re.M)
    reject = re.search(r"^REJECT: .*$", serial, re.M)
    console = accept.group(0) if accept else reject.group(0) if reject else "no verdict line"
    checks = [Check("console says ACCEPT (baked spec)", accept is not None, console.strip())]
    verdict = ssh.run("bee check /etc/bee/spec.toml /var/log/bee-audit.json", timeout=120)
    (ctx.run_dir / "bee-check-baked.txt").write_bytes(verdict.stdout + verdict.stderr)
    last = verdict.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    checks.append(Check("bee check of the baked spec exits 0", verdict.returncode == 0, last[0]))
    more = hwspec.hardware_spec(ctx.hw, extra_dimms=1).encode()
    result = ssh.run("cat > /tmp/more-dimms.toml && bee check /tmp/more-dimms.toml", stdin=more)
    output = result.stdout.decode(errors="replace")
    (ctx.run_dir / "bee-check-more-dimms.txt").write_text(output + result.stderr.decode())
    failing = re.findall(r"^(?:FAIL|UNKNOWN)\s+(\S+)", output, re.M)
    ok = result.returncode == 1 and failing == ["MEMORY-DIMM-COUNT"] and "memory.slots" in output
    detail = f"exit {result.returncode}; not passed: {', '.join(failing) or 'none'}"
    checks.append(Check("bee check, one DIMM more: REJECT naming memory", ok, detail))
    return checks


def sel_events_script(hw: qemu.Hardware) -> str:
    """Shell that logs the [[sel_event]]s through the guest's BMC, then audits again."""
    lines = [" ".join(shlex.quote(w) for w in fru.platform_event_argv(e)) for e in hw.sel_events]
    lines.append(f"bee audit --output {AFTER_EVENTS_AUDIT} --no-qr > /dev/null 2>&1")
    return "\n".join(lines) + "\n"


def log_sel_events(ssh: Ssh, ctx: Context) -> Path | None:
    """The BMC's SEL starts empty at every QEMU start: add the description's events from inside
    the guest (a raw Platform Event Message, which the simulator logs), run the audit
    again and fetch it, so the bmc findings are checked end to end."""
    if not ctx.hw.sel_events:
        return None
    print("vm_test: boot 1: logging SEL events, auditing again", flush=True)
    result = ssh.run("sh -s", stdin=sel_events_script(ctx.hw).encode(), timeout=AUDIT_WAIT_S)
    (ctx.run_dir / "sel-events.log").write_bytes(result.stdout + result.stderr)
    path = ctx.run_dir / "bee-audit-after-sel-events.json"
    fetch(ssh, f"cat {AFTER_EVENTS_AUDIT}", path)
    return path


def boot_second(ctx: Context, first: BootReport, first_keys: set[str]) -> BootReport:
    """Boot 2: NIC 2 without DHCP; SSH must come up and the host keys must be new."""
    report = BootReport(name="boot2", accel=ctx.accel.why, firmware=firmware_of(ctx, "boot2"))
    port = qemu.free_port()
    ssh = Ssh(key=ctx.key, port=port, known_hosts=ctx.run_dir / "boot2-known_hosts")
    dead = len(ctx.hw.nics) - 1
    with _vm(ctx, "boot2", port, frozenset({dead})) as vm:
        print(
            f"vm_test: boot 2 ({report.firmware}, second NIC without DHCP): waiting for SSH",
            flush=True,
        )
        report.to_ssh_s = login(ctx, ssh, vm, report)
        print(f"vm_test: boot 2: SSH after {report.to_ssh_s:.0f} s", flush=True)
        if ctx.keyless:
            differs = None not in (first.password, report.password) and (
                first.password != report.password
            )
            report.checks.append(
                Check("the one-time password differs from boot 1's", differs, "compared")
            )
        mac = ctx.hw.nics[dead].mac
        addresses = ssh.run("ip -j addr show", timeout=60)
        (ctx.run_dir / "boot2-ip-addr.json").write_bytes(addresses.stdout)
        ok, detail = vm_checks.nic_without_ipv4(addresses.stdout.decode(errors="replace"), mac)
        report.checks.append(Check(f"NIC {mac} got no DHCP address", ok, detail))
        active = ssh.run("systemctl is-active ssh.service", timeout=60)
        state = active.stdout.decode().strip()
        report.checks.append(Check("ssh.service active", state == "active", state))
        report.to_audit_s = wait_for_audit(ssh, vm, AUDIT_WAIT_S)
        systemd_timings(ctx, ssh, "boot2", report)
        report.total_s = time.monotonic() - vm.started
    record_phases(report, vm)
    second_keys = known_host_keys(ssh.known_hosts)
    report.checks.append(Check(*vm_checks.host_keys_differ(first_keys, second_keys, "ssh client")))
    serial = [
        vm_checks.serial_host_keys((ctx.run_dir / f"{boot}-serial.log").read_text(errors="replace"))
        for boot in ("boot1", "boot2")
    ]
    report.checks.append(Check(*vm_checks.host_keys_differ(*serial, "console fingerprints")))
    return report


def boot_no_dhcp(ctx: Context) -> BootReport:
    """Boot 3: no NIC gets DHCP; the serial console shows sshd and the audit anyway."""
    name = "boot3-no-dhcp"
    report = BootReport(name=name, accel=ctx.accel.why, firmware=firmware_of(ctx, name))
    everything = frozenset(range(len(ctx.hw.nics)))
    serial = ctx.run_dir / "boot3-no-dhcp-serial.log"
    with _vm(ctx, name, None, everything) as vm:
        print(
            f"vm_test: boot 3 ({report.firmware}, no DHCP anywhere): watching the serial console",
            flush=True,
        )
        seen = wait_for_serial(serial, vm_checks.SERIAL_MARKERS, vm, SERIAL_WAIT_S)
        report.total_s = time.monotonic() - vm.started
    report.to_ssh_s = seen.get("sshd")
    report.to_audit_s = seen.get("audit")
    record_phases(report, vm)
    report.checks += [Check(*c) for c in vm_checks.check_serial_markers(seen)]
    return report


# --- output -----------------------------------------------------------------------------------


def signing_cert(iso: Path) -> Path:
    """The certificate build_iso left beside the ISO (build_iso.signing_cert_stem)."""
    return iso.with_name(f"{iso.name.removesuffix('.iso')}.module-signing.der")


def cert_common_name(cert: Path, runner: Runner) -> str:
    subject = runner.run(
        [
            "openssl",
            "x509",
            "-inform",
            "DER",
            "-in",
            str(cert),
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
        timeout_s=60,
    ).stdout
    for part in subject.strip().removeprefix("subject=").split(","):
        if part.startswith("CN="):
            return part[3:]
    raise VmTestError(f"{cert}: no CN in its subject {subject.strip()!r}")


def boot_secure(ctx: Context, *, enrolled: bool) -> BootReport:
    """Secure Boot on, the module-signing certificate enrolled as a MOK or not: the loader by
    hand over SSH, then an audit (buildtools/vm/secureboot.py)."""
    name = "secboot-enrolled" if enrolled else "secboot-not-enrolled"
    report = BootReport(name=name, accel=ctx.accel.why, firmware="ovmf-secboot")
    cert = signing_cert(ctx.iso)
    if not cert.is_file():
        raise VmTestError(f"no {cert} beside the ISO (built before module signing?)")
    vars_source = None
    if enrolled:
        if ctx.virt_fw_vars is None:
            raise VmTestError(
                "virt-fw-vars not found (Debian 13: apt-get install python3-virt-firmware; "
                "else pip install virt-firmware; or --virt-fw-vars PATH)"
            )
        vars_source = secureboot.vars_with_mok(
            cert, ctx.run_dir / f"{name}-vars-with-mok.fd", ctx.virt_fw_vars, ctx.runner
        )
    port = qemu.free_port()
    ssh = Ssh(key=ctx.key, port=port, known_hosts=ctx.run_dir / f"{name}-known_hosts")

    def check(title: str, ok: bool, detail: str) -> None:
        report.checks.append(Check(title, ok, detail))

    with _vm(ctx, name, port, frozenset(), vars_source) as vm:
        print(f"vm_test: {name}: waiting for SSH", flush=True)
        report.to_ssh_s = wait_for_ssh(ssh, vm, SSH_WAIT_S)
        report.to_audit_s = wait_for_audit(ssh, vm, AUDIT_WAIT_S)
        print(f"vm_test: {name}: SSH {report.to_ssh_s:.0f} s, audit {report.to_audit_s:.0f} s")
        boot_audit_path = ctx.run_dir / f"{name}-bee-audit.json"
        fetch(ssh, "cat /var/log/bee-audit.json", boot_audit_path)
        result = ssh.run("sh -s", stdin=secureboot.GUEST_SCRIPT.encode(), timeout=600)
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        (ctx.run_dir / f"{name}-guest.txt").write_text(output)
        audit_path = ctx.run_dir / f"{name}-audit-after-loader.json"
        fetch(ssh, "cat /tmp/bee-audit-secboot.json", audit_path)
        fetch(ssh, "cat /run/bee/nvidia-load", ctx.run_dir / f"{name}-nvidia-load.txt")
        fetch(ssh, "journalctl -b --no-pager -o short-precise", ctx.run_dir / f"{name}-journal.txt")
        report.total_s = time.monotonic() - vm.started
    secureboot.judge(
        enrolled=enrolled,
        output=output,
        audit=_json_or_none(audit_path),
        boot_audit=_json_or_none(boot_audit_path),
        cert_sha256=secureboot.sha256_of(cert),
        cert_subject_cn=cert_common_name(cert, ctx.runner),
        check=check,
    )
    return report


def _json_or_none(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def boot_netboot_bad_url(ctx: Context, netboot_dir: Path) -> BootReport:
    """Netboot with a squashfs URL the server does not have: the console must say so."""
    report = BootReport(name="netboot-bad-url", accel=ctx.accel.why)
    script = (netboot_dir / "boot.ipxe").read_text()
    bad = script.replace(f"/{netboot.SQUASHFS}", "/missing.squashfs")
    (netboot_dir / "boot-bad-url.ipxe").write_text(bad)
    assert ctx.netboot is not None and ctx.server is not None
    saved = ctx.netboot
    ctx.netboot = qemu.Netboot(
        tftp_dir=saved.tftp_dir, bootfile="boot-bad-url.ipxe", guestfwd=saved.guestfwd
    )
    serial = ctx.run_dir / "netboot-bad-url-serial.log"
    try:
        with _vm(ctx, "netboot-bad-url", None, frozenset()) as vm:
            print("vm_test: netboot with a wrong squashfs URL: watching the console", flush=True)
            seen = wait_for_serial(serial, NETBOOT_FAILURE, vm, NETBOOT_FAIL_WAIT_S)
            report.total_s = time.monotonic() - vm.started
    finally:
        ctx.netboot = saved
    text = vm_checks.strip_ansi(serial.read_text(errors="replace")) if serial.exists() else ""
    for name, pattern in NETBOOT_FAILURE.items():
        match = pattern.search(text)
        report.checks.append(
            Check(
                f"console shows the {name} line within {NETBOOT_FAIL_WAIT_S} s",
                name in seen,
                f"after {seen[name]:.0f} s: {match.group(0) if match else ''}"
                if name in seen
                else "not on the serial console",
            )
        )
    missing = [code for path, code in ctx.server.served.requests if path == "/missing.squashfs"]
    report.checks.append(
        Check("the wrong URL was asked for (HTTP 404)", 404 in missing, repr(missing[:3]))
    )
    return report


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def render_phases(boot: BootReport) -> list[str]:
    """Where the boot's time went: phases, systemd-analyze, the longest console silences."""
    if boot.phases is None:
        return []
    lines = [f"{boot.name} ({boot.firmware}): phase, seconds it took, seconds after power-on"]
    for name, took, at in boot.phases.rows():
        took_s = "-" if took is None else f"{took:.1f} s"
        at_s = "-" if at is None else f"{at:.1f} s"
        lines.append(f"  {name:<34}{took_s:>10}{at_s:>10}")
    if boot.systemd:
        parts = " + ".join(f"{seconds:.1f} s ({part})" for part, seconds in boot.systemd.items())
        lines.append(f"  systemd-analyze: {parts}")
    if boot.blame:
        slowest = ", ".join(f"{unit} {seconds:.1f} s" for seconds, unit in boot.blame[:6])
        lines.append(f"  slowest units: {slowest}")
    for gap, before, after in boot.silences:
        lines.append(f"  silent {gap:5.1f} s: {before[:60]!r} -> {after[:60]!r}")
    lines.append("")
    return lines


def _phases_json(boot: BootReport) -> dict[str, object]:
    rows = boot.phases.rows() if boot.phases else []
    return {
        "firmware": boot.firmware,
        "phases": [{"phase": n, "took_s": t, "at_s": a} for n, t, a in rows],
        "systemd_analyze_s": boot.systemd,
        "slowest_units": [{"unit": u, "seconds": t} for t, u in boot.blame],
        "longest_silences": [{"seconds": g, "before": b, "after": a} for g, b, a in boot.silences],
    }


def render_report(boots: list[BootReport], total_s: float, run_dir: Path) -> str:
    lines = [f"bee vm_test: {run_dir}"]
    if boots:
        lines.append(f"acceleration: {boots[0].accel}")
    lines.append(f"{'boot':<16}{'QEMU->SSH':>12}{'->audit':>12}{'total':>12}{'HTTP MiB':>12}")
    for boot in boots:
        served = "-" if boot.bytes_served is None else f"{boot.bytes_served / 1024**2:.1f}"
        lines.append(
            f"{boot.name:<16}{_seconds(boot.to_ssh_s):>12}{_seconds(boot.to_audit_s):>12}"
            f"{_seconds(boot.total_s):>12}{served:>12}"
        )
    lines.append("")
    for boot in boots:
        lines += render_phases(boot)
    for boot in boots:
        for check in boot.checks:
            lines.append(
                f"{'PASS' if check.ok else 'FAIL'} {boot.name}: {check.name}: {check.detail}"
            )
    failed = sum(not c.ok for b in boots for c in b.checks)
    checks = sum(len(b.checks) for b in boots)
    lines.append("")
    lines.append(f"{checks - failed}/{checks} checks passed; whole run {total_s:.0f} s")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s vm_test --",
        description="Boot the bee ISO in QEMU on emulated server hardware and check the audit.",
    )
    parser.add_argument("--iso", type=Path, help="an image built elsewhere (needs --ssh-key)")
    parser.add_argument("--ssh-key", type=Path, help="private key the --iso image trusts")
    parser.add_argument(
        "--iso-has-spec",
        action="store_true",
        help="the --iso image was built with the spec of --hardware (as vm_test builds it): "
        "also check the verdict on the console and bee check in the guest",
    )
    parser.add_argument(
        "--hardware",
        type=Path,
        default=qemu.HARDWARE_FILE,
        metavar="TOML",
        help="the emulated machine (default tests/vm/hardware.toml)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "dist",
        metavar="DIR",
        help="where vm-test-<timestamp>/ goes (default dist/)",
    )
    parser.add_argument("--no-nvidia", action="store_true", help="build the image without NVIDIA")
    parser.add_argument(
        "--guest-capture",
        type=Path,
        metavar="DIR",
        help="also run fixtures/capture.sh and `bee audit --capture` in the guest, into DIR",
    )
    parser.add_argument("--skip-no-dhcp", action="store_true", help="skip boot 3")
    parser.add_argument(
        "--firmware",
        choices=qemu.FIRMWARES,
        help="every boot's firmware: seabios (QEMU's BIOS), ovmf (UEFI), ovmf-secboot (UEFI, "
        "Secure Boot on, Microsoft keys enrolled); OVMF comes from Debian's ovmf package. "
        "Default: boot 1 SeaBIOS (isolinux), boot 2 OVMF (GRUB), boot 3 SeaBIOS",
    )
    parser.add_argument(
        "--direct-kernel",
        action="store_true",
        help="hand QEMU the ISO's kernel and initrd (-kernel/-initrd/-append, console on the "
        "serial port) instead of booting the CD through its own bootloader",
    )
    parser.add_argument(
        "--keyless",
        action="store_true",
        help="the image trusts no SSH key (built without --authorized-keys; with --iso, no "
        "--ssh-key): each boot logs in with the one-time password read off the serial console",
    )
    parser.add_argument(
        "--secure-boot-modules",
        action="store_true",
        help="instead of boots 1-3: two boots under OVMF with Secure Boot on, through the ISO's"
        " bootloader, the image's module-signing certificate enrolled as a MOK or not; checks"
        " what bee-nvidia and the audit say (needs virt-fw-vars, docs/secure-boot.md)",
    )
    parser.add_argument(
        "--virt-fw-vars", metavar="PATH", help="virt-fw-vars to use (default: from PATH)"
    )
    parser.add_argument(
        "--host-qemu",
        action="store_true",
        help=f"run the host's QEMU even when it is older than "
        f"{emulator.dotted(emulator.MIN_VERSION)} (default: then bookworm-backports' "
        "QEMU, unpacked under --out; buildtools/vm/emulator.py)",
    )
    parser.add_argument(
        "--netboot",
        action="store_true",
        help="boot every machine over the network (iPXE, TFTP, HTTP), with no bee disk or CD",
    )
    args = parser.parse_args(argv)
    if args.keyless and args.ssh_key is not None:
        parser.error("--keyless images trust no key: no --ssh-key")
    if not args.keyless and (args.iso is None) != (args.ssh_key is None):
        parser.error("--iso and --ssh-key go together")
    if args.iso_has_spec and args.iso is None:
        parser.error("--iso-has-spec describes an --iso image")
    return args


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.iso is not None:
        for path in (args.iso, args.ssh_key):
            if path is not None and not path.is_file():
                raise VmTestError(f"{path} does not exist")
    hw = qemu.load_hardware(args.hardware)
    if not SMOKETEST.is_file():
        raise VmTestError(f"{SMOKETEST} is missing")
    run_dir = (args.out / f"vm-test-{timestamp()}").resolve()
    run_dir.mkdir(parents=True)
    with Runner(run_dir / "vm-test.log") as runner:
        hosttools.ensure("vm_test", runner)
        if args.iso is not None and args.keyless:
            # The key is the run's own, installed over the password login of each boot.
            iso, key = args.iso.resolve(), make_throwaway_key(run_dir, runner)
        elif args.iso is not None:
            iso, key = args.iso.resolve(), args.ssh_key.resolve()
        else:
            key = make_throwaway_key(run_dir, runner)
            spec = run_dir / "hardware-spec.toml"
            spec.write_text(hwspec.hardware_spec(hw), encoding="utf-8")
            iso = build_image(
                key,
                (args.out / "vm-test-image").resolve(),
                args.out.resolve(),
                runner,
                no_nvidia=args.no_nvidia,
                spec=spec,
                keyless=args.keyless,
            )
        return _boots(
            args, hw=hw, iso=iso, key=key, run_dir=run_dir, runner=runner, started=started
        )


def _boots(
    args: argparse.Namespace,
    *,
    hw: qemu.Hardware,
    iso: Path,
    key: Path,
    run_dir: Path,
    runner: Runner,
    started: float,
) -> int:
    fru_path, sdr_path = fru.write_images(list(hw.fru_devices), run_dir / "bmc", hw.sensors)
    boot = qemu.extract_boot_files(iso, run_dir / "boot", runner)
    emu = emulator.resolve(args.out.resolve(), runner, host_only=args.host_qemu)
    print(f"vm_test: {emu.why}", flush=True)
    accel = qemu.probe_kvm(boot.kernel, run_dir, runner, qemu_command=emu.command)
    print(f"vm_test: {accel.why}", flush=True)
    # The report's "acceleration" line names the emulator too: under TCG its version moves
    # every phase timing (buildtools/vm/emulator.py).
    accel = dataclasses.replace(accel, why=f"{accel.why}; {emu.why}")
    ctx = Context(
        hw=hw,
        iso=iso,
        key=key,
        run_dir=run_dir,
        boot=boot,
        accel=accel,
        fru_path=fru_path,
        sdr_path=sdr_path,
        guest_capture_dir=args.guest_capture.resolve() if args.guest_capture else None,
        runner=runner,
        spec_baked=args.iso is None or args.iso_has_spec,
        # --secure-boot-modules: shim reads the MOK list, so through the CD's own bootloader.
        firmware="ovmf-secboot" if args.secure_boot_modules else args.firmware,
        direct_kernel=args.direct_kernel and not args.secure_boot_modules,
        keyless=args.keyless,
        virt_fw_vars=secureboot.find_virt_fw_vars(args.virt_fw_vars),
        qemu_command=tuple(emu.command),
        machine=emu.machine,
    )
    boots: list[BootReport] = []
    if args.secure_boot_modules:
        for enrolled in (False, True):
            try:
                boots.append(boot_secure(ctx, enrolled=enrolled))
            except VmTestError as exc:
                failed = BootReport(name=f"secboot-{'enrolled' if enrolled else 'not-enrolled'}")
                failed.checks.append(Check("boot", False, str(exc)))
                boots.append(failed)
        return _finish(boots, started, run_dir, iso, accel)
    with contextlib.ExitStack() as stack:
        if args.netboot:
            netboot_dir = _serve_netboot(ctx, iso, stack)
        try:
            if args.netboot:  # first: short, and it needs none of the other boots
                boots.append(_counted(ctx, boot_netboot_bad_url, ctx, netboot_dir))
            first, first_keys = _counted(ctx, boot_full, ctx)
            boots.append(first)
            boots.append(_counted(ctx, boot_second, ctx, first, first_keys))
            # Without any DHCP there is no netboot at all (iPXE gets neither address nor
            # script); boot 3 has no SSH, and a keyless image's password is for an operator.
            if not (args.skip_no_dhcp or args.netboot or args.keyless):
                boots.append(_counted(ctx, boot_no_dhcp, ctx))
        except VmTestError as exc:
            failed = BootReport(name=f"boot{len(boots) + 1}", accel=accel.why)
            failed.checks.append(Check("boot", False, str(exc)))
            boots.append(failed)
    return _finish(boots, started, run_dir, iso, accel)


def _finish(
    boots: list[BootReport], started: float, run_dir: Path, iso: Path, accel: qemu.Accel
) -> int:
    for name in ("vmlinuz", "initrd.img"):  # copies out of the ISO, ~60 MB per run
        (run_dir / "boot" / name).unlink(missing_ok=True)
    text = render_report(boots, time.monotonic() - started, run_dir)
    (run_dir / "report.txt").write_text(text)
    (run_dir / "report.json").write_text(
        json.dumps(
            {
                "iso": str(iso),
                "accel": accel.why,
                "boots": [
                    {
                        "name": b.name,
                        "to_ssh_s": b.to_ssh_s,
                        "to_audit_s": b.to_audit_s,
                        "total_s": b.total_s,
                        "bytes_served": b.bytes_served,
                        **_phases_json(b),
                        "checks": [
                            {"name": c.name, "ok": c.ok, "detail": c.detail} for c in b.checks
                        ],
                    }
                    for b in boots
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(text, end="")
    return 0 if all(c.ok for b in boots for c in b.checks) else 1


def _serve_netboot(ctx: Context, iso: Path, stack: contextlib.ExitStack) -> Path:
    """dist/netboot/-style artefacts from the ISO in the run dir, served for every boot."""
    directory = ctx.run_dir / "netboot"
    made = netboot.make_netboot(
        iso,
        directory,
        f"http://{GUEST_ADDRESS}",
        ctx.runner,
        arguments_from=qemu.guest_arguments,
    )
    ctx.server = stack.enter_context(NetbootServer(made.directory))
    ctx.netboot = qemu.Netboot(
        tftp_dir=made.directory, bootfile="boot.ipxe", guestfwd=ctx.server.guestfwd()
    )
    sizes = {name: (directory / name).stat().st_size for name in ("initrd.img", "vmlinuz")}
    print(
        f"vm_test: netboot from http://127.0.0.1:{ctx.server.port}/ "
        f"(initrd {sizes['initrd.img'] / 1024**2:.1f} MiB, kernel "
        f"{sizes['vmlinuz'] / 1024**2:.1f} MiB)",
        flush=True,
    )
    return directory


def _counted(ctx: Context, boot, *args):  # type: ignore[no-untyped-def]
    """Run one boot; with netboot, record the bytes the server sent meanwhile."""
    before = ctx.server.served.total_bytes if ctx.server else 0
    result = boot(*args)
    report = result[0] if isinstance(result, tuple) else result
    if ctx.server is not None:
        report.bytes_served = ctx.server.served.total_bytes - before
    return result


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through `with Vm(...)`, which stops QEMU


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (nox, a CI timeout, kill) and SIGINT, even where a background shell ignores it,
    # both stop the VM on the way out instead of leaving QEMU running.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(args)
    except (
        VmTestError,
        qemu.HardwareError,
        qemu.QemuError,
        fru.FruError,
        CommandError,
        HostToolsError,
    ) as exc:
        print(f"vm_test: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vm_test: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
