"""bee-audit-boot and the motd, run for real (sh, the shipped zipapp, real coreutils).

The script runs with its paths pointed into a temporary directory (BEE_RUN_DIR,
BEE_AUDIT_OUTPUT, BEE_AUDIT_CMDLINE, BEE_AUDIT_DEV, BEE_AUDIT_BEE) and a PATH holding only the
tools it uses, so it never loads a module or writes to this host's consoles.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildtools.image import staging
from conftest import fake_tool, pid_alive

REPO = Path(__file__).resolve().parents[2]
AUDIT_BOOT = REPO / "iso/overlay/usr/local/lib/bee/bee-audit-boot"
MOTD = REPO / "iso/overlay/etc/update-motd.d/50-bee"
QEMU_CAPTURE = REPO / "tests/vm/qemu-q35/bee-capture"
# What bee-audit-boot and 50-bee run besides shell built-ins (not modprobe: never on this host).
TOOLS = ("cat", "date", "mkdir", "mv", "timeout", "tee", "python3", "sed", "sleep")
SH = shutil.which("sh") or "/bin/sh"


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory) -> Path:
    """The bee the image ships as /usr/local/bin/bee."""
    return staging.package_agent(staging.AGENT_DIR, tmp_path_factory.mktemp("agent")).zipapp


def boot_env(root: Path, bee: Path, cmdline: str) -> dict[str, str]:
    bindir = root / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in TOOLS:
        # python3 is the interpreter running the tests: on PATH it may be a wrapper script
        # (pyenv's shim runs `env bash`, and bash is not in this PATH).
        found = sys.executable if tool == "python3" else shutil.which(tool)
        assert found, f"{tool} is needed to run bee-audit-boot"
        (bindir / tool).symlink_to(found)
    (root / "cmdline").write_text(cmdline + "\n")
    (root / "dev").mkdir()
    return {
        "PATH": str(bindir),
        "BEE_RUN_DIR": str(root / "run/bee"),
        "BEE_AUDIT_OUTPUT": str(root / "bee-audit.json"),
        "BEE_AUDIT_CMDLINE": str(root / "cmdline"),
        "BEE_AUDIT_DEV": str(root / "dev"),
        "BEE_AUDIT_BEE": str(bee),
        "BEE_SPEC_FILE": str(root / "no-baked-spec.toml"),
    }


def status(root: Path) -> dict[str, str]:
    lines = (root / "run/bee/audit-status").read_text().splitlines()
    return dict(line.partition("=")[::2] for line in lines)


def motd(env: dict[str, str]) -> str:
    result = subprocess.run(
        [SH, str(MOTD)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def replaying_bee(root: Path, zipapp: Path) -> Path:
    """The shipped zipapp, over the QEMU guest's capture instead of this host's tools."""
    return fake_tool(
        root,
        "bee",
        f'exec python3 -S -E {zipapp} "$@" --no-qr --replay {QEMU_CAPTURE}\n',
    )


def test_kernel_arguments_are_words_not_globs(tmp_path: Path, zipapp: Path) -> None:
    """`bee.spec=specs/spec?.toml` is the path the kernel was given. The old
    `for arg in $(cat /proc/cmdline)` let the shell expand each word as a glob against its
    working directory: with `bee.spec=specs/spec1.toml` there, bee was handed that file
    instead (review B.1.14; low risk, shown here with a directory made to match)."""
    cwd = tmp_path / "cwd"
    (cwd / "bee.spec=specs").mkdir(parents=True)
    (cwd / "bee.spec=specs/spec1.toml").write_text(
        'spec_version = 1\n[[check]]\nid = "CPU"\nselect = "cpu"\ncount = 1\n'
    )
    env = boot_env(tmp_path, replaying_bee(tmp_path, zipapp), "quiet bee.spec=specs/spec?.toml")
    result = subprocess.run(
        [SH, str(AUDIT_BOOT)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((tmp_path / "bee-audit.json").read_text())
    assert document["verdict"]["spec"] == "specs/spec?.toml"
    assert document["verdict"]["status"] == "REJECT"  # no such file, relative to bee's cwd
    assert status(tmp_path)["rc"] == "0" and "stopped" not in status(tmp_path)
    assert "Audit: finished without errors" in motd(env)


def test_an_audit_stopped_by_systemd_leaves_a_status_that_says_so(tmp_path: Path, zipapp: Path):
    """TimeoutStartSec= or `systemctl stop`: systemd sends SIGTERM to the unit's every process.
    The status must still be written, and the motd must not say "still running" (B.1.15)."""
    pids = tmp_path / "tool-pids"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # A tool that hangs, as a dying disk or BMC makes one: the audit is running when stopped.
    fake_tool(bindir, "dmidecode", f"echo $$ >> {pids}\nexec sleep 1000\n")
    env = {**boot_env(tmp_path, zipapp, "quiet"), "BEE_AUDIT_DEADLINE": "100"}
    proc = subprocess.Popen(
        [SH, str(AUDIT_BOOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        limit = time.monotonic() + 60  # a hang guard only
        while not (pids.exists() and pids.read_text().strip()):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < limit, "bee never ran dmidecode"
            time.sleep(0.05)
        tool = int(pids.read_text().split()[0])
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert not pid_alive(tool)
    recorded = status(tmp_path)
    assert recorded["rc"] == "143" and recorded["stopped"] == "SIGTERM", recorded
    assert "stopped by SIGTERM" in output
    shown = motd(env)
    assert "Audit: STOPPED by SIGTERM" in shown and "still running" not in shown
