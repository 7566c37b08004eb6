"""`nox -s fleet_vm_test`: a fleet of bee guests in QEMU, gathered for real.

    python3 -m buildtools.vm.fleet_test --iso ISO --ssh-key KEY [--guests 2] [--out dist]
        [--ansible-playbook PATH] [--spec]

Boots `--guests` copies of tests/vm/hardware.toml's server from the ISO at once, each with its
own SMBIOS serial (the second also one DIMM fewer), runs `ansible/fleet.yml` with ansible-core
against them over the SSH the image runs (forwarded from 127.0.0.1), and checks that every
guest's document came back and that `bee report` names the guest with the missing DIMM.

Every guest also boots with `bee.upload=` pointing at a WebDAV folder of an nginx this test
starts on 127.0.0.1 (the guest reaches it through a QEMU guestfwd, its user network stays
restricted otherwise), except the last, whose URL names a port nothing forwards (a server that
is down). An image with bee-upload.service must then have PUT each document and its .sha256
there, `bee report` over that folder must read those nodes, and the last guest must be fully
booted (multi-user.target active, the system running) while its upload still retries.
An image without the unit (built before it existed) is reported as such, not failed.

Writes DIR/fleet-vm-test-<time>/report.txt. Heavy (N TCG boots): run it under
`flock /work/heavy.lock` on a shared builder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from buildtools import hosttools
from buildtools.runner import Runner
from buildtools.vm import fru, qemu
from buildtools.vm.vm_test import (
    AUDIT_WAIT_S,
    SSH_WAIT_S,
    Ssh,
    VmTestError,
    timestamp,
    wait_for_audit,
    wait_for_ssh,
)

REPO = qemu.REPO_ROOT
PLAYBOOK = REPO / "ansible" / "fleet.yml"
UPLOAD_GUEST_ADDR = "10.0.2.100"  # inside each guest's user network: guestfwd to our nginx
UPLOAD_GUEST_PORT = 8080
UPLOAD_DEAD_PORT = 8081  # not forwarded: restrict=on drops it, as a server that is down
UPLOAD_WAIT_S = 300

NGINX_CONF = """{user}
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {base}/access.log;
  client_body_temp_path {base}/body;
  proxy_temp_path {base}/proxy; fastcgi_temp_path {base}/fastcgi;
  uwsgi_temp_path {base}/uwsgi; scgi_temp_path {base}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location /bee/ {{ root {base}/www; dav_methods PUT; create_full_put_path on;
                     client_max_body_size 64m; }}
  }}
}}
"""


def guest_hardware(hw: qemu.Hardware, index: int) -> qemu.Hardware:
    """Guest 1 is the description as written; guest N has serial ...-N, guest 2 a DIMM fewer."""
    system = dict(hw.system, serial=f"{hw.system.get('serial', 'S')}-{index}")
    changed = dataclasses.replace(hw, system=system)
    if index == 2 and len(hw.dimm_sizes_mib) > 1:
        changed = dataclasses.replace(changed, dimm_sizes_mib=hw.dimm_sizes_mib[:-1])
    return changed


# One relay per guest connection (guestfwd's cmd: form): its stdin/stdout to nginx. A chardev
# (`-tcp:127.0.0.1:PORT`) would connect once, at QEMU's start, and nginx closes an idle
# connection after 60 s: seen here, the guests' uploads then found nothing listening.
RELAY = """import os, select, socket, sys
upstream = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
ends = {0: upstream.fileno(), upstream.fileno(): 1}
while ends:
    for fd in select.select(list(ends), [], [])[0]:
        data = os.read(fd, 65536)
        if not data:
            if fd == 0:
                upstream.shutdown(socket.SHUT_WR)
            ends.pop(fd)
            if fd != 0:
                sys.exit(0)
            continue
        out = ends[fd]
        while data:
            data = data[os.write(out, data):]
