"""`nox -s bench`: what an operator waits for, next to the limit the tools set.

    python -m buildtools.bench.bench [--runs 5] [--slow-runs 3] [--startup-runs 20]
        [--report-nodes 1000] [--report-runs 3]
        [--delay nvidia-smi=3.0 ...] [--fixtures fixtures] [--work dist/bench]
        [--out dist/bench.json]

Measures, on a synthetic big GPU server (`buildtools.bench.bighost`: 2 sockets, 32 DIMMs, 24 + 8
disks, 8 GPUs, 300 PCI functions, 2 PSUs, scaled from the real fixtures):

- replay cost: `python3 -m bee audit --replay HOST` as a process (wall, CPU, peak RSS), for a
  small host, the big host and 2x and 4x the big host, and how it grows;
- concurrency: the full audit (`bee.audit.run_audit`, its real threads and `SystemRunner`)
  with every tool replaced by a shim on PATH that prints the big host's captured output after
  a per-tool delay; /sys, /proc and /dev are read from the capture (this machine has none of
  the big host's). Compared with the slowest single command and with the sum of all commands;
- `bee check` of the big host against a spec `bee spec` wrote from it: bee's own work in
  process (read the spec and the document, judge, format the table) and the whole command;
- start-up: `python3 -m bee --version` against `python3 -c pass`;
- peak memory of the audit (VmHWM of the process that ran it, reported as it exits);
- `bee report` over 1,000 variants of the big host's document with planted differences
  (`buildtools.bench.fleet`): wall, CPU, peak memory, and whether it named exactly those nodes;
- the ISO, when `nox -s build_iso` has left one: its size and the build times in its log.

It prints a table and writes the same numbers as JSON. It reports against the targets of
docs/bench.md; it asserts nothing (a missed target is not an error exit).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buildtools.bench import bighost, fleet
from buildtools.bench.bighost import AGENT, REPO, BigHostError, Shape

DIST = REPO / "dist"
SMALL = Shape(sockets=1, dimms=4, disks=2, nvme=1, gpus=1, pci=40, psus=2)
BIG = Shape()
SCALES = (("small", SMALL), ("big", BIG), ("big x2", BIG.scaled(2)), ("big x4", BIG.scaled(4)))

TARGET_SLOWEST_RATIO = 1.25
TARGET_REPLAY_S = 0.5
TARGET_STARTUP_RATIO = 3.0
TARGET_PEAK_MIB = 64.0
TARGET_REPORT_S = 5.0  # bee report over 1,000 big-host audits: "a few seconds"
TARGET_CHECK_S = 0.1  # bee check's own work on the big host
LINEAR_SLACK = 1.15  # "linear or better": 2x the host may cost at most 2 x 1.15 the time


class BenchError(Exception):
    """The benchmark cannot run; the message is one line."""


# -- measuring a child process -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system of the child and of the children it waited for
    returncode: int
    stderr: str
    peak_kib: int | None = None  # the child's VmHWM, when it reported one (see with_peak)


# The child's own peak resident set: VmHWM of its address space, read as it exits. Not
# ru_maxrss: Linux carries the forking parent's peak into the child's ru_maxrss across
# vfork+exec, so every child of a big bench process would "peak" at the bench's own size.
PEAK_FD_ENV = "BEE_BENCH_PEAK_FD"
_PEAK_LAUNCHER = """
import os, runpy, sys
sys.argv[0] = "bee"
_exit = os._exit
def _report_and_exit(status):  # bee leaves through os._exit, past finally and atexit
    report_peak()
    _exit(status)
os._exit = _report_and_exit
try:
    runpy.run_module("bee", run_name="__main__", alter_sys=True)
finally:
    report_peak()
"""
_REPORT_PEAK = """
def report_peak():
    import os
    fd = os.environ.pop("BEE_BENCH_PEAK_FD", None)  # once
    if not fd:
        return
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next((l.split()[1] for l in status if l.startswith("VmHWM:")), "")
    os.write(int(fd), peak.encode() + b"\\n")
"""


def bee_argv(*args: str) -> list[str]:
    """`python3 -m bee ARGS`, run so that it reports its VmHWM on exit (see Run.peak_kib)."""
    return [sys.executable, "-c", _REPORT_PEAK + _PEAK_LAUNCHER, *args]


def vm_hwm_kib() -> int | None:
    """This process's peak resident set (KiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_measured(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, stdout: int | None = None
) -> Run:
    """Run argv to its end; wall from spawn to reap, CPU from wait4's rusage, and the peak
    resident set the child wrote to the pipe named by BEE_BENCH_PEAK_FD (if it did)."""
    read_end, write_end = os.pipe()
    child_env = dict(os.environ if env is None else env, **{PEAK_FD_ENV: str(write_end)})
    try:
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if stdout is None else stdout,
                stderr=err,
                pass_fds=(write_end,),
            )
            os.close(write_end)
            write_end = -1
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace")
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            reported = pipe.read().decode("ascii", errors="replace").split()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        returncode=proc.returncode,
        stderr=stderr,
        peak_kib=int(reported[-1]) if reported and reported[-1].isdigit() else None,
    )


