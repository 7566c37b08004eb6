"""ansible/fleet.yml run for real with ansible-core against nodes that are real OpenSSH servers
on loopback, each in a mount namespace of its own where /var/log, /run and /usr/local/bin are
that node's folders (its bee is this checkout's agent): the playbook reads and runs the image's
own paths, bee check included. This is not a bee image (the
QEMU run of the same playbook is in docs/fleet.md): what it proves is the playbook's SSH, wait,
fetch, failure and report logic. Skips without root, sshd, unshare or ansible-playbook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import AGENT_DIR, REPO, free_port, run_bee, wait_listening

PLAYBOOK_DIR = REPO / "ansible"
SSHD = "/usr/sbin/sshd"
QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"


def ansible_playbook() -> str | None:
    """ansible-core from PyPI in the test's environment, or on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root"),
    pytest.mark.skipif(not Path(SSHD).exists(), reason="needs sshd (apt install openssh-server)"),
    pytest.mark.skipif(shutil.which("ssh") is None, reason="needs ssh (openssh-client)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)"),
    pytest.mark.skipif(ansible_playbook() is None, reason="needs ansible-core (pip)"),
]


class Node:
    """sshd -D in its own mount namespace, its /var/log, /run and /usr/local/bin bound over
    the host's."""

    def __init__(self, base: Path, name: str, authorized_keys: Path) -> None:
        self.name = name
        self.root = base / name
        self.port = free_port()
        for folder in ("var/log", "run/bee", "run/sshd", "usr/local/bin"):
            (self.root / folder).mkdir(parents=True)
        (self.root / "run/sshd").chmod(0o755)
        bee = self.root / "usr/local/bin/bee"
        bee.write_text(f'#!/bin/sh\nPYTHONPATH={AGENT_DIR} exec python3 -m bee "$@"\n')
        bee.chmod(0o755)
        key = base / f"{name}-host-key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        config = base / f"{name}-sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
            f"AuthorizedKeysFile {authorized_keys}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {base}/{name}-sshd.pid\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        binds = " && ".join(
            f"mount --bind {self.root}/{path} /{path}"
            for path in ("var/log", "run", "usr/local/bin")
        )
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             f"{binds} && exec {SSHD} -D -e -f {config}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_listening(self.process, self.port, f"sshd for {name}")

    def audit_done(self, rc: int, document: bytes | None) -> None:
        """What bee-audit-boot leaves: the document, then /run/bee/audit-status."""
        if document is not None:
            (self.root / "var/log/bee-audit.json").write_bytes(document)
        (self.root / "run/bee/audit-status").write_text(
            f"rc={rc}\nseconds=41\nfinished=2026-12-01T10:00:00Z\n"
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> tuple[bytes, bytes]:
    """The QEMU test server's document, and the same machine with one DIMM gone."""
    out = tmp_path_factory.mktemp("docs") / "bee-audit.json"
    result = run_bee("audit", "--replay", str(QEMU_CAPTURE), "--no-qr", "-o", str(out))
    assert result.returncode == 0, result.stderr
    whole = out.read_bytes()
    document = json.loads(whole)
    dimm = next(s for s in document["memory"]["slots"] if s["populated"])
    dimm["populated"] = False
    document["memory"]["total_bytes"] -= dimm["size_bytes"]
    return whole, json.dumps(document, indent=2).encode()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Node]]]:
    key = tmp_path / "operator-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = tmp_path / "authorized_keys"
    shutil.copy(key.with_suffix(".pub"), authorized)
    nodes = {n: Node(tmp_path, n, authorized) for n in ("node1", "node2", "node3", "node4")}
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[bee]\n"
        + "".join(
            f"{n.name} ansible_host=127.0.0.1 ansible_port={n.port}\n" for n in nodes.values()
        )
        + f"[bee:vars]\nansible_ssh_private_key_file={key}\n"
    )
    yield inventory, nodes
    for node in nodes.values():
        node.stop()


