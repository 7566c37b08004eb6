"""buildtools.runner: every builder command's timeout, log, progress line and error shape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from buildtools.runner import CommandError, Runner, tail, wait_listening
from conftest import free_port


def test_output_is_kept_and_logged_with_the_command_and_its_exit(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "build.log"
    with Runner(log) as runner:
        result = runner.run(
            ["sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"], timeout_s=30
        )
    assert result.code == 0
    assert result.stdout == "hello\nno newline"
    assert sorted(result.output.splitlines()) == ["hello", "no newline", "oops"]
    text = log.read_text()
    assert "$ sh -c echo hello" in text
    assert "oops\n" in text
    assert text.rstrip().endswith("[exit 0]")


def test_a_failure_is_one_line_with_the_last_lines(tmp_path: Path) -> None:
    with Runner(tmp_path / "b.log") as runner:
        with pytest.raises(CommandError) as caught:
            runner.run(["sh", "-c", "echo one; echo two >&2; exit 3"], timeout_s=30)
        assert (
            str(caught.value) == "sh -c echo one; echo two >&2; exit 3 failed (exit 3): one | two"
        )
        with pytest.raises(
            CommandError, match=r"^apt-get update failed \(exit 1\): \(no output\)$"
        ):
            runner.run(["sh", "-c", "exit 1"], timeout_s=30, name="apt-get update")
        assert runner.run(["sh", "-c", "exit 4"], timeout_s=30, check=False).code == 4
    assert "[exit 3]" in (tmp_path / "b.log").read_text()


def test_a_missing_program_names_its_debian_package(tmp_path: Path) -> None:
    runner = Runner(tmp_path / "b.log")
    with pytest.raises(
        CommandError, match=r"^/nonexistent/modinfo not found \(Debian package kmod\)$"
    ):
        runner.run(["/nonexistent/modinfo", "-F", "vermagic"], timeout_s=30)
    with pytest.raises(CommandError, match=r"^/nonexistent/tool not found$"):
        runner.run(["/nonexistent/tool"], timeout_s=30)
    with pytest.raises(CommandError, match=r"cannot start: Permission denied"):
        runner.run([tmp_path], timeout_s=30)


def test_a_hung_command_and_its_children_are_stopped_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runner = Runner(tmp_path / "b.log")
    with pytest.raises(CommandError, match=r"^sh -c sleep 60 & echo .* timed out after 0\.5 s$"):
        runner.run(["sh", "-c", f"sleep 60 & echo $! > {pids}; wait"], timeout_s=0.5)
    child = int(pids.read_text())
    _wait_for(lambda: not _alive(child))  # the group was sent TERM (a zombie counts as gone)
    assert "[timed out after 0.5 s]" in (tmp_path / "b.log").read_text()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_silent_command_that_outlives_its_timeout_is_stopped(tmp_path: Path) -> None:
    """No output at all, and stdout closed early: the timeout still holds."""
    runner = Runner(tmp_path / "b.log")
    with pytest.raises(CommandError, match="timed out"):
        runner.run(["sh", "-c", "exec >&- 2>&-; sleep 60"], timeout_s=1)


def test_output_reaches_the_log_while_the_command_runs(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    seen: list[str] = []
    runner = Runner(log)

    def watch() -> None:
        for _ in range(1200):  # a minute at most, on a loaded machine
            if "first\n" in log.read_text():
                seen.append("streamed")
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # The command goes on only once its first line is in the log (the timeout ends it if never).
    lines: list[str] = []
    runner.run(
        [
            "sh",
            "-c",
            f"echo first; until grep -q first {log}; do sleep 0.1; done; echo second",
        ],
        timeout_s=30,
        on_line=lines.append,
    )
    watcher.join()
    assert seen == ["streamed"]
    assert lines == ["first", "second"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_builder_stops_the_command_group(tmp_path: Path, stop: signal.Signals) -> None:
    """Ctrl-C, a timeout's SIGTERM, a closed terminal: the running command does not outlive
    the builder, even started from a shell's background job (SIGINT ignored, inherited)."""
    script = tmp_path / "run.py"
    pids = tmp_path / "pids"
    log = tmp_path / "b.log"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from pathlib import Path\n"
        "from buildtools.runner import Runner, interrupt_on_signals\n"
        "interrupt_on_signals()\n"
        f"command = 'sleep 60 & echo $! > {pids}; echo started; wait'\n"
        f"Runner(Path({str(log)!r})).run(['sh', '-c', command], timeout_s=120)\n"
    )
    # SIGINT ignored and inherited, as a shell's `cmd &` starts it; exec keeps the pid.
    started = f'trap "" INT; exec "{sys.executable}" "{script}"'
    proc = subprocess.Popen(["sh", "-c", started], stderr=subprocess.PIPE)
    # "started" in the log: the runner is past starting the command and streaming its output
    # (not a sleep that a loaded machine could outlast).
    _wait_for(lambda: log.exists() and "started\n" in log.read_text())
    os.kill(proc.pid, stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    child = int(pids.read_text())
    _wait_for(lambda: not _alive(child))


def _wait_for(condition: Callable[[], bool], limit_s: float = 60) -> None:
    """Poll until `condition` holds; the limit only keeps a broken runner from hanging CI."""
    end = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < end, "condition not met"
        time.sleep(0.05)


def test_steps_print_one_line_each_with_duration_and_notes(tmp_path: Path) -> None:
    lines: list[str] = []
    runner = Runner(tmp_path / "b.log", say=lines.append)
    with runner.step("[1/9] fetch") as notes:
        notes.append("3 packages")
        notes.append("cached")
    with pytest.raises(CommandError), runner.step("nvidia: make"):
        raise CommandError("boom")
    with runner.step("quiet"):
        pass
    assert lines[0].startswith("[1/9] fetch (") and lines[0].endswith("s): 3 packages; cached")
    assert lines[1].startswith("nvidia: make: FAILED (")
    assert lines[2].startswith("quiet (") and lines[2].endswith("s)")
    text = (tmp_path / "b.log").read_text()
    assert "===== [1/9] fetch" in text and lines[0] in text


def test_no_log_file_for_a_command_line_query() -> None:
    runner = Runner(None)
    assert runner.run(["sh", "-c", "echo x"], timeout_s=30).stdout == "x\n"
    assert runner.log_path is None


def test_tail_is_the_last_non_empty_lines() -> None:
    assert tail("a\n\nb\nc\nd\ne\n") == "b | c | d | e"
    assert tail("") == "(no output)"


def _serve(port: int, *, after_s: float) -> subprocess.Popen[bytes]:
    """A real server: python3 listening on 127.0.0.1:port after `after_s` seconds."""
    code = (
        "import socket, sys, time; time.sleep(float(sys.argv[2])); s = socket.socket(); "
        "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(port), str(after_s)])


def test_wait_listening_returns_once_the_server_accepts() -> None:
    port = free_port()
    server = _serve(port, after_s=0.5)
    try:
        assert wait_listening(server, port, timeout_s=30)
        assert server.poll() is None
    finally:
        server.kill()
        server.wait()


def test_wait_listening_is_false_for_a_server_that_ended_or_never_listened() -> None:
    port = free_port()
    ended = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert not wait_listening(ended, port, timeout_s=30)
    assert ended.poll() == 3
    silent = _serve(port, after_s=60)
    try:
        started = time.monotonic()
        assert not wait_listening(silent, port, timeout_s=0.5)
        assert time.monotonic() - started < 10
        assert silent.poll() is None
    finally:
        silent.kill()
        silent.wait()