def _peak_mib(values: Sequence[int | None]) -> float | None:
    """The largest reported peak in MiB; None when any run did not report one."""
    if not values or any(v is None for v in values):
        return None
    return round(max(v for v in values if v is not None) / 1024, 1)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _checked(run: Run, what: str) -> Run:
    if run.returncode != 0:
        detail = run.stderr.strip().splitlines()[-1:] or ["no message"]
        raise BenchError(f"{what} exited {run.returncode}: {detail[0]}")
    return run


# -- hosts -------------------------------------------------------------------------------------


def capture_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def dist_captures(dist: Path) -> list[Path]:
    """Raw `fixtures/capture.sh` outputs other sessions left in dist/ (guest and GPU hosts)."""
    found = {p.parent for p in dist.glob("*-capture/*/commands.tsv")}
    found |= {p.parent for p in dist.glob("*-capture/*/*/commands.tsv")}
    return sorted(found)


def make_hosts(
    work: Path, fixtures: Path, raw: Sequence[Path], delays: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Generate and verify every host size; each is replayed through the agent once here."""
    hosts = {}
    for name, shape in SCALES:
        directory = work / "hosts" / name.replace(" ", "")
        info = bighost.generate(shape, directory, fixtures=fixtures, raw=raw, delays=delays)
        issues = bighost.problems(directory, shape)
        if issues:
            raise BenchError(f"the {name} host does not replay as built: {issues[0]}")
        hosts[name] = {
            "dir": str(directory),
            "shape": asdict(shape),
            "capture_mib": round(capture_bytes(directory) / 2**20, 1),
            "seeds": info["seeds"],
            "notes": info["notes"],
        }
    return hosts


# -- replay cost -------------------------------------------------------------------------------


def measure_replay(host: Path, runs: int) -> dict[str, Any]:
    walls, cpus, rss, audit = [], [], [], []
    collectors: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        argv = bee_argv("audit", "--replay", str(host), "-o", str(out), "--no-qr")
        for _ in range(runs):
            run = _checked(run_measured(argv, cwd=AGENT), "bee audit --replay")
            walls.append(run.wall_s)
            cpus.append(run.cpu_s)
            rss.append(run.peak_kib)
            document = json.loads(out.read_text(encoding="utf-8"))
            audit.append(float(document["duration_s"]))
            for name, entry in document["collectors"].items():
                collectors.setdefault(name, []).append(float(entry["duration_s"]))
    return {
        "wall_s": spread(walls),
        "cpu_s": spread(cpus),
        "audit_s": spread(audit),  # run_audit alone, as the document records it
        "peak_rss_mib": _peak_mib(rss),
        # Collectors run in parallel threads: these overlap, they do not add up to audit_s.
        "collectors_s": {n: statistics.median(v) for n, v in collectors.items()},
    }


def measure_check(host: Path, runs: int) -> dict[str, Any]:
    """`bee check` on the big host: a spec from its own audit (bee spec), then the check's own
    work timed in process (spec and document read, every check judged, the table made) and the
    command as a process. Both must accept (exit 0): the spec was made from this audit."""
    if str(AGENT) not in sys.path:
        sys.path.insert(0, str(AGENT))
    from bee.spec import command
    from bee.spec.report import table

    with tempfile.TemporaryDirectory() as tmp:
        audit, spec = Path(tmp) / "audit.json", Path(tmp) / "spec.toml"
        for argv in (
            bee_argv("audit", "--replay", str(host), "-o", str(audit), "--no-qr"),
            bee_argv("spec", "-o", str(spec), str(audit)),
        ):
            _checked(run_measured(argv, cwd=AGENT), " ".join(argv[2:4]))
        own, walls, checks, status = [], [], 0, "?"
        for _ in range(runs):
            started = time.perf_counter()
            verdict = command.evaluate(command.read_spec(str(spec)), command.read_audit(str(audit)))
            table(verdict)
            own.append(time.perf_counter() - started)
            checks, status = len(verdict["checks"]), verdict["status"]
            argv = bee_argv("check", str(spec), str(audit))
            walls.append(_checked(run_measured(argv, cwd=AGENT), "bee check").wall_s)
        return {
            "checks": checks,
            "status": status,
            "audit_mib": round(audit.stat().st_size / 2**20, 2),
            "own_s": spread(own),
            "process_wall_s": spread(walls),
        }


def growth(replays: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cost of the 2x and 4x hosts over the big one, and the exponent k in cost ~ size^k."""
    base = replays["big"]
    result: dict[str, Any] = {}
    for key in ("wall_s", "audit_s"):
        ratios = {}
        for name, factor in (("big x2", 2), ("big x4", 4)):
            ratio = replays[name][key]["median"] / base[key]["median"]
            ratios[name] = {"ratio": round(ratio, 2), "size": factor}
        ratio4 = ratios["big x4"]["ratio"]
        ratios["exponent"] = round(math.log(ratio4) / math.log(4), 2) if ratio4 > 0 else None
        result[key] = ratios
    return result


# -- the audit against slow tools --------------------------------------------------------------


def write_shims(host: Path, shims: Path, delays: dict[str, float]) -> list[Path]:
    """One executable per program of the host's manifest: prints the captured stdout/stderr of
    the matching argv after the program's delay, exits with its status; unknown argv: exit 2.
    `sh` matches "$*", so an argv element must not hold a space (bighost refuses those)."""
    manifest = json.loads((host / "manifest.json").read_text(encoding="utf-8"))
    by_program: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["commands"]:
        by_program.setdefault(entry["argv"][0], []).append(entry)
    shims.mkdir(parents=True, exist_ok=True)
    # Absolute paths: the audit runs with PATH=shims only, so no real tool answers instead.
    sleep, cat = shutil.which("sleep"), shutil.which("cat")
    if not sleep or not cat:
        raise BenchError("the shims need sleep and cat on PATH")
    written = []
    for program, entries in sorted(by_program.items()):
        delay = delays.get(program, 0.0)
        lines = [
            "#!/bin/sh",
            f"# bee bench shim for {program}: the synthetic host's output after {delay} s.",
            f"# Written by buildtools/bench/bench.py from {host}/manifest.json.",
            'case "$*" in',
        ]
        for entry in entries:
            key = " ".join(entry["argv"][1:])
            out = shlex.quote(str((host / entry["stdout"]).resolve()))
            err = shlex.quote(str((host / entry["stderr"]).resolve()))
            lines.append(
                f"{shlex.quote(key)}) out={out}; err={err}; rc={int(entry['returncode'])} ;;"
            )
        lines += [
            f'*) echo "{program} (bee bench shim): no captured output for: $*" >&2; exit 2 ;;',
            "esac",
        ]
        if delay > 0:
            lines.append(f"{sleep} {delay:g}")
        lines += [f'{cat} "$out"', f'{cat} "$err" >&2', 'exit "$rc"', ""]
        path = shims / program
        path.write_text("\n".join(lines), encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written


class SlowToolsRunner:
    """bee's real SystemRunner for commands (so the shims run as processes, concurrently, under
    the agent's own thread structure and deadline), the capture for /sys, /proc and /dev."""

    def __init__(self, system: Any, replay: Any) -> None:
        self.system = system
        self.replay = replay

    def run(self, argv: Sequence[str], *, timeout_s: float) -> Any:
        return self.system.run(argv, timeout_s=timeout_s)

    def read_text(self, path: str) -> str | None:
        return self.replay.read_text(path)

    def list_dir(self, path: str) -> list[str] | None:
        return self.replay.list_dir(path)

    def read_link(self, path: str) -> str | None:
        return self.replay.read_link(path)

    def set_deadline(self, deadline: float | None) -> None:
        self.system.set_deadline(deadline)

    def abort(self) -> None:
        self.system.abort()

    def kill_leftovers(self) -> None:
        self.system.kill_leftovers()


def child_slow_audit(host: Path, shims: Path, out: Path) -> int:
    """In the child process: one audit against the shims; timings and the commands to `out`."""
    from bee.audit import run_audit
    from bee.capture import ReplayRunner
    from bee.runner import SystemRunner

    env = dict(os.environ, PATH=str(shims))  # a tool without a shim is not installed
    runner = SlowToolsRunner(SystemRunner(env=env), ReplayRunner(host))
    cpu, start = time.process_time(), time.perf_counter()
    document = run_audit(runner, mode="live")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    keep = ("duration_s", "collectors", "commands", "errors")
    result = {"wall_s": wall, "bee_cpu_s": cpu, **{k: document[k] for k in keep}}
    out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    peak, fd = vm_hwm_kib(), os.environ.get(PEAK_FD_ENV)
    if peak is not None and fd:
        os.write(int(fd), f"{peak}\n".encode())
    return 0


def measure_slow(host: Path, shims: Path, runs: int) -> dict[str, Any]:
    walls, process_walls, bee_cpu, total_cpu, rss = [], [], [], [], []
    children: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slow.json"
        argv = [sys.executable, "-m", "buildtools.bench.bench", "--child-slow-audit"]
        argv += [str(host), str(shims), str(out)]
        for _ in range(runs):
            run = _checked(run_measured(argv, cwd=REPO), "the slow-tools audit")
            child = json.loads(out.read_text(encoding="utf-8"))
            children.append(child)
            walls.append(child["wall_s"])
            process_walls.append(run.wall_s)
            bee_cpu.append(child["bee_cpu_s"])
            total_cpu.append(run.cpu_s)
            rss.append(run.peak_kib)
    # The commands of the median run (by wall) stand for all runs.
    median_run = sorted(children, key=lambda c: c["wall_s"])[len(children) // 2]
    commands = median_run["commands"]
    failed = [c for c in commands if c["returncode"] != 0 and c["argv"][0] != "smartctl"]
    slowest = max(commands, key=lambda c: c["duration_s"])
    per_program: dict[str, dict[str, float]] = {}
    for command in commands:
        entry = per_program.setdefault(command["argv"][0], {"count": 0, "sum_s": 0.0})
        entry["count"] += 1
        entry["sum_s"] = round(entry["sum_s"] + command["duration_s"], 3)
    audit = statistics.median(walls)
    return {
        "method": (
            "bee.audit.run_audit in a child process with bee's real SystemRunner: each tool is a "
            "shim process on PATH printing the big host's captured output after its delay; "
            "/sys, /proc and /dev answered from the capture"
        ),
        "audit_wall_s": spread(walls),
        # The child from spawn to exit: interpreter start-up and imports on top of the audit.
        "process_wall_s": spread(process_walls),
        "slowest_command": {"argv": slowest["argv"], "duration_s": slowest["duration_s"]},
        "sum_of_commands_s": round(sum(c["duration_s"] for c in commands), 3),
        "commands": len(commands),
        "ratio_audit_to_slowest": round(audit / slowest["duration_s"], 3),
        "overhead_s": round(audit - slowest["duration_s"], 3),  # what bee adds to the limit
        "ratio_sum_to_audit": round(sum(c["duration_s"] for c in commands) / audit, 2),
        "bee_cpu_s": spread(bee_cpu),
        "cpu_with_tools_s": spread(total_cpu),
        "peak_rss_mib": _peak_mib(rss),
        "collectors": {
            name: {"status": c["status"], "duration_s": c["duration_s"]}
            for name, c in median_run["collectors"].items()
        },
        "per_program": per_program,
        "failed_commands": [" ".join(c["argv"]) for c in failed],
        "errors": median_run["errors"][:10],
    }


# -- LLDP --------------------------------------------------------------------------------------


def child_lldp(window_s: float, out: Path) -> int:
    """In the child process: the network collector's LLDP window on this machine's own ports
    (every physical Ethernet port that is up), with the real AF_PACKET listener."""
    from bee.probe import Probe
    from bee.runner import SystemRunner
    from bee.tools import network

    probe = Probe(SystemRunner(), "network")
    cpu, start = time.process_time(), time.perf_counter()
    section = network.collect(probe, lldp_seconds=window_s)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    lldp = section.lldp if section is not None else None
    result = {
        "window_s": window_s,
        "collector_wall_s": round(wall, 3),
        "collector_cpu_s": round(cpu, 4),
        "listened": list(lldp.listened) if lldp else [],
        "listen_duration_s": lldp.duration_s if lldp else None,
        "neighbors": len(lldp.neighbors) if lldp else 0,
        "errors": probe.errors,
    }
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


def measure_lldp(window_s: float) -> dict[str, Any]:
    """LLDP's cost, apart from the audit: it only ever adds its window to the network section
    (the other collectors run beside it), and almost no CPU while it waits."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lldp.json"
        argv = [sys.executable, "-m", "buildtools.bench.bench", "--child-lldp", str(window_s)]
        run = _checked(run_measured([*argv, str(out)], cwd=REPO), "the LLDP window")
        result = json.loads(out.read_text(encoding="utf-8"))
    return {**result, "process_wall_s": round(run.wall_s, 3)}


# -- start-up ----------------------------------------------------------------------------------


def measure_startup(runs: int) -> dict[str, Any]:
    cases = {
        "python3 -c pass": [sys.executable, "-c", "pass"],
        "python3 -m bee --version": [sys.executable, "-m", "bee", "--version"],
    }
    pyz = DIST / "agent" / "bee.pyz"
    if pyz.is_file():
        cases["python3 dist/agent/bee.pyz --version"] = [sys.executable, str(pyz), "--version"]
    walls: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so drift on a shared machine hits all cases alike
        for name, argv in cases.items():
            walls[name].append(_checked(run_measured(argv, cwd=AGENT), name).wall_s)
    result: dict[str, Any] = {name: spread(values) for name, values in walls.items()}
    bare = result["python3 -c pass"]["median"]
    result["ratio"] = round(result["python3 -m bee --version"]["median"] / bare, 2)
    return result


# -- the ISO -----------------------------------------------------------------------------------

# "[3/9] SSH access (0.0s): notes"; a failed step ("[8/9] live-build: FAILED (9.0s)") is not one.
_STEP = re.compile(r"^\[(\d+)/(\d+)\] (.+?)(?<!: FAILED) \((\d+(?:\.\d+)?)s\)(?:: (.*))?$")
_CHECKS = re.compile(r"^checks passed \((\d+(?:\.\d+)?)s\)")
_LB_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] lb ")
# nvidia/build.py's first progress line: "      nvidia: cache (0.0s): hit /dist/nvidia-..." or
# "miss: ..."; logs from before the one runner had "nvidia: cache: hit ... (0.0s)".
_NVIDIA_CACHE = re.compile(r"^\s+\S+: cache(?: \(\d+(?:\.\d+)?s\))?: (hit|miss)\b")


def parse_build_log(text: str) -> dict[str, Any]:
    """Step times of one `nox -s build_iso` log (image/build_iso.py's Progress format)."""
    steps = []
    checks = 0.0
    for line in text.splitlines():
        if match := _CHECKS.match(line):
            checks = float(match.group(1))
        elif match := _STEP.match(line):
            steps.append(
                {
                    "step": int(match.group(1)),
                    "title": match.group(3),
                    "seconds": float(match.group(4)),
                    "note": match.group(5) or "",
                }
            )
    stamps = [m.group(1) for line in text.splitlines() if (m := _LB_TIME.match(line))]
    nvidia = "unknown"
    for line in text.splitlines():
        if match := _NVIDIA_CACHE.match(line):
            nvidia = "from cache" if match.group(1) == "hit" else "built"
    if any(s["step"] == 6 and "skipped" in s["note"] for s in steps):
        nvidia = "skipped"
    total = sum(s["seconds"] for s in steps)
    last = max((s["step"] for s in steps), default=0)
    total_steps = _total_steps(text)
    finished = any(s["step"] == total_steps for s in steps)
    return {
        "steps": steps,
        "checks_s": checks,
        "total_s": round(total + checks, 1),
        "finished": finished,
        "last_step": last,
        # A repeated build restores debootstrap's result from live-build's cache.
        "bootstrap": "ran debootstrap"
        if "I: Base system installed successfully" in text
        else ("from cache" if stamps else "unknown"),
        "nvidia": nvidia,
        "lb_started": stamps[0] if stamps else None,
    }


def _total_steps(text: str) -> int:
    match = re.search(r"^\[\d+/(\d+)\]", text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def iso_report(dist: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """What dist/ says about the image; builds seen by earlier bench runs are kept."""
    images = [
        {"path": str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p),
         "mib": round(p.stat().st_size / 2**20, 1),
         "built": datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat(timespec="seconds")}
        for p in sorted(dist.glob("*.iso"))
    ]  # fmt: skip
    # Finished builds are kept from earlier runs (each build overwrites its log); a build still
    # running, or one that failed, is shown as the log has it now and not kept.
    builds: dict[str, dict[str, Any]] = {}
    for build in (previous or {}).get("builds") or []:
        if isinstance(build, dict) and build.get("key") and build.get("finished"):
            builds[build["key"]] = build
    current = []
    # Not recursive: dist/lb-work/chroot may hold a mounted /proc while a build runs.
    logs = [*dist.glob("build-iso*.log"), *dist.glob("*/build-iso*.log")]
    for log in sorted(p for p in logs if p.is_file()):
        parsed = parse_build_log(log.read_text(encoding="utf-8", errors="replace"))
        if not parsed["steps"]:
            continue
        mtime = datetime.fromtimestamp(log.stat().st_mtime, UTC).isoformat(timespec="seconds")
        where = str(log.relative_to(REPO)) if log.is_relative_to(REPO) else str(log)
        key = f"{parsed['lb_started'] or mtime} {parsed['total_s']}s"
        entry = {"key": key, "log": where, "at": mtime, **parsed}
        if parsed["finished"]:
            builds[key] = entry
        else:
            current.append(entry)
    ordered = sorted(builds.values(), key=lambda b: b["key"]) + current
    done = [b for b in ordered if b["finished"]]
    # Clean: nothing from a cache (debootstrap ran, NVIDIA built or not wanted). Repeated:
    # everything from a cache. Builds in between are listed, not summarised.
    clean = [
        b for b in done if b["bootstrap"] == "ran debootstrap" and b.get("nvidia") != "from cache"
    ]
    repeated = [b for b in done if b["bootstrap"] == "from cache" and b.get("nvidia") != "built"]
    return {
        "images": images,
        "builds": ordered,
        "clean_build_s": clean[-1]["total_s"] if clean else None,
        "repeated_build_s": repeated[-1]["total_s"] if repeated else None,
    }


# -- bee report over a fleet ------------------------------------------------------------------


def measure_report(host: Path, work: Path, nodes: int, runs: int) -> dict[str, Any]:
    """`bee report` over `nodes` variants of the big host's document (buildtools.bench.fleet),
    and whether it named exactly the planted differences."""
    audits = work / f"fleet-{nodes}"
    shutil.rmtree(audits, ignore_errors=True)
    plan = fleet.make_fleet(bighost.replay(host), audits, nodes)
    walls, cpus, rss = [], [], []
    out_html, out_csv = work / "fleet-report.html", work / "fleet-report.csv"
    argv = bee_argv("report", str(audits), "-o", str(out_html), "--csv", str(out_csv))
    for _ in range(runs):
        run = _checked(run_measured(argv, cwd=AGENT), "bee report")
        walls.append(run.wall_s)
        cpus.append(run.cpu_s)
        rss.append(run.peak_kib)
    with out_csv.open(encoding="utf-8") as handle:
        flagged = {
            row["node"]: frozenset(row["differs_in"].split())
            for row in csv.DictReader(handle)
            if row["differs_in"]
        }
    return {
        "nodes": nodes,
        "audits_mib": round(capture_bytes(audits) / 2**20, 1),
        "html_mib": round(out_html.stat().st_size / 2**20, 1),
        "wall_s": spread(walls),
        "cpu_s": spread(cpus),
        "peak_rss_mib": _peak_mib(rss),
        "planted": {name: sorted(fields) for name, fields in sorted(plan.items())},
        "found_exactly_the_planted": flagged == plan,
    }


# -- report ------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(name: str, value: float | None, limit: float, unit: str) -> None:
        rows.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "unit": unit,
                "met": value is not None and value <= limit,
            }
        )

    slow = results.get("slow_tools") or {}
    add("audit / slowest command", slow.get("ratio_audit_to_slowest"), TARGET_SLOWEST_RATIO, "x")
    replay = (results.get("replay") or {}).get("big") or {}
    add("big host replay wall", (replay.get("wall_s") or {}).get("median"), TARGET_REPLAY_S, "s")
    grow = (results.get("growth") or {}).get("audit_s") or {}
    x4 = (grow.get("big x4") or {}).get("ratio")
    add("4x host / big host (replay)", x4, 4 * LINEAR_SLACK, "x")
    add("bee --version / python -c pass", (results.get("startup") or {}).get("ratio"),
        TARGET_STARTUP_RATIO, "x")  # fmt: skip
    add("peak memory, big host audit", results.get("peak_memory_mib"), TARGET_PEAK_MIB, "MiB")
    report = results.get("report") or {}
    report_wall = (report.get("wall_s") or {}).get("median")
    add(f"bee report, {report.get('nodes', '?')} audits", report_wall, TARGET_REPORT_S, "s")
    own = ((results.get("check") or {}).get("own_s") or {}).get("median")
    add("bee check, big host (own work)", own, TARGET_CHECK_S, "s")
    return rows


def _s(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: dict[str, Any]) -> str:
    out: list[str] = []
    machine = results.get("machine") or {}
    load = machine.get("load_average_at_start")
    out.append(
        f"bee bench on {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}, "
        f"{machine.get('kernel', '?')}" + (f", load average {load[0]:.2f} at start" if load else "")
    )
    replay = results.get("replay") or {}
    if replay:
        out += ["", "Replay cost: python3 -m bee audit --replay HOST (median of runs)"]
        out.append(
            f"  {'host':<8} {'GPUs':>5} {'disks':>6} {'DIMMs':>6} {'PCI':>5} {'wall s':>8}"
            f" {'CPU s':>7} {'audit s':>8} {'RSS MiB':>8}"
        )
        for name, row in replay.items():
            shape = ((results.get("hosts") or {}).get(name) or {}).get("shape") or {}
            disks = (shape.get("disks") or 0) + (shape.get("nvme") or 0)
            out.append(
                f"  {name:<8} {shape.get('gpus', '-'):>5} {disks:>6} {shape.get('dimms', '-'):>6}"
                f" {shape.get('pci', '-'):>5} {_s(row['wall_s']['median']):>8}"
                f" {_s(row['cpu_s']['median']):>7} {_s(row['audit_s']['median']):>8}"
                f" {_s(row['peak_rss_mib'], 1):>8}"
            )
        big = replay.get("big") or {}
        if big.get("collectors_s"):
            slowest = sorted(big["collectors_s"].items(), key=lambda kv: -kv[1])[:4]
            out.append(
                "  big host, slowest collectors (s): "
                + ", ".join(f"{n} {v:.3f}" for n, v in slowest)
            )
        grow = results.get("growth") or {}
        for key, label in (("wall_s", "process wall"), ("audit_s", "audit alone")):
            g = grow.get(key) or {}
            if g:
                out.append(
                    f"  growth ({label}): x2 host {g['big x2']['ratio']}x, x4 host"
                    f" {g['big x4']['ratio']}x, cost ~ size^{g['exponent']}"
                )
    slow = results.get("slow_tools")
    if slow:
        out += ["", "Concurrency: full audit against slow tools (median of runs)"]
        out.append(f"  method: {slow['method']}")
        out.append(
            f"  audit wall            {_s(slow['audit_wall_s']['median'])} s"
            + (
                f"  (as a process, start-up included: {_s(slow['process_wall_s']['median'])} s)"
                if slow.get("process_wall_s")
                else ""
            )
        )
        slowest = slow["slowest_command"]
        out.append(
            f"  slowest command       {_s(slowest['duration_s'])} s  ({' '.join(slowest['argv'])})"
        )
        out.append(
            f"  sum of {slow['commands']} commands  {_s(slow['sum_of_commands_s'])} s"
            "  (a sequential agent)"
        )
        out.append(f"  audit / slowest       {slow['ratio_audit_to_slowest']:.3f}x   <- headline")
        if "overhead_s" in slow:
            out.append(f"  audit - slowest       {slow['overhead_s']:.3f} s  (what bee adds)")
        out.append(f"  sum / audit           {slow['ratio_sum_to_audit']:.2f}x")
        out.append(
            f"  bee's own CPU         {_s(slow['bee_cpu_s']['median'])} s"
            f"  (with the tools: {_s(slow['cpu_with_tools_s']['median'])} s)"
        )
        collectors = ", ".join(
            f"{n} {c['duration_s']:.2f}" for n, c in (slow.get("collectors") or {}).items()
        )
        out.append(f"  collectors (s)        {collectors}")
        if slow.get("failed_commands"):
            out.append(f"  failed commands       {', '.join(slow['failed_commands'][:5])}")
    check = results.get("check")
    if check:
        out += ["", "bee check SPEC AUDIT on the big host (spec from its own audit; median)"]
        out.append(
            f"  {check['checks']} checks, {check['status']}, audit {check['audit_mib']} MiB:"
            f" bee's own work {_s(check['own_s']['median'])} s,"
            f" as a process {_s(check['process_wall_s']['median'])} s"
        )
    lldp = results.get("lldp")
    if lldp:
        out += ["", "LLDP (apart from the audit above, which runs without it)"]
        out.append(
            f"  window {lldp['window_s']:g} s on {len(lldp['listened'])} port(s)"
            f" {', '.join(lldp['listened']) or '(none up)'}: network collector"
            f" {_s(lldp['collector_wall_s'])} s wall, {_s(lldp['collector_cpu_s'], 4)} s CPU,"
            f" {lldp['neighbors']} neighbour(s)"
        )
        out.append("  an audit with LLDP takes max(slowest tool, window): the others run beside it")
    startup = results.get("startup")
    if startup:
        out += ["", "Start-up (median wall)"]
        for name, row in startup.items():
            if isinstance(row, dict):
                out.append(f"  {name:<38} {row['median'] * 1000:7.1f} ms  (n={row['n']})")
        out.append(f"  ratio bee / bare python               {startup['ratio']:.2f}x")
    if "peak_memory_mib" in results:
        peak = results["peak_memory_mib"]
        shown = "not reported by every run" if peak is None else f"{peak:.1f} MiB"
        out += ["", f"Peak memory of the big-host audit: {shown}"]
    report = results.get("report")
    if report:
        out += ["", f"bee report over {report['nodes']} big-host audits (median of runs)"]
        out.append(
            f"  {report['audits_mib']} MiB of documents -> {report['html_mib']} MiB of HTML:"
            f" wall {_s(report['wall_s']['median'])} s, CPU {_s(report['cpu_s']['median'])} s,"
            f" peak {_s(report['peak_rss_mib'], 1)} MiB"
        )
        found = "yes" if report["found_exactly_the_planted"] else "NO"
        out.append(f"  named exactly the {len(report['planted'])} planted nodes: {found}")
    iso = results.get("iso")
    if iso is not None:
        out += ["", "ISO"]
        if not iso["images"]:
            out.append("  not built (no dist/*.iso)")
        for image in iso["images"]:
            out.append(f"  {image['path']}: {image['mib']:.1f} MiB, built {image['built']}")
        for build in iso["builds"]:
            state = "finished" if build["finished"] else f"stopped after step {build['last_step']}"
            started = build.get("lb_started") or build.get("at")
            out.append(
                f"  build {started}: {build['total_s']:.1f} s, {state},"
                f" bootstrap {build['bootstrap']}, NVIDIA {build.get('nvidia', 'unknown')}"
                f" ({build['log']})"
            )
        out.append(
            f"  clean build {_s(iso['clean_build_s'], 1)} s,"
            f" repeated build {_s(iso['repeated_build_s'], 1)} s"
        )
    rows = results.get("targets") or []
    if rows:
        out += ["", "Targets (reported, not asserted)"]
        for row in rows:
            mark = "met" if row["met"] else "MISSED"
            value = "-" if row["value"] is None else f"{row['value']:.3f}"
            out.append(
                f"  {row['target']:<34} {value:>8} {row['unit']:<3} <= {row['limit']:g}  {mark}"
            )
    notes = sorted({n for h in (results.get("hosts") or {}).values() for n in h.get("notes", [])})
    if notes:
        out += ["", "Notes on the synthetic host"] + [f"  {n}" for n in notes]
    return "\n".join(out) + "\n"


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- command line ------------------------------------------------------------------------------


def parse_delay(text: str) -> tuple[str, float]:
    program, sep, value = text.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not sep or not program or not 0 <= seconds <= 60:
        raise argparse.ArgumentTypeError(f"expected PROGRAM=SECONDS (0..60), got {text!r}")
    return program, seconds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m buildtools.bench.bench",
        description="Benchmark bee's audit on a synthetic big GPU server.",
    )
    parser.add_argument("--runs", type=_positive, default=5, help="replay runs per host size")
    parser.add_argument("--slow-runs", type=_positive, default=3, help="audits against shims")
    parser.add_argument("--startup-runs", type=_positive, default=20, help="start-up runs")
    parser.add_argument("--report-nodes", type=_positive, default=1000, help="bee report's fleet")
    parser.add_argument("--report-runs", type=_positive, default=3, help="bee report runs")
    parser.add_argument(
        "--delay",
        type=parse_delay,
        action="append",
        default=[],
        metavar="PROGRAM=SECONDS",
        help="per-call delay of a slow tool (defaults: "
        + ", ".join(f"{k}={v:g}" for k, v in bighost.DEFAULT_DELAYS.items())
        + ")",
    )
    parser.add_argument("--fixtures", type=Path, default=bighost.DEFAULT_FIXTURES)
    parser.add_argument(
        "--raw",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="capture.sh output directories to take seeds from too (default: those found"
        " under dist/*-capture/)",
    )
    parser.add_argument("--work", type=Path, default=DIST / "bench", help="hosts and shims")
    parser.add_argument("--out", type=Path, default=DIST / "bench.json", help="the JSON report")
    parser.add_argument(
        "--iso-only",
        action="store_true",
        help="only re-read dist/ for the ISO and its build logs (seconds; keeps the other numbers"
        " of --out); run it after each build so clean and repeated builds are both on record",
    )
    parser.add_argument(
        "--lldp-window",
        type=float,
        default=31.0,
        metavar="SECONDS",
        help="LLDP window measured on this machine's ports (default 31, bee's; 0 skips it)",
    )
    parser.add_argument(
        "--child-slow-audit", nargs=3, type=Path, help=argparse.SUPPRESS, metavar="X"
    )
    parser.add_argument("--child-lldp", nargs=2, help=argparse.SUPPRESS, metavar="X")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child_slow_audit:
        if str(AGENT) not in sys.path:
            sys.path.insert(0, str(AGENT))
        return child_slow_audit(*args.child_slow_audit)
    if args.child_lldp:
        if str(AGENT) not in sys.path:
            sys.path.insert(0, str(AGENT))
        return child_lldp(float(args.child_lldp[0]), Path(args.child_lldp[1]))
    delays = dict(bighost.DEFAULT_DELAYS | dict(args.delay))
    earlier: dict[str, Any] = {}
    if args.out.is_file():
        try:
            loaded = json.loads(args.out.read_text(encoding="utf-8"))
            earlier = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            earlier = {}
    previous = earlier.get("iso") if isinstance(earlier.get("iso"), dict) else None
    if args.iso_only:
        results = {k: v for k, v in earlier.items() if k != "targets"}
        results["iso"] = iso_report(DIST, previous)
        results["targets"] = targets(results)
        sys.stdout.write(format_table(results))
        write_json(args.out, results)
        return 0
    results: dict[str, Any] = {
        "format": "bee-bench/1",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "kernel": platform.release(),
            "executable": sys.executable,
        },
        "delays_s": delays,
    }
    try:
        say("generating and verifying the hosts ...")
        raw = dist_captures(DIST) if args.raw is None else args.raw
        results["raw_captures"] = [str(p) for p in raw]
        results["hosts"] = make_hosts(args.work, args.fixtures, raw, delays)
        say(f"replaying each host {args.runs} times ...")
        results["replay"] = {
            name: measure_replay(Path(h["dir"]), args.runs) for name, h in results["hosts"].items()
        }
        results["growth"] = growth(results["replay"])
        say(f"auditing the big host against slow tools {args.slow_runs} times ...")
        big = Path(results["hosts"]["big"]["dir"])
        shims = args.work / "shims"
        write_shims(big, shims, delays)
        results["slow_tools"] = measure_slow(big, shims, args.slow_runs)
        say(f"bee report over {args.report_nodes} audits, {args.report_runs} times ...")
        results["report"] = measure_report(big, args.work, args.report_nodes, args.report_runs)
        say(f"bee check on the big host, {args.runs} times ...")
        results["check"] = measure_check(big, args.runs)
        if args.lldp_window > 0:
            say(f"an LLDP window of {args.lldp_window:g} s on this machine's ports ...")
            results["lldp"] = measure_lldp(args.lldp_window)
        say(f"start-up, {args.startup_runs} runs each ...")
        results["startup"] = measure_startup(args.startup_runs)
        peaks = [results["replay"]["big"]["peak_rss_mib"], results["slow_tools"]["peak_rss_mib"]]
        results["peak_memory_mib"] = None if None in peaks else max(peaks)
        results["iso"] = iso_report(DIST, previous)
    except (BenchError, BigHostError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bench: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    results["targets"] = targets(results)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    sys.stdout.write(format_table(results))
    write_json(args.out, results)
    say(f"written {args.out}")
    return 0


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
