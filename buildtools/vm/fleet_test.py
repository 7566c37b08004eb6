"""`nox -s fleet_vm_test`: a fleet of bee guests in QEMU, gathered for real.

    python3 -m buildtools.vm.fleet_test --iso ISO --ssh-key KEY [--guests 2] [--out dist]
        [--upload-to webdav|s3] [--ansible-playbook PATH] [--spec SPEC]

Boots `--guests` copies of tests/vm/hardware.toml's server from the ISO at once, each with its
own SMBIOS serial (the second also one DIMM fewer), runs `ansible/fleet.yml` with ansible-core
against them over the SSH the image runs (forwarded from 127.0.0.1), with `bee check` on each
guest against the hardware's spec, and checks that every guest's document came back, that
guest2 alone was rejected and that `bee report` names its missing DIMM.

Every guest also boots with `bee.upload="URL"` (quoted, as GRUB needs for a URL with `&`) for a
server this test starts on 127.0.0.1, reached through a QEMU guestfwd (the guests' user network
stays restricted otherwise): `--upload-to webdav` (default) a WebDAV folder of nginx,
`--upload-to s3` a SigV4 presigned PUT URL per guest for OpenStack Swift's S3 API
(buildtools/swift_s3.py), `--upload-to baked` none but the last guest's (the image was built
with `--upload-url http://10.0.2.100:8080/bee/`; the command line's URL must win over it). The
last guest's URL names a port nothing forwards instead (a server that is down). An image with
bee-upload.service must then have PUT each other document there, for WebDAV as `<serial>-<boot
id>.json` (the guest's serial and /proc boot id) with a `.sha256` that `sha256sum -c` accepts,
for S3 under the presigned key; byte for byte what the playbook fetched over SSH, its sha256 in
the guest's status file; the outcome must be in the guest's journal, /run/bee/upload-status and
motd; `bee report` over what was pushed must read those nodes. The last guest must be fully
booted (multi-user.target active, the system running) while its upload still retries, and after
its time limit say FAILED in its journal and motd, with nothing of it on the server. An image
without the unit is reported as such.

Writes DIR/fleet-vm-test-<time>/report.txt. Heavy (N TCG boots): run it under
`flock /work/heavy.lock` on a shared builder.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from buildtools import hosttools, swift_s3
from buildtools.runner import Runner
from buildtools.vm import emulator, fru, hwspec, qemu
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
UPLOAD_DOWN_WAIT_S = 420  # its unit's RuntimeMaxSec is 360 s

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


GUEST_ENDPOINT = f"http://{UPLOAD_GUEST_ADDR}:{UPLOAD_GUEST_PORT}"


class WebDav:
    """--upload-to webdav: every guest gets the folder URL; bee names the object and PUTs a
    .sha256 beside it."""

    what = "nginx WebDAV"
    sidecars = True

    def __init__(self, base: Path) -> None:
        self.nginx = Nginx(base)
        self.port = self.nginx.port

    def url(self, guest: str) -> str:
        return f"{GUEST_ENDPOINT}/bee/"

    def key(self, guest: str, name: str) -> str:
        return name

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.nginx.folder.iterdir() if p.is_file())

    def landed(self) -> int:
        return sum(key.endswith(".json.sha256") for key in self.keys())  # written last

    def read(self, key: str) -> bytes | None:
        path = self.nginx.folder / key
        return path.read_bytes() if path.is_file() else None

    def folder(self, run_dir: Path) -> Path:
        return self.nginx.folder

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in (self.nginx.base / "body").iterdir())

    def stop(self) -> None:
        self.nginx.stop()


class S3:
    """--upload-to s3: every guest gets its own SigV4 presigned PUT URL (as an operator makes
    one per node) of an OpenStack Swift S3 API, signed for the address the guest reaches."""

    what = "Swift S3 API"
    sidecars = False

    def __init__(self, base: Path) -> None:
        if not swift_s3.available():
            raise VmTestError("--upload-to s3 needs Debian's python3-swift (apt install)")
        try:
            self.swift = swift_s3.SwiftS3(base)
        except (swift_s3.SwiftError, OSError) as exc:
            raise VmTestError(f"Swift S3: {exc}") from None
        self.port = self.swift.port

    def url(self, guest: str) -> str:
        return swift_s3.presign_put(GUEST_ENDPOINT, f"fleet/{guest}.json", expires_s=7200)

    def key(self, guest: str, name: str) -> str:
        return f"fleet/{guest}.json"

    def keys(self) -> list[str]:
        return self.swift.stored_keys()

    def landed(self) -> int:
        return len(self.keys())

    def read(self, key: str) -> bytes | None:
        return self.swift.get(key) if key in self.keys() else None

    def folder(self, run_dir: Path) -> Path:
        """The objects as files, for bee report."""
        folder = run_dir / "pushed-s3"
        folder.mkdir(exist_ok=True)
        for key in self.keys():
            (folder / key.replace("/", "_")).write_bytes(self.swift.get(key))
        return folder

    def leftovers(self) -> list[str]:
        return []

    def stop(self) -> None:
        self.swift.stop()


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run_dir = (args.out / f"fleet-vm-test-{timestamp()}").resolve()
    run_dir.mkdir(parents=True)
    hw = qemu.load_hardware()
    lines: list[str] = [f"fleet_vm_test: {args.guests} guests from {args.iso}"]
    store: WebDav | S3 | None = None
    vms: list[qemu.Vm] = []
    guests: dict[str, Ssh] = {}
    serials: dict[str, str] = {}
    try:
        with Runner(run_dir / "fleet-vm-test.log") as runner:
            hosttools.ensure("fleet_vm_test", runner)
            store = S3(run_dir / "swift") if args.upload_to == "s3" else WebDav(run_dir / "nginx")
            lines.append(f"upload to: {store.what}")
            relay = run_dir / "relay.py"
            relay.write_text(RELAY)
            boot = qemu.extract_boot_files(args.iso, run_dir / "boot", runner)
            emu = emulator.resolve(args.out.resolve(), runner, host_only=args.host_qemu)
            lines.append(emu.why)
            accel = qemu.probe_kvm(boot.kernel, run_dir, runner, qemu_command=emu.command)
            lines.append(accel.why)
            for index in range(1, args.guests + 1):
                name = f"guest{index}"
                # The last guest's server is down (a port nothing forwards): its boot must
                # not wait for the upload.
                if index == args.guests:  # on the command line even when baked: it wins
                    url = f"http://{UPLOAD_GUEST_ADDR}:{UPLOAD_DEAD_PORT}/bee/"
                else:
                    url = None if args.upload_to == "baked" else store.url(name)
                # Quoted as an operator must in GRUB (a presigned URL holds &).
                append = boot.append + (f' bee.upload="{url}"' if url else "")
                guest_hw = guest_hardware(hw, index)
                fru_path, sdr_path = fru.write_images(list(guest_hw.fru_devices), run_dir / name)
                port = qemu.free_port()
                argv = qemu.machine_args(
                    guest_hw, accel=accel, boot=dataclasses.replace(boot, append=append),
                    iso=args.iso, fru_path=fru_path,
                    sdr_path=sdr_path, serial_log=run_dir / f"{name}-serial.log", ssh_port=port,
                    qemu_command=emu.command, machine=emu.machine,
                )  # fmt: skip
                argv = with_guestfwd(argv, store.port, relay)
                (run_dir / f"{name}-qemu-argv.txt").write_text("\n".join(argv) + "\n")
                vm = qemu.Vm(argv, run_dir / f"{name}-qemu-stderr.log")
                vms.append(vm.__enter__())
                serials[name] = str(guest_hw.system.get("serial", ""))
                guests[name] = Ssh(key=args.ssh_key, port=port, known_hosts=run_dir / f"{name}-kh")
            for (name, ssh), vm in zip(guests.items(), vms, strict=True):
                lines.append(f"{name}: SSH after {wait_for_ssh(ssh, vm, SSH_WAIT_S):.0f} s")
            for (name, ssh), vm in zip(guests.items(), vms, strict=True):
                lines.append(f"{name}: audit done {wait_for_audit(ssh, vm, AUDIT_WAIT_S):.0f} s")
            ok = _playbook(args, run_dir, guests, lines)
            ok = _uploads(run_dir, guests, serials, store, lines) and ok
    except (VmTestError, hosttools.HostToolsError, qemu.QemuError) as exc:
        lines.append(f"FAIL: {exc}")
        ok = False
    finally:
        for vm in vms:
            vm.stop()
        if store is not None:
            store.stop()
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
    spec = args.spec
    if spec is None:  # the hardware's own spec: guest2, a DIMM short, must be rejected
        spec = run_dir / "hardware-spec.toml"
        spec.write_text(hwspec.hardware_spec(qemu.load_hardware()))
    extra += ["-e", f"bee_spec={spec}"]
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
    report = [
        line.strip(' ",')
        for line in result.stdout.splitlines()
        if "DIMMs:" in line or "Verdicts:" in line or "Verdict:" in line
    ]
    lines.extend(f"report: {line}" for line in report)
    wanted = {f"{name}.json" for name in guests}
    checked = sorted(p.name for p in audits.glob("guest*.check.json")) if audits.is_dir() else []
    lines.append(f"bee check on the guests: {', '.join(checked) or 'nothing'}")
    # Two guests tie ("no majority: guest2: ...; guest1: ..."); with more, guest2 is the odd one.
    named = any(line.startswith("DIMMs: ") and "guest2: 1 DIMM" in line for line in report)
    judged = args.spec is not None or any(
        line == f"Verdicts: {len(guests) - 1} ACCEPT, 1 REJECT" for line in report
    )
    return result.returncode == 0 and wanted <= set(fetched) and named and judged


def _uploads(
    run_dir: Path, guests: dict[str, Ssh], serials: dict[str, str], store: WebDav | S3,
    lines: list[str],
) -> bool:  # fmt: skip
    """What bee-upload.service PUT at boot, if the image has it: for every guest whose server
    is up, `<serial>-<boot id>.json` byte for byte the guest's document, its .sha256 right,
    the outcome in the guest's journal and motd; the last guest (server down) fully booted while
    its upload retries, then the failure in its journal and motd, and nothing of it stored."""
    ssh = guests["guest1"]
    has_unit = ssh.run("test -f /etc/systemd/system/bee-upload.service").returncode == 0
    if not has_unit:
        lines.append("upload: this image has no bee-upload.service (built before it): not tested")
        return True
    *up, down = guests.items()
    end = time.monotonic() + UPLOAD_WAIT_S
    while time.monotonic() < end and store.landed() < len(up):
        time.sleep(3)
    ok = True
    for name, ssh in up:
        ok = _landed(run_dir, name, ssh, serial=serials[name], store=store, lines=lines) and ok
    # The guest whose server is down: booted all the way while bee upload still retries.
    name, ssh = down
    states = _ask(
        ssh,
        "systemctl is-active multi-user.target bee-audit.service bee-upload.service; "
        "systemctl is-system-running",
    ).split()
    lines.append(f"upload: {name} (server down): multi-user, audit, upload, system: {states}")
    lines.append(f"upload: {name}: motd while retrying: {_motd_upload(ssh)}")
    # multi-user.target is ordered after the units it wants: it is reached as the upload starts.
    times = _ask(
        ssh,
        "systemctl show -P ExecMainStartTimestampMonotonic bee-upload.service; "
        "systemctl show -P ActiveEnterTimestampMonotonic multi-user.target",
    ).split()
    if len(times) == 2 and all(t.isdigit() for t in times):
        start_us, target_us = (int(t) for t in times)
        lines.append(
            f"upload: {name}: upload started {start_us / 1e6:.1f} s after boot, multi-user.target "
            f"reached {target_us / 1e6:.1f} s"
        )
    held = states[:3] != ["active", "active", "active"] or states[3:] not in (
        ["running"],
        ["degraded"],
    )
    ok = ok and not held
    # Then its end: the unit's own time limit (300 s from the audit's end), failed, in words.
    end = time.monotonic() + UPLOAD_DOWN_WAIT_S
    while time.monotonic() < end and _still_running(ssh, "bee-upload.service"):
        time.sleep(10)
    status, journal = _upload_record(run_dir, name, ssh)
    failed = [x for x in journal.splitlines() if x.startswith("bee upload: FAILED")]
    motd = _motd_upload(ssh)
    lines.append(f"upload: {name}: journal: {failed[-1] if failed else '(no FAILED line)'}")
    lines.append(f"upload: {name}: {_field(status, 'result')}, "
                 f"{_field(status, 'attempts')} attempts in {_field(status, 'seconds')} s; "
                 f"motd: {motd}")  # fmt: skip
    stored = store.keys()
    stray = [key for key in stored if key.startswith(f"{serials[name]}-") or f"/{name}." in key]
    ok = ok and bool(failed) and _field(status, "result") == "failed" and "FAILED" in motd
    ok = ok and not stray
    lines.append(f"upload: {store.what} holds {', '.join(stored) or 'nothing'}")
    temp = store.leftovers()
    if store.sidecars:
        lines.append(f"upload: nginx body temp files left: {len(temp)}")
    pushed = run_dir / "pushed.html"
    report = subprocess.run(
        [sys.executable, "-m", "bee", "report", str(store.folder(run_dir)), "-o", str(pushed)],
        cwd=REPO / "agent", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines.extend(f"upload report: {line}" for line in report.stdout.splitlines()[:4])
    nodes = f"{len(up)} node{'s' if len(up) != 1 else ''}, 0 files skipped"
    return ok and nodes in report.stdout and not temp


def _upload_record(run_dir: Path, name: str, ssh: Ssh) -> tuple[str, str]:
    """The guest's upload status file and bee-upload's journal, kept in the run directory."""
    status = _ask(ssh, "cat /run/bee/upload-status")
    (run_dir / f"{name}-upload-status").write_text(status)
    journal = _ask(ssh, "journalctl -b -u bee-upload.service -o cat --no-pager")
    (run_dir / f"{name}-upload-journal.txt").write_text(journal)
    return status, journal


def _landed(
    run_dir: Path, name: str, ssh: Ssh, *, serial: str, store: WebDav | S3, lines: list[str]
) -> bool:
    """One guest's boot upload: named as the issue gives it (`<serial>-<boot id>.json`; under
    a presigned URL's own key), whole, with its sha256 beside it where the store takes one."""
    boot_id = _ask(ssh, "cat /proc/sys/kernel/random/boot_id").strip()
    expected = f"{serial}-{boot_id}.json"
    key = store.key(name, expected)
    stored = store.read(key)
    status, journal = _upload_record(run_dir, name, ssh)
    sent = [x for x in journal.splitlines() if x.startswith("bee upload: ")]
    motd = _motd_upload(ssh)
    pulled = run_dir / "pulled" / "audits" / f"{name}.json"  # the playbook's copy, over SSH
    same = stored is not None and pulled.is_file() and stored == pulled.read_bytes()
    digest = hashlib.sha256(stored).hexdigest() if stored is not None else "-"
    lines.append(
        f"upload: {name}: {key} {'stored' if stored is not None else 'MISSING'}"
        f"{', same bytes as the node' if same else ', NOT the node document'}; "
        f"sha256 {digest}, in the status file: {_field(status, 'sha256') == digest}"
    )
    ok = same and _field(status, "sha256") == digest
    if store.sidecars:
        side = (store.read(f"{key}.sha256") or b"").decode(errors="replace")
        check = subprocess.run(
            ["sha256sum", "-c", f"{key}.sha256"], cwd=store.folder(run_dir), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        lines.append(
            f"upload: {name}: .sha256 {'matches' if side.split()[:1] == [digest] else 'WRONG'}, "
            f"sha256sum -c: {check.stdout.strip() or check.stderr.strip()}"
        )
        ok = ok and side.split()[:1] == [digest] and check.returncode == 0
    lines.append(f"upload: {name}: journal: {sent[-1] if sent else '(no bee upload line)'}")
    lines.append(f"upload: {name}: status {_field(status, 'result')}; motd: {motd}")
    return (
        ok
        and _field(status, "result") == "ok"
        and _field(status, "name") == expected
        and any(expected in x and " sent to " in x for x in sent)
        and motd.startswith("Upload: sent to ")
    )


def _still_running(ssh: Ssh, unit: str) -> bool:
    return _ask(ssh, f"systemctl is-active {unit}").strip() in ("active", "activating", "")


def _field(status: str, key: str) -> str:
    return next((x[len(key) + 1 :] for x in status.splitlines() if x.startswith(f"{key}=")), "")


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
    parser.add_argument(
        "--upload-to",
        choices=("webdav", "s3", "baked"),
        default="webdav",
        help="the boot uploads' server: nginx WebDAV (a folder URL), OpenStack Swift's S3 API "
        "(a presigned URL per guest; needs python3-swift), or nginx WebDAV at the URL the ISO "
        f"has baked in (build_iso --upload-url {GUEST_ENDPOINT}/bee/): no bee.upload= but the "
        "last guest's",
    )
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument(
        "--host-qemu", action="store_true", help="the host's QEMU even when it is older"
    )
    parser.add_argument(
        "--spec",
        type=Path,
        help="bee check each guest against this spec (bee_spec); default: the hardware's own "
        "spec (buildtools/vm/hwspec.py), which guest2, a DIMM short, must fail",
    )
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
