"""Where a boot's time goes: its phases, from the serial console and from systemd-analyze.

The serial log has no clock of its own before the kernel's, so `SerialClock` tails it while the
VM runs and records when (seconds after QEMU started) each line arrived. From those lines:

    firmware     QEMU start -> the bootloader's first line ("ISOLINUX 6.04 ..." under SeaBIOS,
                 "GNU GRUB  version 2.12" under OVMF); netboot and -kernel boots have none
    bootloader   -> the kernel's clock starts (its menu timeout and the reads of kernel and
                 initrd through the firmware's disk calls)
    kernel       -> "Run /init as init process" (kernel timestamps)
    initramfs    -> the switch to the real root: the kernel's "Not activating Mandatory Access
                 Control as /sbin/tomoyo-init does not exist." when it runs /sbin/init (live-boot:
                 finding the medium, mounting the squashfs, the overlay)
    systemd start -> systemd's first line "systemd[1]: systemd 257.9-1~deb13u1 running in
                 system mode" (loading systemd itself from the squashfs)
    systemd      -> SSH login works (taken by vm_test on the host)
    audit        -> bee-audit.service has written /run/bee/audit-status

Where the kernel's clock started is estimated from the lines that carry a kernel timestamp
("[   12.345678] ..."): the smallest (arrival - timestamp) over them, since buffered lines
arrive late but none arrives before it is printed. Under TCG the guest clock follows the host's.

Pure parts (unit-tested): phases_from_lines, longest_silences, parse_startup_finished.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
_KERNEL_TS = re.compile(r"^\[\s*(\d{1,6})\.(\d{1,9})\]")
BOOTLOADER = re.compile(r"ISOLINUX \d|SYSLINUX \d|GNU GRUB\s+version")
RUN_INIT = re.compile(r"Run /init as init process")
# TOMOYO (in Debian's lsm= list) says this when the kernel executes /sbin/init in the real root.
SWITCH_ROOT = re.compile(r"Not activating Mandatory Access Control as /sbin/tomoyo-init")
SYSTEMD_FIRST = re.compile(r"systemd\[1\]: systemd \d+\S* running in system mode")
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class SerialLine:
    at_s: float  # seconds after QEMU started that the line was complete in the log
    text: str  # without escape sequences, carriage returns or the newline


def clean(raw: str) -> str:
    """One console line as text: escape sequences and carriage returns removed."""
    text = _ANSI.sub("", raw)
    # GRUB and systemd redraw with \r: keep what was written last on the line.
    return text.rstrip("\r").rsplit("\r", 1)[-1].strip()


def kernel_timestamp(text: str) -> float | None:
    match = _KERNEL_TS.match(text)
    if match is None:
        return None
    return int(match[1]) + int(match[2]) / 10 ** len(match[2])


class SerialClock:
    """Tails a serial log file in a thread; `lines()` gives each line with when it arrived."""

    def __init__(self, path: Path, started: float) -> None:
        self.path = path
        self.started = started
        self._lines: list[SerialLine] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial {path.name}", daemon=True)

    def start(self) -> SerialClock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._read(final=True)

    def lines(self) -> list[SerialLine]:
        with self._lock:
            return list(self._lines)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._read(final=False)

    _offset = 0
    _partial = b""

    def _read(self, *, final: bool) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        if not chunk and not (final and self._partial):
            return
        now = time.monotonic() - self.started
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        new = [SerialLine(now, clean(line.decode("utf-8", errors="replace"))) for line in complete]
        with self._lock:
            self._lines += [line for line in new if line.text]


@dataclass(frozen=True, slots=True, kw_only=True)
class Phases:
    """Seconds after QEMU started at which each phase ended; None where it was not seen."""

    bootloader_at_s: float | None  # the bootloader's first line (the firmware's end)
    kernel_at_s: float | None  # the kernel's clock started (estimated, see the module doc)
    init_at_s: float | None  # the kernel runs the initramfs's /init
    switch_root_at_s: float | None  # the kernel runs the real root's /sbin/init
    systemd_at_s: float | None  # systemd's first line
    ssh_at_s: float | None = None
    audit_at_s: float | None = None

    def rows(self) -> list[tuple[str, float | None, float | None]]:
        """(phase, seconds it took, seconds after power-on when it ended) in boot order. A phase
        whose end was not seen joins the next ("firmware + bootloader" on a -kernel boot)."""
        marks = [
            ("firmware", self.bootloader_at_s),
            ("bootloader", self.kernel_at_s),
            ("kernel", self.init_at_s),
            ("initramfs", self.switch_root_at_s),
            ("systemd start", self.systemd_at_s),
            ("systemd to SSH", self.ssh_at_s),
            ("SSH to audit done", self.audit_at_s),
        ]
        rows: list[tuple[str, float | None, float | None]] = []
        previous, unseen = 0.0, []
        for name, at in marks:
            if at is None:
                unseen.append(name)
                continue
            rows.append((" + ".join([*unseen, name]), at - previous, at))
            previous, unseen = at, []
        rows += [(name, None, None) for name in unseen]
        return rows


def phases_from_lines(lines: list[SerialLine]) -> Phases:
    """The phase marks of one boot's serial console."""
    bootloader = next((line.at_s for line in lines if BOOTLOADER.search(line.text)), None)
    offsets = [line.at_s - ts for line in lines if (ts := kernel_timestamp(line.text)) is not None]
    kernel = max(0.0, min(offsets)) if offsets else None

    def kernel_mark(pattern: re.Pattern[str]) -> float | None:
        for line in lines:
            if pattern.search(line.text):
                ts = kernel_timestamp(line.text)
                return kernel + ts if kernel is not None and ts is not None else line.at_s
        return None

    return Phases(
        bootloader_at_s=bootloader,
        kernel_at_s=kernel,
        init_at_s=kernel_mark(RUN_INIT),
        switch_root_at_s=kernel_mark(SWITCH_ROOT),
        systemd_at_s=kernel_mark(SYSTEMD_FIRST),
    )


