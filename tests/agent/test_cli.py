"""The command line as an operator meets it: versions, usage errors, pipes, signals, stdlib only."""

from __future__ import annotations

import ast
import json
import os
import signal
import stat
import subprocess
import sys
import threading
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


def _bee_with_closed_stdout(*args: str) -> tuple[int, str]:
    """bee with its stdout a pipe whose reader is gone before bee writes a byte."""
    bee = subprocess.Popen(
        [sys.executable, "-S", "-E", "-m", "bee", *args],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert bee.stdout is not None
    bee.stdout.close()
    _, stderr = bee.communicate(timeout=60)
    return bee.returncode, stderr.decode()


def test_closed_stdout_pipe_before_the_document_is_exit_1_quietly():
    # `bee audit -o - | head -c 0`: the document never reached anyone.
    status, stderr = _bee_with_closed_stdout("audit", "--output", "-", "--no-qr")
    assert status == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_closed_summary_pipe_after_the_document_was_written_is_success(tmp_path):
    # `bee audit -o FILE | true`: the document is written; nobody reads the summary.
    status, stderr = _bee_with_closed_stdout("audit", "-o", str(tmp_path / "a.json"), "--no-qr")
    assert status == 0, stderr
    assert "Traceback" not in stderr and "could not" not in stderr
    assert json.loads((tmp_path / "a.json").read_text())["bee_version"] == __version__


def test_output_onto_a_fifo_writes_into_it_and_keeps_it(tmp_path):
    fifo = tmp_path / "doc.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = run_bee("audit", "-o", str(fifo), "--no-qr")
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(received[0])["bee_version"] == __version__
    assert [p.name for p in tmp_path.iterdir()] == ["doc.fifo"]


def test_output_onto_a_fifo_nobody_reads_fails_at_once_and_keeps_it(tmp_path):
    fifo = tmp_path / "doc.fifo"
    os.mkfifo(fifo)
    proc = run_bee("audit", "-o", str(fifo), "--no-qr", timeout=60)
    assert proc.returncode == 1
    assert f"bee: cannot write {fifo}: no process reads this FIFO" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_onto_a_directory_is_refused(tmp_path):
    proc = run_bee("audit", "-o", str(tmp_path), "--no-qr")
    assert proc.returncode == 1 and "not a regular file" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _wait_for(condition, what: str, limit_s: float = 60.0) -> None:
    """Wait until condition() holds. The limit only stops a hang: the test never goes on
    before the condition, however slow the machine is."""
    give_up = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"gave up after {limit_s:.0f} s waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_bee_and_kills_running_tools(tmp_path, sig, inherited):
    """Whatever bee's parent did with the signal: a background job of a shell without job
    control starts with SIGINT ignored, and bee then ran on and exited 0 (issue 15)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pids = tmp_path / "pids"
    fake_tool(bindir, "dmidecode", f"echo $$ >> {pids}\nexec sleep 1000\n")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    # A shell sets the disposition bee starts with: `trap '' SIG` ignores it across exec.
    trap = "''" if inherited == "ignored" else "-"
    argv = [sys.executable, "-S", "-E", "-m", "bee", "audit", "-o", str(tmp_path / "a.json")]
    bee = subprocess.Popen(
        ["sh", "-c", f'trap {trap} {sig}; exec "$@"', "sh", *argv],
        cwd=AGENT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A tool is running (bee is past start-up and waiting for it): the moment to stop bee.
    _wait_for(lambda: pids.exists() and pids.read_text().split(), "a dmidecode to start")
    bee.send_signal(sig)
    _, stderr = bee.communicate(timeout=60)
    assert bee.returncode == 128 + sig, stderr
    assert f"bee: stopped by {signal.Signals(sig).name}" in stderr.splitlines(), stderr
    assert "Traceback" not in stderr, stderr
    # bee reaps what it killed before it exits: nothing is left at the moment it is gone.
    assert not [p for p in pids.read_text().split() if pid_alive(int(p))]
    assert not (tmp_path / "a.json").exists()
    assert not list(tmp_path.glob(".a.json.*"))


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