def test_playbook_waits_fetches_and_reports(tmp_path, fleet, documents):
    inventory, nodes = fleet
    whole, one_dimm_less = documents
    nodes["node1"].audit_done(0, whole)
    nodes["node2"].audit_done(0, one_dimm_less)
    nodes["node4"].audit_done(1, None)  # bee audit could not write its document
    # node3's audit is still running when the playbook starts; it ends 4 s later.
    late = threading.Timer(4.0, nodes["node3"].audit_done, args=(0, whole))
    late.start()
    audits = tmp_path / "run" / "audits"
    stale = audits / "node4.json"  # from an earlier run: must not stand in for node4 now
    stale.parent.mkdir(parents=True)
    stale.write_bytes(whole)
    golden = tmp_path / "golden.json"
    golden.write_bytes(whole)
    spec = tmp_path / "spec.toml"
    made = run_bee("spec", "-o", str(spec), str(golden))
    assert made.returncode == 0, made.stderr
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOK_DIR / "ansible.cfg"))
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-local")
    env["ANSIBLE_REMOTE_TEMP"] = "/run/bee/.ansible"  # each node's own /run
    start = time.monotonic()
    result = subprocess.run(
        [ansible_playbook(), "-i", str(inventory), str(PLAYBOOK_DIR / "fleet.yml"),
         "-e", f"bee_audits_dir={audits}", "-e", f"bee_agent_dir={AGENT_DIR}",
         "-e", f"bee_spec={spec}"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    late.join()
    output = result.stdout + result.stderr
    assert result.returncode == 2, output  # 2: some hosts failed (node4)
    assert elapsed > 4.0  # node3 was waited for
    assert sorted(p.name for p in audits.iterdir()) == [
        "node1.check.json",
        "node1.json",
        "node2.check.json",
        "node2.json",
        "node3.check.json",
        "node3.json",
    ]
    # bee check ran on each node (its own /run/bee/spec.toml) and its verdict was kept.
    checks = {n: json.loads((audits / f"{n}.check.json").read_text()) for n in ("node1", "node2")}
    assert (checks["node1"]["status"], checks["node2"]["status"]) == ("ACCEPT", "REJECT")
    assert (nodes["node1"].root / "run/bee/spec.toml").read_bytes() == spec.read_bytes()
    assert "Verdicts: 2 ACCEPT, 1 REJECT" in output
    assert (audits / "node1.json").read_bytes() == whole
    assert (audits / "node2.json").read_bytes() == one_dimm_less
    assert "bee audit exited 1 on node4: journalctl -u bee-audit" in output
    assert "bee report: 3 nodes, 0 files skipped" in output
    assert "DIMMs: node2: 1 DIMM in 2 slots; 2 others: 2 DIMMs in 2 slots" in output
    assert "No audit from: node4" in output
    report = (tmp_path / "run" / "bee-report.html").read_text(encoding="utf-8")
    assert report.count("<tr") == 4  # header and three nodes
    assert (tmp_path / "run" / "bee-fleet.csv").read_text().count("\n") == 4
    assert "node1" in output and "ok=" in output


def test_batches_go_on_and_the_report_comes_when_a_whole_batch_fails(tmp_path, fleet, documents):
    """`-e bee_batch=2 -f 2`: the second batch (node3, node4) fails whole, as a rack that did
    not boot would. Ansible ends a playbook when every host of a batch failed, whatever
    max_fail_percentage says; the playbook's per-node failures must not count as such."""
    inventory, nodes = fleet
    whole, _ = documents
    nodes["node1"].audit_done(0, whole)
    nodes["node2"].audit_done(0, whole)
    nodes["node3"].audit_done(1, None)
    nodes["node4"].audit_done(1, None)
    audits = tmp_path / "run" / "audits"
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOK_DIR / "ansible.cfg"))
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-local")
    env["ANSIBLE_REMOTE_TEMP"] = "/run/bee/.ansible"
    result = subprocess.run(
        [ansible_playbook(), "-i", str(inventory), str(PLAYBOOK_DIR / "fleet.yml"), "-f", "2",
         "-e", "bee_batch=2", "-e", f"bee_audits_dir={audits}", "-e", f"bee_agent_dir={AGENT_DIR}"],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert output.count("PLAY [Fetch each node's bee audit]") == 2  # two batches ran
    assert sorted(p.name for p in audits.iterdir()) == ["node1.json", "node2.json"]
    assert "bee report: 2 nodes, 0 files skipped" in output
    assert "No audit from: node3, node4" in output
    # The run's last word names each node and why.
    assert (
        "node3: bee audit exited 1 on node3: journalctl -u bee-audit; "
        "node4: bee audit exited 1 on node4: journalctl -u bee-audit"
    ) in output
