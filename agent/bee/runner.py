"""Every external command and every /sys or /proc read goes through a Runner.

`SystemRunner` runs real tools: argv only (never a shell), `LC_ALL=C`, output capped and decoded
with replacement, each command in its own process group that is killed (TERM, then KILL) on
timeout, and waited for a bounded time only, so a child stuck in the kernel cannot hang bee.
`CapturingRunner` (capture.py) records what a runner saw; `ReplayRunner` (capture.py) plays it
back. Collectors cannot tell them apart.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bee import packets

OUTPUT_CAP_BYTES = 8 * 1024 * 1024
STDERR_CAP_BYTES = 256 * 1024
FILE_CAP_BYTES = 1024 * 1024
TERM_GRACE_S = 2.0
KILL_WAIT_S = 2.0
# How long output is still read after the tool itself exited (a child may keep the pipe open).
PIPE_DRAIN_S = 0.5
LISTEN_DEADLINE_MARGIN_S = 1.0

# Return codes for commands that did not run to completion, as sos and coreutils use them.
RC_TIMEOUT = 124
RC_NOT_EXECUTABLE = 126
RC_NOT_FOUND = 127


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    not_found: bool = False
    error: str | None = None  # why it could not start, or was not waited for

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def program(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else ""

    def describe_failure(self) -> str:
        """One line for the document's errors: what ran and how it ended."""
        cmd = " ".join(self.argv)
        if self.not_found:
            return f"{cmd}: not installed"
        if self.timed_out:
            return f"{cmd}: timed out after {self.duration_s:.1f} s"
        if self.error:
            return f"{cmd}: {self.error}"
        detail = first_line(self.stderr) or first_line(self.stdout)
        return f"{cmd}: exit {self.returncode}" + (f": {detail}" if detail else "")


def first_line(text: str, limit: int = 200) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


class Runner(Protocol):
    """What collectors may do to the machine: run a tool, read a file, list a directory."""

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult: ...

    def read_text(self, path: str) -> str | None: ...

    def list_dir(self, path: str) -> list[str] | None: ...

    def read_link(self, path: str) -> str | None: ...

    # Runners may also offer `receive_frames(interfaces, *, ethertype, seconds) -> Frames`
    # (bee/packets.py): passive raw-frame listening, which captures record. Probe.receive_frames
    # treats a runner without it as one that cannot listen.


