"""SystemRunner: timeouts that kill the whole group, caps, decoding, missing binaries."""

from __future__ import annotations

import os
import time

from bee.runner import RC_NOT_FOUND, RC_TIMEOUT, SystemRunner
from conftest import fake_tool, pid_alive


def test_missing_binary_is_a_result_not_an_exception():
    result = SystemRunner().run(["/nonexistent/bee-no-such-tool", "-x"], timeout_s=5)
    assert result.not_found
    assert result.returncode == RC_NOT_FOUND
    assert not result.ok
    assert "not installed" in result.describe_failure()


def test_not_executable_is_a_result(tmp_path):
    path = tmp_path / "tool"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o644)
    result = SystemRunner().run([str(path)], timeout_s=5)
    assert result.returncode == 126
    assert result.error


def test_environment_forces_c_locale(tmp_path):
    tool = fake_tool(tmp_path, "envdump", 'echo "$LC_ALL/$LANG"\n')
    result = SystemRunner(env={"LC_ALL": "de_DE.UTF-8", "PATH": "/usr/bin:/bin"}).run(
        [str(tool)], timeout_s=5
    )
    assert result.stdout.strip() == "C/C"


def test_hung_tool_ignoring_sigterm_is_killed_with_its_children(tmp_path):
    pidfile = tmp_path / "pids"
    tool = fake_tool(
        tmp_path,
        "hang",
        f"trap '' TERM\nsleep 1000 &\necho $$ $! > {pidfile}\nwhile :; do sleep 1; done\n",
    )
    start = time.monotonic()
    result = SystemRunner().run([str(tool)], timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert result.returncode == RC_TIMEOUT
    assert elapsed < 1.0 + 2.0 + 2.0 + 1.0  # timeout + TERM grace + KILL wait + slack
    pids = [int(p) for p in pidfile.read_text().split()]
    time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in pids), "a child of the hung tool survived"


def test_output_over_the_cap_is_truncated_and_flagged(tmp_path):
    tool = fake_tool(tmp_path, "flood", "head -c 5000000 /dev/zero | tr '\\0' 'x'\n")
    result = SystemRunner(output_cap=100_000).run([str(tool)], timeout_s=20)
    assert result.ok
    assert result.stdout_truncated
    assert len(result.stdout) == 100_000


def test_endless_output_ends_at_the_timeout_without_memory_growth(tmp_path):
    tool = fake_tool(tmp_path, "endless", "yes bee\n")
    result = SystemRunner(output_cap=10_000).run([str(tool)], timeout_s=1.0)
    assert result.timed_out
    assert result.stdout_truncated
    assert len(result.stdout) == 10_000


def test_invalid_utf8_is_decoded_with_replacement(tmp_path):
    tool = fake_tool(tmp_path, "binary", "printf 'Serial: \\377\\376ab\\n'\n")
    result = SystemRunner().run([str(tool)], timeout_s=5)
    assert result.stdout == "Serial: \ufffd\ufffdab\n"


def test_deadline_caps_each_command(tmp_path):
    tool = fake_tool(tmp_path, "slow", "sleep 30\n")
    runner = SystemRunner()
    runner.set_deadline(time.monotonic() + 0.5)
    start = time.monotonic()
    result = runner.run([str(tool)], timeout_s=60)
    assert result.timed_out
    assert time.monotonic() - start < 4
    late = runner.run([str(tool)], timeout_s=60)
    assert late.timed_out and late.duration_s == 0.0 and "deadline" in (late.error or "")


def test_stderr_is_kept_apart_and_exit_status_reported(tmp_path):
    tool = fake_tool(
        tmp_path, "fails", "echo out; echo 'No SMBIOS nor DMI entry point found' >&2; exit 3\n"
    )
    result = SystemRunner().run([str(tool)], timeout_s=5)
    assert (result.returncode, result.stdout, result.ok) == (3, "out\n", False)
    assert result.describe_failure().endswith("exit 3: No SMBIOS nor DMI entry point found")


def test_kill_leftovers_removes_daemonised_grandchildren(tmp_path):
    pidfile = tmp_path / "pid"
    # The tool exits at once but leaves a grandchild that no longer holds its pipes.
    tool = fake_tool(tmp_path, "daemonise", f"sleep 1000 >/dev/null 2>&1 &\necho $! > {pidfile}\n")
    runner = SystemRunner()
    assert runner.run([str(tool)], timeout_s=5).ok
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    # It is in the tool's own process group (start_new_session), not in ours.
    assert os.getpgid(pid) != os.getpgid(0)
    runner.kill_leftovers()
    deadline = time.monotonic() + 2
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_a_tool_whose_child_keeps_the_pipe_open_is_not_a_timeout(tmp_path):
    # Review B.1.10: the tool's own exit was not watched while its pipe stayed open.
    tool = fake_tool(tmp_path, "forks", "sleep 1000 &\necho printed\nexit 0\n")
    runner = SystemRunner()
    try:
        result = runner.run([str(tool)], timeout_s=10)
    finally:
        runner.kill_leftovers()
    assert (result.timed_out, result.returncode, result.stdout) == (False, 0, "printed\n")
