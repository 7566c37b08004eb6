"""`bee audit`: run every collector concurrently under one deadline, assemble the document.

The collectors are those of `bee.registry` (declared by the modules of `bee.tools`); they run in
parallel, so the audit takes about as long as its slowest tool. Nothing a collector does is
fatal: an exception, a failed tool or the deadline becomes data in the document (`collectors`,
`errors`, `commands`).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bee import __version__, stops
from bee.capture import MANIFEST, RecordingRunner
from bee.findings import Finding
from bee.probe import Probe, Shared
from bee.registry import Collector, load
from bee.runner import CommandResult, Runner, first_line
from bee.serialize import to_jsonable

log = logging.getLogger("bee")

SCHEMA_VERSION = 1
DEFAULT_DEADLINE_S = 120.0
# After the deadline: how long collectors get to return once their commands are killed, and
# how long the capture's manifest may take past it. The document is therefore ready at most
# deadline + ABORT_GRACE_S + the runner's kill waits (4 s) + FINISH_GRACE_S after the start,
# whatever a tool, a parser, a /proc read or the capture's disk does.
ABORT_GRACE_S = 3.0
FINISH_GRACE_S = 3.0
JOIN_STEP_S = 0.2
STDERR_EXCERPT_CHARS = 300


@dataclass(slots=True)
class Outcome:
    """One collector's result. Written once, under `lock`, by whoever closes it first: the
    collector's thread when it returns, or the main thread when it gives up on it; a thread
    that returns after that changes nothing the document was built from."""

    name: str
    status: str = "running"  # ok | empty | failed | timeout
    duration_s: float = 0.0
    data: Any = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


HOST_FIELDS = ("hostname", "kernel", "boot_id", "machine_id")


def collect_host(runner: Runner) -> dict[str, str | None]:
    def value(path: str) -> str | None:
        text = runner.read_text(path)
        return text.strip() or None if text is not None else None

    return {
        "hostname": value("/proc/sys/kernel/hostname"),  # the keys are HOST_FIELDS
        "kernel": value("/proc/sys/kernel/osrelease"),
        "boot_id": value("/proc/sys/kernel/random/boot_id"),
        "machine_id": value("/etc/machine-id"),
    }


def _run_collector(collector: Collector, probe: Probe, outcome: Outcome, start: float) -> None:
    stops.release_in_thread()
    data = None
    try:
        data = collector.collect(probe)
        status = "ok" if data is not None else "empty"
    except Exception as exc:
        log.debug("%s collector raised:\n%s", collector.name, traceback.format_exc())
        probe.error(f"collector raised {type(exc).__name__}: {exc}")
        status = "failed"
    with outcome.lock:
        if outcome.closed:
            return  # given up on at the deadline: the document no longer waits for it
        outcome.data = data
        outcome.status = status if outcome.status == "running" else outcome.status
        _close(outcome, probe, start)


def _close(outcome: Outcome, probe: Probe, start: float, *extra_errors: str) -> None:
    """Snapshot what the probe recorded (called with outcome.lock held)."""
    outcome.duration_s = round(time.monotonic() - start, 3)
    outcome.errors = [*probe.errors, *extra_errors]
    outcome.notes = list(probe.notes)
    outcome.closed = True


def run_collectors(
    runner: Runner,
    *,
    deadline_s: float,
    collectors: Sequence[Collector],
    options: Mapping[str, Any] | None = None,
    end: float | None = None,
) -> list[Outcome]:
    """Run all collectors in daemon threads; past the deadline (`end`, a time.monotonic()
    value; by default deadline_s from now), kill their tools and move on."""
    start = time.monotonic()
    end = start + deadline_s if end is None else end
    outcomes = [Outcome(c.name) for c in collectors]
    shared = Shared()  # a command several collectors ask for runs once per audit
    probes = [Probe(runner, c.name, shared, options or {}) for c in collectors]
    threads = [
        threading.Thread(
            target=_run_collector,
            args=(collector, probe, outcome, start),
            name=f"bee-{collector.name}",
            daemon=True,  # a thread stuck past the deadline must not keep bee alive
        )
        for collector, probe, outcome in zip(collectors, probes, outcomes, strict=True)
    ]
    with stops.held():  # a stop inside Thread.start() broke its lock (see bee.stops)
        for thread in threads:
            thread.start()
    _join_until(threads, end)
    late = []
    for outcome in outcomes:
        with outcome.lock:
            if not outcome.closed:
                outcome.status = "timeout"
                late.append(outcome)
    if late:
        log.warning(
            "deadline of %.0f s passed; stopping %s", deadline_s, ", ".join(o.name for o in late)
        )
        with stops.held():  # abort() waits on a Condition too
            _call(runner, "abort")
        _join_until(threads, time.monotonic() + ABORT_GRACE_S)
        message = f"did not finish within the {deadline_s:.0f} s deadline"
        for outcome, probe in zip(outcomes, probes, strict=True):
            if outcome not in late:
                continue
            with outcome.lock:
                if outcome.closed:  # returned in the grace, its tools killed: data kept
                    outcome.errors.append(message)
                else:
                    _close(outcome, probe, start, message)
    _call(runner, "kill_leftovers")
    return outcomes


def _in_thread(name: str, func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start func in a daemon thread; its result lands in the returned list."""
    box: list[Any] = []

    def run() -> None:
        stops.release_in_thread()
        box.append(func())

    thread = threading.Thread(target=run, name=f"bee-{name}", daemon=True)
    with stops.held():
        thread.start()
    return thread, box


