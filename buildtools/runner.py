"""The builder's one way to run a command and report a step.

Every command the builder runs on the build host (apt, live-build, make, dpkg-deb, modinfo,
QEMU's helpers, ...) goes through `Runner.run`:

- it has a timeout (no default: each caller says how long its command may take); on timeout,
  on Ctrl-C or SIGTERM the command's whole process group is stopped (TERM, then KILL), so a hung
  `make` or `lb build` cannot outlive the build;
- its output is streamed, line by line as it comes, into the build log (stdout and stderr
  both; the command line first, its exit status last);
- a failure raises `CommandError` with one line of one shape:
  `<command> failed (exit N): <its last lines>`, `<command> timed out after N s`,
  `<command> not found (Debian package <pkg>)`, `<command> cannot start: <reason>`.

`Runner.step` prints one progress line per step with its duration: `<label> (1.2s): <notes>`,
or `<label>: FAILED (1.2s)`. Imports nothing else from buildtools but the host-tools list.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from buildtools import hosttools

SayFn = Callable[[str], None]
TAIL_LINES = 4
_TERM_WAIT_S = 10
_KILL_WAIT_S = 10


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupt_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP (nox's or CI's timeout, a closed terminal) all raise
    KeyboardInterrupt, so `run` stops the running command's group on the way out: the commands
    run in their own session, out of the terminal's reach. SIGINT is set too, since a shell
    starts background jobs with it ignored. Every builder command line calls this first."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)


class CommandError(Exception):
    """A command could not start, failed or timed out; the message is one line."""


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    output: str  # stdout and stderr, interleaved line by line as they came


def tail(output: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines of a command's output, joined into one line."""
    kept = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _print(text: str) -> None:
    print(text, flush=True)


class Runner:
    """Runs commands into one log file and prints progress lines (`say`) to the console."""

    def __init__(self, log_path: Path | None, *, say: SayFn = _print, fresh: bool = False) -> None:
        """`log_path` None: a command-line query with no build log (output is discarded)."""
        self.log_path = Path(log_path) if log_path is not None else None
        if self.log_path is None:
            self._log: IO[str] = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open(
                "w" if fresh else "a", encoding="utf-8", errors="replace"
            )
        self._say = say

    def write(self, text: str) -> None:
        """Into the log only."""
        self._log.write(text)
        self._log.flush()

    def say(self, text: str) -> None:
        """A progress line: on the console and in the log."""
        self._say(text)
        self.write(text + "\n")

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def step(self, label: str) -> Iterator[list[str]]:
        """Times a step; the step may append short notes to the yielded list."""
        notes: list[str] = []
        self.write(f"\n===== {label}\n")
        started = time.monotonic()
        try:
            yield notes
        except BaseException:
            self.say(f"{label}: FAILED ({time.monotonic() - started:.1f}s)")
            raise
        outcome = f": {'; '.join(notes)}" if notes else ""
        self.say(f"{label} ({time.monotonic() - started:.1f}s){outcome}")

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        timeout_s: float,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        on_line: SayFn | None = None,
        name: str | None = None,
    ) -> Result:
        """Run `argv` with its output into the log; CommandError on failure when `check`.

        `name` is how the command is called in an error (default: its first three words).
        `on_line` sees each line of output as it comes (live-build's stage names).
        """
        args = [os.fspath(arg) for arg in argv]
        shown = name or " ".join(args[:3])
        full_env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
        full_env.update(env or {})
        self.write(f"\n$ {' '.join(args)}" + (f"   (in {cwd})" if cwd else "") + "\n")
        try:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            package = hosttools.package_for(args[0])
            where = f" (Debian package {package})" if package else ""
            self.write(f"[not found{where}]\n")
            raise CommandError(f"{args[0]} not found{where}") from None
        except OSError as exc:
            self.write(f"[cannot start: {exc.strerror}]\n")
            raise CommandError(f"{args[0]} cannot start: {exc.strerror}") from None
        try:
            stdout, output = self._stream(proc, time.monotonic() + timeout_s, on_line)
        except TimeoutError:
            stop_group(proc)
            self.write(f"[timed out after {timeout_s:g} s]\n")
            raise CommandError(f"{shown} timed out after {timeout_s:g} s") from None
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, a bug in on_line
            stop_group(proc)
            raise
        code = proc.wait()
        self.write(f"[exit {code}]\n")
        if check and code != 0:
            raise CommandError(f"{shown} failed (exit {code}): {tail(output)}")
        return Result(code, stdout, output)

    def _stream(
        self,
        proc: subprocess.Popen[bytes],
        deadline: float,
        on_line: SayFn | None,
    ) -> tuple[str, str]:
        assert proc.stdout is not None and proc.stderr is not None
        pending = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
        stdout_fd = proc.stdout.fileno()
        out_lines: list[str] = []
        all_lines: list[str] = []

        def emit(fd: int, raw: bytes) -> None:
            line = raw.decode("utf-8", errors="replace")
            self._log.write(line if line.endswith("\n") else line + "\n")
            all_lines.append(line)
            if fd == stdout_fd:
                out_lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))

        with selectors.DefaultSelector() as selector:
            for stream in (proc.stdout, proc.stderr):
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _events in selector.select(timeout=min(left, 1.0)):
                    fd = key.fd
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        if pending[fd]:
                            emit(fd, pending[fd])
                            pending[fd] = b""
                        continue
                    *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    for raw in lines:
                        emit(fd, raw + b"\n")
                self._log.flush()
        while proc.poll() is None:  # both pipes closed, the process not yet gone
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.05)
        return "".join(out_lines), "".join(all_lines)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the command's process group, KILL it after a grace period; never hangs."""
    for sig, wait_s in ((signal.SIGTERM, _TERM_WAIT_S), (signal.SIGKILL, _KILL_WAIT_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue  # a child stuck in D state after KILL: give up rather than hang the build
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def wait_listening(proc: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Until the server `proc` started accepts TCP on 127.0.0.1:port: True. False when it ended
    first or `timeout_s` passed (`proc.poll()` tells which); the caller words the error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
