"""`bee audit` end to end, as the image runs it, with badly behaved tools on PATH."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time

import pytest

from bee.audit import run_audit
from bee.capture import RecordingRunner, ReplayRunner
from bee.registry import Collector, section_names
from bee.runner import SystemRunner
from conftest import REPO, fake_tool, pid_alive, run_bee

QEMU = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"

SECTIONS = section_names()


def env_with(bindir) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def test_audit_on_this_machine_writes_a_valid_document(tmp_path, validate_document):
    out = tmp_path / "audit.json"
    proc = run_bee("audit", "--output", str(out), "--no-qr")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(out.read_text())
    validate_document(document)
    assert set(SECTIONS) <= document.keys()
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert "Traceback" not in proc.stderr
    assert f"Document: {out}" in proc.stdout
    assert_reads_this_host(document)


def assert_reads_this_host(document: dict) -> None:
    """What every Linux host shows, tools or not (review B.4.7: on a host without tools these
    tests compared documents of null sections): the CPUs and memory the kernel counts, and
    every PCI function sysfs lists when lspci is here."""
    status = {name: entry["status"] for name, entry in document["collectors"].items()}
    assert status["cpu"] == status["memory"] == "ok", status
    cpu, memory = document["cpu"], document["memory"]
    if cpu["source"] == "proc-cpuinfo":  # SMBIOS (dmidecode as root) counts what is fitted
        assert cpu["thread_count"] == os.cpu_count()
    assert cpu["sockets"] and cpu["core_count"] >= 1
    if memory["source"] == "proc-meminfo":
        assert memory["total_bytes"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    else:
        assert memory["total_bytes"] > 0
    if shutil.which("lspci") and os.path.isdir("/sys/bus/pci/devices"):
        assert status["pcie"] == "ok"
        assert {d["address"] for d in document["pcie"]["devices"]} == set(
            os.listdir("/sys/bus/pci/devices")
        )


def test_tool_that_hangs_and_ignores_sigterm_cannot_hold_the_audit(tmp_path, validate_document):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pids = tmp_path / "pids"
    fake_tool(
        bindir,
        "dmidecode",
        f"trap '' TERM\nsleep 1000 &\necho $$ $! >> {pids}\nwhile :; do sleep 1; done\n",
    )
    out = tmp_path / "audit.json"
    start = time.monotonic()
    proc = run_bee(
        "audit", "--deadline", "3", "--output", str(out), "--no-qr", env=env_with(bindir)
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 3 + 5, f"audit took {elapsed:.1f} s with a 3 s deadline"
    document = json.loads(out.read_text())
    validate_document(document)
    hung = [c for c in document["commands"] if c["argv"][0] == "dmidecode"]
    assert hung and all(c["timed_out"] for c in hung)
    assert document["collectors"]["board"]["status"] == "timeout"
    assert any(e["collector"] == "board" for e in document["errors"])
    # Collectors that do not use dmidecode were not held up by it.
    assert document["collectors"]["storage"]["status"] != "timeout"
    time.sleep(0.2)
    left = [int(p) for p in pids.read_text().split() if pid_alive(int(p))]
    assert not left, f"processes left behind: {left}"


def test_flooding_tool_and_invalid_utf8_still_give_valid_json(tmp_path, validate_document):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # lspci prints 20 MB (over the 8 MiB cap); dmidecode prints bytes that are not UTF-8.
    fake_tool(bindir, "lspci", "head -c 20000000 /dev/zero | tr '\\0' 'x'\n")
    # A record, so the bytes reach the document (review B.4.1: without one they never did).
    fake_tool(
        bindir,
        "dmidecode",
        "printf 'Handle 0x0001, DMI type 1, 27 bytes\\nSystem Information\\n"
        "\\tSerial Number: S\\377N\\376\\n'\n",
    )
    out = tmp_path / "audit.json"
    proc = run_bee("audit", "--output", str(out), "--no-qr", env=env_with(bindir))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    validate_document(document)
    flood = [c for c in document["commands"] if c["argv"][0] == "lspci"]
    assert flood and flood[0]["stdout_truncated"] is True
    assert flood[0]["stdout_bytes"] == 8 * 1024 * 1024
    assert document["board"]["system"]["serial"] == "S\ufffdN\ufffd"  # decoded with replacement


def _limit_file_size():
    # A document bigger than 2 KiB cannot be written: what a full disk looks like to bee.
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_failed_write_keeps_the_earlier_document_and_exits_1(tmp_path):
    out = tmp_path / "audit.json"
    out.write_text('{"earlier": true}\n')
    proc = run_bee("audit", "--output", str(out), "--no-qr", preexec_fn=_limit_file_size)
    assert proc.returncode == 1
    assert json.loads(out.read_text()) == {"earlier": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json"], "temporary file left"
    message = [line for line in proc.stderr.splitlines() if "cannot write" in line]
    assert len(message) == 1 and str(out) in message[0]
    assert "Traceback" not in proc.stderr
    assert "audit of" in proc.stdout, "the summary is still printed"


def test_missing_output_directory_is_one_line_and_exit_1(tmp_path):
    proc = run_bee("audit", "--output", str(tmp_path / "no" / "such" / "a.json"), "--no-qr")
    assert proc.returncode == 1
    assert "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_document_to_stdout_moves_the_summary_to_stderr(validate_document):
    proc = run_bee("audit", "--output", "-", "--no-qr")
    assert proc.returncode == 0
    validate_document(json.loads(proc.stdout))
    assert "audit of" in proc.stderr


def _comparable(document: dict) -> dict:
    """What must survive capture and replay: everything but timestamps, timings, host facts."""
    kept = {k: document[k] for k in (*SECTIONS, "findings", "errors")}
    kept["collectors"] = {k: v["status"] for k, v in document["collectors"].items()}
    kept["commands"] = [
        (c["argv"], c["returncode"], c["stdout_bytes"]) for c in document["commands"]
    ]
    kept["commands"].sort()
    return kept


def test_capture_here_then_replay_gives_the_same_sections(tmp_path, validate_document):
    capture = tmp_path / "capture"
    live = run_audit(SystemRunner(), deadline_s=60, capture_dir=capture)
    assert (capture / "manifest.json").is_file()
    replayed = run_audit(ReplayRunner(capture), deadline_s=60, mode="replay")
    validate_document(live)
    validate_document(replayed)
    assert_reads_this_host(live)  # so the comparison below compares sections, not nulls
    assert replayed["mode"] == "replay"
    assert _comparable(replayed) == _comparable(live)
    # And through the CLI, from a directory with no tools on PATH at all.
    out = tmp_path / "replayed.json"
    proc = run_bee(
        "audit",
        "--replay",
        str(capture),
        "--output",
        str(out),
        "--no-qr",
        env={"PATH": "/nonexistent"},
    )
    assert proc.returncode == 0, proc.stderr
    assert _comparable(json.loads(out.read_text())) == _comparable(live)


def test_replay_of_a_directory_that_is_not_a_capture_is_a_usage_error(tmp_path):
    proc = run_bee("audit", "--replay", str(tmp_path), "--output", str(tmp_path / "a.json"))
    assert proc.returncode == 2
    assert "not a bee capture" in proc.stderr and "Traceback" not in proc.stderr


def test_collector_that_raises_is_contained(validate_document):
    def broken(probe):
        raise RuntimeError("parser bug")

    def fine(probe):
        return {"ok": True}

    collectors = (
        Collector(name="board", order=1, collects="-", collect=broken),
        Collector(name="cpu", order=2, collects="-", collect=fine),
    )
    document = run_audit(SystemRunner(), deadline_s=10, collectors=collectors)
    assert document["collectors"]["board"]["status"] == "failed"
    assert document["board"] is None
    assert document["cpu"] == {"ok": True}
    assert document["errors"] == [
        {"collector": "board", "message": "collector raised RuntimeError: parser bug"}
    ]


@pytest.mark.parametrize("argv", [["audit", "--deadline", "-1"], ["audit", "--bogus"], []])
def test_usage_errors_exit_2_with_a_usage_line(argv):
    proc = run_bee(*argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: bee")
    assert "Traceback" not in proc.stderr


def test_document_is_json_ready_as_returned():
    # The CLI writes run_audit's document without a second to_jsonable walk.
    from bee.serialize import to_jsonable

    document = run_audit(
        ReplayRunner(REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"), deadline_s=30
    )
    assert to_jsonable(document) == document


def test_collector_threads_start_with_stops_held_and_run_with_them_released(monkeypatch):
    """A stop raised inside Thread.start() broke its Condition ("release unlocked lock", a
    traceback and exit 1 instead of 129 under load): the main thread holds stops meanwhile;
    the collectors release them, or every tool they start would inherit the blocked mask."""
    import signal
    import threading

    from bee import stops
    from bee.audit import run_collectors

    masks_at_start, masks_in_collector = [], []
    start = threading.Thread.start

    def recording_start(self):
        masks_at_start.append(signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        start(self)

    def collect(probe):
        masks_in_collector.append(signal.pthread_sigmask(signal.SIG_BLOCK, set()))

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    collectors = [Collector(name=f"c{n}", order=n, collects="x", collect=collect) for n in range(3)]
    run_collectors(RecordingRunner(SystemRunner()), deadline_s=10, collectors=collectors)
    assert masks_at_start and all(mask >= stops.STOP_SIGNALS for mask in masks_at_start)
    assert len(masks_in_collector) == 3
    assert all(not (stops.STOP_SIGNALS & mask) for mask in masks_in_collector)


# -- the deadline holds, and a late collector keeps what it recorded (issue 20 #9, review B.1.11)


def _blocking_collector(name: str, release, *, before: str | None = None) -> Collector:
    def collect(probe):
        if before:
            probe.error(before)
        release.wait(60)  # stuck in Python, past any abort: only the deadline ends the wait
        probe.error("recorded after the deadline")
        return {"late": True}

    return Collector(name=name, order=1, collects="x", collect=collect)


def test_a_late_collector_is_timeout_with_its_own_errors_and_a_late_return_changes_nothing():
    import threading

    from bee.audit import run_collectors

    release = threading.Event()
    stuck = _blocking_collector("stuck", release, before="lsblk -J: timed out after 20.0 s")
    try:
        [outcome] = run_collectors(ReplayRunner(QEMU), deadline_s=1, collectors=[stuck])
        expected = ["lsblk -J: timed out after 20.0 s", "did not finish within the 1 s deadline"]
        assert (outcome.status, outcome.errors, outcome.data) == ("timeout", expected, None)
    finally:
        release.set()
    time.sleep(0.5)  # the collector returns now: the closed outcome must not move
    assert (outcome.status, outcome.errors, outcome.data) == ("timeout", expected, None)


class _HungHostRead:
    """A replay whose read of the hostname never returns (a FIFO, a hung file system)."""

    def __init__(self, inner, release):
        self.inner, self.release = inner, release

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_text(self, path):
        if path == "/proc/sys/kernel/hostname":
            self.release.wait(60)
        return self.inner.read_text(path)


def _audit_in_thread(**kwargs) -> dict:
    import threading

    box = []
    worker = threading.Thread(target=lambda: box.append(run_audit(**kwargs)), daemon=True)
    worker.start()
    worker.join(30)  # a hang guard, not a timing: the deadline is 1 s
    assert box, "run_audit did not return: something ran outside the deadline"
    return box[0]


def test_the_host_read_is_under_the_deadline():
    import threading

    release = threading.Event()
    try:
        runner = _HungHostRead(ReplayRunner(QEMU), release)
        document = _audit_in_thread(runner=runner, deadline_s=1, collectors=[])
    finally:
        release.set()
    assert document["host"] == dict.fromkeys(("hostname", "kernel", "boot_id", "machine_id"))
    assert [e["collector"] for e in document["errors"]] == ["host"]


def test_the_capture_manifest_is_under_the_deadline(tmp_path, monkeypatch):
    import threading

    from bee import capture

    release = threading.Event()
    write = capture._Tree.write

    def hung_manifest_write(self, name, data):
        if name.startswith("manifest.json"):
            release.wait(60)  # a capture disk that stopped answering
        write(self, name, data)

    monkeypatch.setattr(capture._Tree, "write", hung_manifest_write)
    try:
        document = _audit_in_thread(
            runner=ReplayRunner(QEMU), deadline_s=1, collectors=[], capture_dir=tmp_path / "c"
        )
    finally:
        release.set()
    [error] = document["errors"]
    assert error["collector"] == "capture" and "not written within the deadline" in error["message"]


def test_a_hostile_fru_line_does_not_stall_the_replay(tmp_path):
    # Issue 20 #9: this line kept the GIL for minutes in a backtracking regex, so no thread,
    # not the one enforcing --deadline 2, could run (a replay took 17.8 s, or far longer).
    capture = tmp_path / "c"
    shutil.copytree(QEMU, capture)
    fru = capture / "commands" / "010.stdout"
    fru.write_text(fru.read_text() + "FRU Device Description : a" + " " * 3000 + "b\n")
    document = _audit_in_thread(runner=ReplayRunner(capture), deadline_s=2)
    assert document["collectors"]["psu"]["status"] == "ok"
    assert "a" + " " * 3000 + "b" in [d["name"] for d in document["psu"]["fru_devices"]]


def test_a_replay_says_when_its_data_was_captured(validate_document):
    # Review B.1.6: a replayed document's times are the replay's; the capture's were lost.
    document = run_audit(ReplayRunner(QEMU), mode="replay")
    assert document["replayed_from"]["captured_at"] == "2026-11-26T01:29:39.716Z"
    assert document["replayed_from"]["host"]["hostname"] == "bee"
    validate_document(json.loads(json.dumps(document)))
    assert "replayed_from" not in run_audit(SystemRunner(), deadline_s=30, collectors=[])
