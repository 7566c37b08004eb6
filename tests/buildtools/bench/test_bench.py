"""The bench's parts: slow-tool shims, the measured child, the slow-tools audit, the build-log
reader and the report. No timing is asserted (the one lower bound below cannot fail on a busy
machine: sleep never returns early)."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest

from buildtools.bench import bench
from buildtools.image.build_iso import step
from buildtools.runner import Runner
from conftest import FIXTURES


def _shim(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path, *args], capture_output=True, text=True, check=False, timeout=30)


def _capture(directory: Path, commands: list[tuple[list[str], str, str, int]]) -> Path:
    """A minimal bee-capture/1 directory holding the given commands."""
    (directory / "commands").mkdir(parents=True)
    entries = []
    for number, (argv, stdout, stderr, rc) in enumerate(commands):
        for stream, text in (("stdout", stdout), ("stderr", stderr)):
            (directory / f"commands/{number:03d}.{stream}").write_text(text)
        entries.append(
            {
                "argv": argv,
                "returncode": rc,
                "stdout": f"commands/{number:03d}.stdout",
                "stderr": f"commands/{number:03d}.stderr",
                "duration_s": 0.0,
            }
        )
    manifest = {"format": "bee-capture/1", "commands": entries, "files": {}, "dirs": {}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


LSPCI = (FIXTURES / "lspci" / "h200-firecracker-vmm-nn-D.txt").read_text(encoding="utf-8")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    return _capture(
        tmp_path / "host",
        [
            (["lspci", "-vmm", "-nn", "-D"], LSPCI, "", 0),
            (["smartctl", "-j", "-a", "/dev/sda"], '{"a": 1}\n', "warning\n", 4),
            (["smartctl", "-j", "-a", "/dev/sdb"], '{"b": 2}\n', "", 0),
        ],
    )


def test_a_shim_prints_the_captured_output_and_status(host, tmp_path):
    shims = tmp_path / "shims"
    written = bench.write_shims(host, shims, {"lspci": 0.0, "smartctl": 0.0})
    assert sorted(p.name for p in written) == ["lspci", "smartctl"]
    lspci = _shim(shims / "lspci", "-vmm", "-nn", "-D")
    assert (lspci.returncode, lspci.stdout, lspci.stderr) == (0, LSPCI, "")
    sda = _shim(shims / "smartctl", "-j", "-a", "/dev/sda")
    assert (sda.returncode, sda.stdout, sda.stderr) == (4, '{"a": 1}\n', "warning\n")
    sdb = _shim(shims / "smartctl", "-j", "-a", "/dev/sdb")
    assert (sdb.returncode, sdb.stdout) == (0, '{"b": 2}\n')


def test_a_shim_refuses_an_argv_it_has_no_output_for(host, tmp_path):
    shims = tmp_path / "shims"
    bench.write_shims(host, shims, {})
    result = _shim(shims / "lspci", "-vmm")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no captured output for: -vmm" in result.stderr


def test_a_shim_waits_its_delay_before_printing(host, tmp_path):
    shims = tmp_path / "shims"
    bench.write_shims(host, shims, {"lspci": 0.3})
    assert "sleep 0.3" in (shims / "lspci").read_text()
    start = time.monotonic()
    result = _shim(shims / "lspci", "-vmm", "-nn", "-D")
    assert time.monotonic() - start >= 0.3  # a lower bound: load can only make it longer
    assert result.stdout == LSPCI


def test_the_slow_tools_audit_runs_every_command_through_the_shims(host, tmp_path):
    shims = tmp_path / "shims"
    bench.write_shims(host, shims, {})
    result = bench.measure_slow(host, shims, runs=1)
    # lspci ran as a shim process: the pcie collector read the H200 capture's functions.
    assert result["collectors"]["pcie"]["status"] == "ok"
    assert result["per_program"]["lspci"]["count"] == 1
    # Without a shim a tool is not installed (PATH holds the shims only), never the real one.
    assert "dmidecode" in result["per_program"]
    assert result["peak_rss_mib"] > 0
    assert result["audit_wall_s"]["n"] == 1


def test_a_measured_child_reports_status_cpu_and_its_own_peak(host, tmp_path):
    run = bench.run_measured(bench.bee_argv("--version"), cwd=bench.AGENT)
    assert run.returncode == 0
    assert run.cpu_s > 0
    assert run.peak_kib is not None and run.peak_kib > 1000
    # An audit leaves through os._exit (past finally and atexit): the peak is reported anyway.
    audit = bench.bee_argv(
        "audit", "--replay", str(host), "-o", str(tmp_path / "d.json"), "--no-qr"
    )
    run = bench.run_measured(audit, cwd=bench.AGENT)
    assert run.returncode == 0 and (tmp_path / "d.json").is_file()
    assert run.peak_kib is not None and run.peak_kib > 1000
    failed = bench.run_measured(
        bench.bee_argv("audit", "--replay", "/nonexistent"), cwd=bench.AGENT
    )
    assert failed.returncode == 2
    assert "not a bee capture" in failed.stderr
    with pytest.raises(bench.BenchError, match="exited 2: bee: /nonexistent is not a bee capture"):
        bench._checked(failed, "bee audit --replay")


def test_the_build_log_is_read_as_build_iso_writes_it(tmp_path):
    log = tmp_path / "build-iso.log"
    progress = Runner(log, say=io.StringIO().write, fresh=True)
    progress.say("checks passed (1.5s): kernel 6.1.0-56-amd64")
    for number in range(1, 10):
        with step(progress, number, f"step {number}") as notes:
            notes.append(f"note {number}")
            if number == 8:
                progress.write(
                    "[2026-11-26 00:58:24] lb build \nI: Base system installed successfully.\n"
                )
    progress.close()
    parsed = bench.parse_build_log(log.read_text())
    assert [s["step"] for s in parsed["steps"]] == list(range(1, 10))
    assert parsed["steps"][8]["note"] == "note 9"
    assert parsed["finished"] is True
    assert parsed["bootstrap"] == "ran debootstrap"
    assert parsed["checks_s"] == 1.5
    assert parsed["lb_started"] == "2026-11-26 00:58:24"


def test_an_unfinished_build_is_not_counted(tmp_path):
    text = "checks passed (1.0s): x\n[1/9] package the agent (2.0s): bee\n"
    parsed = bench.parse_build_log(text)
    assert parsed["finished"] is False and parsed["last_step"] == 1 and parsed["total_s"] == 3.0
    dist = tmp_path / "dist"
    dist.mkdir()
    assert bench.iso_report(dist, None) == {
        "images": [],
        "builds": [],
        "clean_build_s": None,
        "repeated_build_s": None,
    }


def _results() -> dict:
    spread = {"median": 0.4, "min": 0.3, "max": 0.5, "n": 3}
    return {
        "machine": {"cpus": 2, "python": "3.11.7", "kernel": "6.1"},
        "hosts": {"big": {"shape": {"gpus": 8, "disks": 24, "nvme": 8, "dimms": 32, "pci": 300}}},
        "replay": {
            "big": {"wall_s": spread, "cpu_s": spread, "audit_s": spread, "peak_rss_mib": 24.0}
        },
        "slow_tools": {
            "method": "shims",
            "audit_wall_s": {"median": 3.3, "min": 3.2, "max": 3.4, "n": 3},
            "slowest_command": {"argv": ["nvidia-smi", "-q", "-x"], "duration_s": 3.0},
            "sum_of_commands_s": 16.5,
            "commands": 49,
            "ratio_audit_to_slowest": 1.1,
            "ratio_sum_to_audit": 5.0,
            "bee_cpu_s": spread,
            "cpu_with_tools_s": spread,
            "collectors": {"nvidia": {"status": "ok", "duration_s": 3.05}},
            "failed_commands": [],
        },
        "startup": {"python3 -c pass": spread, "python3 -m bee --version": spread, "ratio": 3.5},
        "peak_memory_mib": 24.0,
        "iso": {"images": [], "builds": [], "clean_build_s": None, "repeated_build_s": None},
    }


def test_the_report_shows_the_headline_and_each_target():
    results = _results()
    results["targets"] = bench.targets(results)
    met = {row["target"]: row["met"] for row in results["targets"]}
    assert met["audit / slowest command"] is True
    assert met["big host replay wall"] is True
    assert met["bee --version / python -c pass"] is False  # 3.5 > 3
    assert met["4x host / big host (replay)"] is False  # not measured: no value
    table = bench.format_table(results)
    assert "audit / slowest       1.100x   <- headline" in table
    assert "nvidia-smi -q -x" in table
    assert "not built (no dist/*.iso)" in table
    assert "MISSED" in table


@pytest.mark.parametrize("text", ["nvidia-smi", "nvidia-smi=", "=3", "smartctl=x", "lspci=-1"])
def test_bad_delays_are_refused_in_one_line(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--delay", text])
    assert exit_info.value.code == 2
    assert "expected PROGRAM=SECONDS" in capsys.readouterr().err


def test_a_missing_fixture_stops_the_bench_with_one_line(tmp_path, capsys):
    code = bench.main(
        [
            "--fixtures",
            str(tmp_path),
            "--work",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "b.json"),
            "--raw",
            str(tmp_path / "no-captures"),  # not the dist/ captures of this machine
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bench: no fixture in")
    assert not (tmp_path / "b.json").exists()


def _write_build_log(path: Path, steps: int, debootstrap: bool, lb_at: str) -> None:
    progress = Runner(path, say=io.StringIO().write, fresh=True)
    progress.say("checks passed (1.0s): kernel")
    for number in range(1, steps + 1):
        with step(progress, number, f"step {number}"):
            if number == 6:  # as buildtools/nvidia/build.py reports its cache through the progress
                progress.say(
                    f"      nvidia: cache (0.0s): {'miss: no entry' if debootstrap else 'hit /x'}"
                )
            if number == 8:
                progress.write(f"[{lb_at}] lb build \n")
                if debootstrap:
                    progress.write("I: Base system installed successfully.\n")
    progress.close()


def test_finished_builds_are_remembered_across_overwritten_logs(tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    log = dist / "build-iso.log"
    (dist / "bee-0.1.0-amd64.iso").write_bytes(b"\0" * 2**20)
    _write_build_log(log, 9, debootstrap=True, lb_at="2026-11-26 01:00:00")
    first = bench.iso_report(dist, None)
    assert first["images"][0]["mib"] == 1.0
    assert first["clean_build_s"] is not None and first["repeated_build_s"] is None
    _write_build_log(log, 9, debootstrap=False, lb_at="2026-11-26 02:00:00")  # overwrites the log
    second = bench.iso_report(dist, first)
    assert [b["bootstrap"] for b in second["builds"]] == ["ran debootstrap", "from cache"]
    assert [b["nvidia"] for b in second["builds"]] == ["built", "from cache"]
    assert second["clean_build_s"] is not None and second["repeated_build_s"] is not None
    _write_build_log(log, 5, debootstrap=False, lb_at="2026-11-26 03:00:00")  # still running
    third = bench.iso_report(dist, second)
    assert [b["finished"] for b in third["builds"]] == [True, True, False]
    assert [b["finished"] for b in bench.iso_report(dist, third)["builds"]] == [True, True, False]


def test_bee_check_is_measured_on_a_spec_made_from_the_hosts_own_audit():
    qemu_capture = FIXTURES.parent / "tests" / "vm" / "qemu-q35" / "bee-capture"
    result = bench.measure_check(qemu_capture, runs=1)
    assert result["status"] == "ACCEPT" and result["checks"] >= 15
    assert result["own_s"]["n"] == 1 and result["process_wall_s"]["n"] == 1
    table = bench.format_table({"check": result})
    assert f"{result['checks']} checks, ACCEPT" in table
