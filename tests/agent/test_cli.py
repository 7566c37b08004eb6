"""The command line as an operator meets it: versions, usage errors, pipes, signals, stdlib only."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bee import __version__
from conftest import AGENT_DIR, fake_tool, pid_alive, run_bee


def test_version_and_help():
    proc = run_bee("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"bee {__version__}")
    proc = run_bee("--help")
    assert proc.returncode == 0 and "audit" in proc.stdout and "parse" in proc.stdout


def test_parse_unknown_tool_and_missing_file_are_one_line_exit_2(tmp_path):
    proc = run_bee("parse", "frobnicate", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unknown tool" in proc.stderr
    proc = run_bee("parse", "lspci", str(tmp_path / "missing.txt"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_closed_stdout_pipe_ends_quietly():
    # `bee audit -o - | head -c 10`: the reader leaves early; bee must not print a traceback.
    bee = subprocess.Popen(
        [sys.executable, "-S", "-E", "-m", "bee", "audit", "--output", "-", "--no-qr"],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert bee.stdout is not None and bee.stderr is not None
    bee.stdout.read(10)
    bee.stdout.close()
    stderr = bee.stderr.read().decode()
    bee.wait(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_ends_quietly_and_kills_running_tools(tmp_path, sig):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pids = tmp_path / "pids"
    fake_tool(bindir, "dmidecode", f"echo $$ >> {pids}\nexec sleep 1000\n")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    bee = subprocess.Popen(
        [sys.executable, "-S", "-E", "-m", "bee", "audit", "-o", str(tmp_path / "a.json")],
        cwd=AGENT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while (not pids.exists() or len(pids.read_text().split()) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    bee.send_signal(sig)
    _, stderr = bee.communicate(timeout=30)
    assert bee.returncode in (130, 128 + sig)
    assert "Traceback" not in stderr
    time.sleep(0.2)
    assert not [p for p in pids.read_text().split() if pid_alive(int(p))]
    assert not (tmp_path / "a.json").exists()


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_agent_imports_only_the_standard_library():
    foreign = {}
    for path in sorted((AGENT_DIR / "bee").rglob("*.py")):
        extra = _imports(path) - set(sys.stdlib_module_names) - {"bee", "__future__"}
        if extra:
            foreign[str(path.relative_to(AGENT_DIR))] = sorted(extra)
    assert not foreign, f"third-party imports in the agent: {foreign}"


def test_agent_runs_with_site_packages_disabled(tmp_path):
    # -S -E: no site-packages, no PYTHON* variables; what the ISO's python3 has.
    proc = run_bee("audit", "--output", str(tmp_path / "a.json"), "--no-qr")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "a.json").read_text())["bee_version"] == __version__