class SystemRunner:
    """Runs real commands and reads the real file system."""

    def __init__(
        self,
        *,
        output_cap: int = OUTPUT_CAP_BYTES,
        stderr_cap: int = STDERR_CAP_BYTES,
        env: dict[str, str] | None = None,
    ) -> None:
        self._output_cap = output_cap
        self._stderr_cap = stderr_cap
        base = dict(os.environ if env is None else env)
        base.update(LC_ALL="C", LANG="C", LANGUAGE="C")
        self._env = base
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)
        self._starting = 0  # processes between the deadline check and their registration
        self._live: dict[int, subprocess.Popen[bytes]] = {}
        self._groups: set[int] = set()  # every process group started, for the final sweep
        self._deadline: float | None = None  # time.monotonic() value
        self._aborted = False

    # -- deadline -------------------------------------------------------------------------
    def set_deadline(self, deadline: float | None) -> None:
        self._deadline = deadline

    def abort(self) -> None:
        """Stop everything: kill every live process group, refuse new commands."""
        with self._started:
            self._aborted = True
            self._started.wait_for(lambda: self._starting == 0, timeout=KILL_WAIT_S)
            live = list(self._live.values())
        for proc in live:
            _signal_group(proc, signal.SIGKILL)
        # Reap them, for a bounded time: bee exits right after a stop and leaves no tool behind.
        until = time.monotonic() + KILL_WAIT_S
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # stuck in the kernel: _stop() reports it as abandoned

    def kill_leftovers(self) -> None:
        """SIGKILL what is left of every process group bee started (daemonised grandchildren)."""
        with self._lock:
            groups = list(self._groups)
            self._groups.clear()
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- commands -------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout_s: float = 30.0) -> CommandResult:
        argv = tuple(argv)
        start = time.monotonic()
        if self._deadline is not None:
            timeout_s = min(timeout_s, max(0.0, self._deadline - start))
        with self._lock:
            refused = self._aborted or timeout_s <= 0
            if not refused:
                self._starting += 1
        if refused:
            return CommandResult(
                argv=argv,
                returncode=RC_TIMEOUT,
                stdout="",
                stderr="",
                duration_s=0.0,
                timed_out=True,
                error="not started: the audit deadline had passed",
            )
        try:
            proc = self._spawn(argv)
        except FileNotFoundError:
            return CommandResult(
                argv=argv,
                returncode=RC_NOT_FOUND,
                stdout="",
                stderr="",
                duration_s=time.monotonic() - start,
                not_found=True,
            )
        except OSError as exc:
            return CommandResult(
                argv=argv,
                returncode=RC_NOT_EXECUTABLE,
                stdout="",
                stderr="",
                duration_s=time.monotonic() - start,
                error=exc.strerror or str(exc),
            )
        try:
            return self._communicate(proc, argv, start, start + timeout_s)
        finally:
            with self._lock:
                self._live.pop(proc.pid, None)

    def _spawn(self, argv: tuple[str, ...]) -> subprocess.Popen[bytes]:
        """Start argv in its own process group and register it, unless the audit was aborted.

        The `_starting` count lets `abort()` wait for a start in flight: a process is either
        registered before abort sweeps, or sees the abort itself and is killed here.
        """
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            with self._started:
                self._starting -= 1
                self._started.notify_all()
            raise
        with self._started:
            self._starting -= 1
            self._live[proc.pid] = proc
            self._groups.add(proc.pid)
            self._started.notify_all()
            aborted = self._aborted
        if aborted:
            _signal_group(proc, signal.SIGKILL)
        return proc

    def _communicate(
        self, proc: subprocess.Popen[bytes], argv: tuple[str, ...], start: float, until: float
    ) -> CommandResult:
        assert proc.stdout is not None and proc.stderr is not None
        caps = {proc.stdout: self._output_cap, proc.stderr: self._stderr_cap}
        chunks: dict[object, list[bytes]] = {proc.stdout: [], proc.stderr: []}
        sizes = {proc.stdout: 0, proc.stderr: 0}
        truncated = {proc.stdout: False, proc.stderr: False}
        timed_out = False
        with selectors.DefaultSelector() as sel:
            for stream in (proc.stdout, proc.stderr):
                os.set_blocking(stream.fileno(), False)
                sel.register(stream, selectors.EVENT_READ)
            exited_at: float | None = None
            while sel.get_map():
                now = time.monotonic()
                remaining = until - now
                if remaining <= 0 or self._aborted:
                    timed_out = True
                    break
                # The tool has exited but a child it left holds the pipe open: what the tool
                # printed is in by now; the child is swept with the tool's group later.
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > PIPE_DRAIN_S:
                    break
                for key, _ in sel.select(timeout=min(remaining, 0.1 if exited_at else 0.5)):
                    stream = key.fileobj
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(stream)
                        continue
                    room = caps[stream] - sizes[stream]
                    if room > 0:
                        chunks[stream].append(data[:room])
                    if len(data) > room:
                        truncated[stream] = True  # keep draining, so the child never blocks
                    sizes[stream] += min(len(data), max(room, 0))
        error = None
        returncode: int | None = None
        if not timed_out:
            try:
                returncode = proc.wait(timeout=max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if not timed_out and self._aborted and (returncode is None or returncode < 0):
            timed_out = True  # killed by abort() at the deadline before this loop noticed
        if timed_out:
            returncode, error = _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        stdout = b"".join(chunks[proc.stdout]).decode("utf-8", errors="replace")
        stderr = b"".join(chunks[proc.stderr]).decode("utf-8", errors="replace")
        return CommandResult(
            argv=argv,
            returncode=RC_TIMEOUT if timed_out else (returncode if returncode is not None else -1),
            stdout=stdout,
            stderr=stderr,
            duration_s=round(time.monotonic() - start, 3),
            timed_out=timed_out,
            stdout_truncated=truncated[proc.stdout],
            stderr_truncated=truncated[proc.stderr],
            error=error,
        )

    # -- raw frames -----------------------------------------------------------------------
    def receive_frames(
        self, interfaces: Sequence[str], *, ethertype: int, seconds: float
    ) -> packets.Frames:
        """Listen passively for `seconds`, ended early by the audit's deadline (less a margin,
        so the collector can still hand its section in) or by abort()."""
        from bee import packets  # socket is imported only by an audit that listens

        if self._deadline is not None:
            left = self._deadline - time.monotonic() - LISTEN_DEADLINE_MARGIN_S
            seconds = max(0.0, min(seconds, left))
        return packets.receive(
            interfaces, ethertype=ethertype, seconds=seconds, should_stop=lambda: self._aborted
        )

    # -- files ----------------------------------------------------------------------------
    def read_text(self, path: str) -> str | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read(FILE_CAP_BYTES)
        except OSError:
            return None
        return data.decode("utf-8", errors="replace")

    def list_dir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return None

    def read_link(self, path: str) -> str | None:
        try:
            return os.readlink(path)
        except OSError:
            return None


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int | None, str | None]:
    """TERM the group, then KILL it; wait a bounded time for each. Never blocks for long."""
    _signal_group(proc, signal.SIGTERM)
    try:
        return proc.wait(timeout=TERM_GRACE_S), None
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    try:
        return proc.wait(timeout=KILL_WAIT_S), None
    except subprocess.TimeoutExpired:
        # Stuck in the kernel (D state): give up on it rather than hang the audit.
        return None, f"pid {proc.pid} did not exit after SIGKILL; abandoned"