def _join_until(threads: list[threading.Thread], end: float) -> None:
    """Wait for the threads until `end`, in short steps: Ctrl-C or SIGTERM delivered to another
    thread only runs its handler once the main thread wakes, and a long join would not."""
    while (alive := [t for t in threads if t.is_alive()]) and time.monotonic() < end:
        alive[0].join(min(JOIN_STEP_S, max(0.0, end - time.monotonic())))


def _call(runner: Runner, method: str) -> None:
    """Deadline controls exist on the system runner only (a replay has no processes)."""
    inner = getattr(runner, "inner", runner)
    func = getattr(inner, method, None)
    if callable(func):
        func()


def _replayed_from(runner: Runner) -> dict[str, Any]:
    """A replay's document says when its data was captured, not only when it was replayed."""
    meta = getattr(runner, "meta", None)
    if not isinstance(meta, dict):
        return {}
    host = meta.get("host")
    return {
        "replayed_from": {
            "captured_at": meta.get("captured_at")
            if isinstance(meta.get("captured_at"), str)
            else None,
            "bee_version": meta.get("bee_version")
            if isinstance(meta.get("bee_version"), str)
            else None,
            "host": host if isinstance(host, dict) else None,
        }
    }


def command_entry(result: CommandResult) -> dict[str, Any]:
    stderr = result.stderr.strip()
    return {
        "argv": list(result.argv),
        "returncode": result.returncode,
        "duration_s": result.duration_s,
        "timed_out": result.timed_out,
        "not_found": result.not_found,
        "stdout_bytes": len(result.stdout.encode("utf-8", errors="replace")),
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "stderr_excerpt": stderr[:STDERR_EXCERPT_CHARS] or None,
        "error": result.error,
    }


def run_audit(
    runner: Runner,
    *,
    deadline_s: float = DEFAULT_DEADLINE_S,
    capture_dir: Path | None = None,
    mode: str = "live",
    collectors: Sequence[Collector] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the whole audit and return the document (a JSON-ready dict). `collectors` defaults
    to the registry's; `options` reach every collector as `probe.options`."""
    registry = load()
    if collectors is None:
        collectors = registry.collectors
    started_at = utc_now()
    start = time.monotonic()
    set_deadline = getattr(runner, "set_deadline", None)
    if callable(set_deadline):
        set_deadline(start + deadline_s)
    recorder = RecordingRunner(runner, capture_dir)
    end = start + deadline_s
    try:
        # The host's identity is read beside the collectors, under the same deadline: a read
        # of /proc or /etc that blocks (a FIFO, a hung file system) must not hold the audit.
        host_thread, host_box = _in_thread("host", lambda: collect_host(recorder))
        outcomes = run_collectors(
            recorder, deadline_s=deadline_s, collectors=collectors, options=options, end=end
        )
        _join_until([host_thread], end)
    except BaseException:  # a stop signal: leave no tool running behind us
        with stops.held():  # a second stop waits until the tools are killed
            _call(runner, "abort")
            _call(runner, "kill_leftovers")
        raise

    host = host_box[0] if host_box else dict.fromkeys(HOST_FIELDS)
    sections = {o.name: o.data for o in outcomes}
    errors = [{"collector": "registry", "message": m} for m in registry.errors]
    if not host_box:
        message = (
            f"reading the host's identity did not finish within the {deadline_s:.0f} s deadline"
        )
        errors.append({"collector": "host", "message": message})
    errors += [{"collector": o.name, "message": m} for o in outcomes for m in o.errors]
    findings: list[Finding] = []
    for collector in collectors:
        if collector.findings is None:
            continue
        try:
            findings.extend(collector.findings(sections))
        except Exception as exc:
            log.debug("%s findings raised:\n%s", collector.name, traceback.format_exc())
            message = f"{collector.name} findings raised {type(exc).__name__}: {exc}"
            errors.append({"collector": "findings", "message": first_line(message, 300)})

    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "bee_version": __version__,
        "mode": mode,
        "host": host,
        "started_at": started_at,
        "finished_at": utc_now(),
        "duration_s": round(time.monotonic() - start, 3),
        "deadline_s": deadline_s,
        **_replayed_from(runner),
        "collectors": {
            o.name: {"status": o.status, "duration_s": o.duration_s, "notes": o.notes}
            for o in outcomes
        },
    }
    for outcome in outcomes:
        document[outcome.name] = to_jsonable(outcome.data)
    document["findings"] = to_jsonable(findings)
    # The manifest is written last; a capture disk that hangs costs at most FINISH_GRACE_S.
    finish, finished = _in_thread(
        "capture",
        lambda: recorder.finish(bee_version=__version__, captured_at=started_at, host=host),
    )
    _join_until([finish], max(end, time.monotonic()) + FINISH_GRACE_S)
    if finish.is_alive():
        message = f"capture: {MANIFEST} not written within the deadline; the capture is incomplete"
        errors.append({"collector": "capture", "message": message})
    for message in recorder.errors if finished else []:
        log.warning("%s", message)
        errors.append({"collector": "capture", "message": message})
    document["errors"] = errors
    document["commands"] = [command_entry(r) for r in recorder.results]
    return document