def longest_silences(lines: list[SerialLine], count: int = 8) -> list[tuple[float, str, str]]:
    """The `count` longest waits between two console lines: (seconds, line before, line after),
    in boot order. By arrival time, so they hold for lines without a kernel timestamp too."""
    gaps = [
        (after.at_s - before.at_s, index)
        for index, (before, after) in enumerate(itertools.pairwise(lines), 1)
    ]
    worst = sorted(index for _gap, index in sorted(gaps, reverse=True)[:count])
    return [
        (lines[i].at_s - lines[i - 1].at_s, lines[i - 1].text[:120], lines[i].text[:120])
        for i in worst
    ]


# "Startup finished in 2.544s (kernel) + 1min 3.211s (userspace) = 1min 5.755s"
# "Startup finished in 10.1s (firmware) + 5.2s (loader) + 2.5s (kernel) + 40.3s (userspace) ..."
_STARTUP_PART = re.compile(r"([0-9][0-9a-z. ]*?) \((firmware|loader|kernel|initrd|userspace)\)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(min|ms|us|s|h)\b")
_UNIT_S = {"h": 3600.0, "min": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def parse_duration(text: str) -> float | None:
    """systemd's "1min 3.211s" / "812ms" as seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def parse_startup_finished(text: str) -> dict[str, float]:
    """`systemd-analyze` (time)'s first line: seconds per part (kernel, initrd, userspace...)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("Startup finished in")), "")
    parts: dict[str, float] = {}
    for duration, name in _STARTUP_PART.findall(line.removeprefix("Startup finished in")):
        seconds = parse_duration(duration.strip(" +"))
        if seconds is not None:
            parts[name] = seconds
    return parts


def parse_blame(text: str, count: int = 10) -> list[tuple[float, str]]:
    """`systemd-analyze blame`'s first lines: (seconds, unit), slowest first."""
    rows: list[tuple[float, str]] = []
    for raw in text.splitlines():
        duration, _, unit = raw.strip().rpartition(" ")
        seconds = parse_duration(duration)
        if seconds is not None and unit:
            rows.append((seconds, unit))
    return sorted(rows, reverse=True)[:count]