"""


def with_guestfwd(argv: list[str], port: int, relay: Path) -> list[str]:
    """The first user netdev also forwards UPLOAD_GUEST_ADDR:UPLOAD_GUEST_PORT to our nginx."""
    out = list(argv)
    for i, word in enumerate(out):
        if word.startswith("user,id=net0,"):
            command = f"{sys.executable} {relay} {port}".replace(",", ",,")
            forward = f"tcp:{UPLOAD_GUEST_ADDR}:{UPLOAD_GUEST_PORT}-cmd:{command}"
            out[i] = f"{word},guestfwd={forward}"
            return out
    raise VmTestError("no user network on the first NIC to forward the upload through")


class Nginx:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = qemu.free_port()
        for name in ("www/bee", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (base / name).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = base / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, base=base, port=self.port))
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(base), "-c", str(conf), "-e", str(base / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def folder(self) -> Path:
        return self.base / "www" / "bee"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run_dir = (args.out / f"fleet-vm-test-{timestamp()}").resolve()
    run_dir.mkdir(parents=True)
    hw = qemu.load_hardware()
    lines: list[str] = [f"fleet_vm_test: {args.guests} guests from {args.iso}"]
    nginx: Nginx | None = None
    vms: list[qemu.Vm] = []
    guests: dict[str, Ssh] = {}
    try:
        with Runner(run_dir / "fleet-vm-test.log") as runner:
            hosttools.ensure("fleet_vm_test", runner)
            nginx = Nginx(run_dir / "nginx")
            relay = run_dir / "relay.py"
            relay.write_text(RELAY)
            boot = qemu.extract_boot_files(args.iso, run_dir / "boot", runner)
            accel = qemu.probe_kvm(boot.kernel, run_dir, runner)
            lines.append(accel.why)
            for index in range(1, args.guests + 1):
                name = f"guest{index}"
                # The last guest's server is down (a port nothing forwards): its boot must
                # not wait for the upload.
                port_in_guest = UPLOAD_DEAD_PORT if index == args.guests else UPLOAD_GUEST_PORT
                url = f"http://{UPLOAD_GUEST_ADDR}:{port_in_guest}/bee/"
                append = f"{boot.append} bee.upload={url}"
                guest_hw = guest_hardware(hw, index)
                fru_path, sdr_path = fru.write_images(list(guest_hw.fru_devices), run_dir / name)
                port = qemu.free_port()
                argv = qemu.machine_args(
                    guest_hw, accel=accel, boot=dataclasses.replace(boot, append=append),
                    iso=args.iso, fru_path=fru_path,
                    sdr_path=sdr_path, serial_log=run_dir / f"{name}-serial.log", ssh_port=port,
                )  # fmt: skip
                argv = with_guestfwd(argv, nginx.port, relay)
                (run_dir / f"{name}-qemu-argv.txt").write_text("\n".join(argv) + "\n")
                vm = qemu.Vm(argv, run_dir / f"{name}-qemu-stderr.log")
                vms.append(vm.__enter__())
                guests[name] = Ssh(key=args.ssh_key, port=port, known_hosts=run_dir / f"{name}-kh")
            for (name, ssh), vm in zip(guests.items(), vms, strict=True):
                lines.append(f"{name}: SSH after {wait_for_ssh(ssh, vm, SSH_WAIT_S):.0f} s")
            for (name, ssh), vm in zip(guests.items(), vms, strict=True):
                lines.append(f"{name}: audit done {wait_for_audit(ssh, vm, AUDIT_WAIT_S):.0f} s")
            ok = _playbook(args, run_dir, guests, lines)
            ok = _uploads(run_dir, guests, nginx, lines) and ok
    except (VmTestError, hosttools.HostToolsError, qemu.QemuError) as exc:
        lines.append(f"FAIL: {exc}")
        ok = False
    finally:
        for vm in vms:
            vm.stop()
        if nginx is not None:
            nginx.stop()
        for name in ("vmlinuz", "initrd.img"):
            (run_dir / "boot" / name).unlink(missing_ok=True)
    lines.append(f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s ({run_dir})")
    text = "\n".join(lines) + "\n"
    (run_dir / "report.txt").write_text(text)
    sys.stdout.write(text)
    return 0 if ok else 1


def _playbook(
    args: argparse.Namespace, run_dir: Path, guests: dict[str, Ssh], lines: list[str]
) -> bool:
    inventory = run_dir / "inventory.ini"
    inventory.write_text(
        "[bee]\n"
        + "".join(f"{n} ansible_host=127.0.0.1 ansible_port={s.port}\n" for n, s in guests.items())
        + f"[bee:vars]\nansible_ssh_private_key_file={args.ssh_key}\n"
    )
    audits = run_dir / "pulled" / "audits"
    extra = ["-e", f"bee_audits_dir={audits}", "-e", f"bee_agent_dir={REPO / 'agent'}"]
    if args.spec:
        extra += ["-e", f"bee_spec={args.spec}"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOK.parent / "ansible.cfg"))
    start = time.monotonic()
    result = subprocess.run(
        [args.ansible_playbook, "-i", str(inventory), str(PLAYBOOK), *extra],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
    )  # fmt: skip
    (run_dir / "ansible-playbook.log").write_text(result.stdout + result.stderr)
    lines.append(f"ansible-playbook exit {result.returncode} in {time.monotonic() - start:.0f} s")
    fetched = sorted(p.name for p in audits.glob("guest*.json")) if audits.is_dir() else []
    lines.append(f"fetched: {', '.join(fetched) or 'nothing'}")
    report = [line.strip(' ",') for line in result.stdout.splitlines() if "DIMMs:" in line]
    lines.extend(f"report: {line}" for line in report)
    wanted = {f"{name}.json" for name in guests}
    # Two guests tie ("no majority: guest2: ...; guest1: ..."); with more, guest2 is the odd one.
    named = any(line.startswith("DIMMs: ") and "guest2: 1 DIMM" in line for line in report)
    return result.returncode == 0 and wanted <= set(fetched) and named


def _uploads(run_dir: Path, guests: dict[str, Ssh], nginx: Nginx, lines: list[str]) -> bool:
    """What bee-upload.service PUT at boot, if the image has it."""
    ssh = guests["guest1"]
    has_unit = ssh.run("test -f /etc/systemd/system/bee-upload.service").returncode == 0
    if not has_unit:
        lines.append("upload: this image has no bee-upload.service (built before it): not tested")
        return True
    *up, down = guests.items()
    end = time.monotonic() + UPLOAD_WAIT_S
    while time.monotonic() < end and len(list(nginx.folder.glob("*.json"))) < len(up):
        time.sleep(3)
    for name, ssh in up:
        status = _ask(ssh, "cat /run/bee/upload-status")
        (run_dir / f"{name}-upload-status").write_text(status)
        result = next((x for x in status.splitlines() if x.startswith("result=")), "none")
        lines.append(f"upload: {name}: {result}; motd: " + _motd_upload(ssh))
    # The guest whose server is down: booted all the way while bee upload still retries.
    name, ssh = down
    states = (
        ssh.run(
            "systemctl is-active multi-user.target bee-audit.service bee-upload.service; "
            "systemctl is-system-running"
        )
        .stdout.decode(errors="replace")
        .split()
    )
    lines.append(f"upload: {name} (server down): multi-user, audit, upload, system: {states}")
    lines.append(f"upload: {name}: motd: {_motd_upload(ssh)}")
    held = states[:3] != ["active", "active", "active"] or states[3:] not in (
        ["running"],
        ["degraded"],
    )
    stored = sorted(p.name for p in nginx.folder.iterdir())
    lines.append(f"upload: nginx holds {', '.join(stored) or 'nothing'}")
    pushed = run_dir / "pushed.html"
    report = subprocess.run(
        [sys.executable, "-m", "bee", "report", str(nginx.folder), "-o", str(pushed)],
        cwd=REPO / "agent", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines.extend(f"upload report: {line}" for line in report.stdout.splitlines()[:4])
    docs = list(nginx.folder.glob("*.json"))
    sums = list(nginx.folder.glob("*.json.sha256"))
    count = len(up)
    pushed_ok = len(docs) == count == len(sums) and f"{count} nodes, 0 files" in report.stdout
    return pushed_ok and not held


def _ask(ssh: Ssh, command: str) -> str:
    """A command's output over SSH; a TCG guest under load misses ssh's 5 s connect now and
    then (exit 255), so that is tried again."""
    for _ in range(5):
        result = ssh.run(command, timeout=120)
        if result.returncode != 255:
            return result.stdout.decode(errors="replace")
        time.sleep(3)
    return ""


def _motd_upload(ssh: Ssh) -> str:
    motd = _ask(ssh, "sh /etc/update-motd.d/50-bee")
    return next((x for x in motd.splitlines() if x.startswith("Upload:")), "(no Upload line)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m buildtools.vm.fleet_test", description=__doc__
    )
    parser.add_argument("--iso", type=Path, required=True)
    parser.add_argument("--ssh-key", type=Path, required=True, help="private key the ISO trusts")
    parser.add_argument("--guests", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--spec", type=Path, help="also run bee check on each guest (bee_spec)")
    parser.add_argument(
        "--ansible-playbook",
        default=shutil.which("ansible-playbook")
        or str(Path(sys.executable).parent / "ansible-playbook"),
    )
    args = parser.parse_args(argv)
    if args.guests < 2:
        parser.error("--guests: a fleet needs at least 2")
    for path in (args.iso, args.ssh_key):
        if not path.is_file():
            parser.error(f"{path} does not exist")
    if not Path(args.ansible_playbook).exists():
        parser.error("ansible-playbook not found (pip install ansible-core)")
    args.iso, args.ssh_key = args.iso.resolve(), args.ssh_key.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("fleet_vm_test: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
