"""Progress lines and a command log for the NVIDIA build.

Each step prints one line with its duration; every command's full output goes to one log file
under dist/, whose path the CLI prints on failure. Commands run in their own process group and
the whole group is killed on timeout (a hung `make` or installer must not hang the build).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SayFn = Callable[[str], None]
_TAIL_LINES = 4
_KILL_WAIT_S = 10


class NvidiaError(Exception):
    """A build step failed; the message is one line meant for the person running the build."""


class CommandLog:
    """Runs commands, appending their full output to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8", errors="replace") as handle:
            handle.write(text)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 600,
        check: bool = True,
    ) -> tuple[int, str]:
        """Run `argv`; return (exit code, combined output). Raise NvidiaError on failure."""
        argv = [str(arg) for arg in argv]
        full_env = dict(os.environ, LC_ALL="C")
        full_env.update(env or {})
        self.write(f"\n$ {' '.join(argv)}" + (f"   (in {cwd})" if cwd else "") + "\n")
        start = self.path.stat().st_size
        with self.path.open("ab") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=full_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise NvidiaError(f"{argv[0]} not found (needed for this build step)") from None
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise NvidiaError(
                    f"{argv[0]} timed out after {timeout_s:.0f}s; see {self.path}"
                ) from None
            except KeyboardInterrupt:
                _kill_group(proc)
                raise
        with self.path.open("rb") as handle:
            handle.seek(start)
            output = handle.read().decode("utf-8", errors="replace")
        self.write(f"[exit {code}]\n")
        if check and code != 0:
            raise NvidiaError(f"{' '.join(argv[:3])} failed (exit {code}): {tail(output)}")
        return code, output


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=_KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        pass  # a child stuck in D state: give up on it rather than hang the build


def tail(output: str, lines: int = _TAIL_LINES) -> str:
    """The last non-empty lines of a command's output, joined into one line."""
    kept = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


@dataclass(slots=True)
class StepResult:
    detail: str = ""


class Steps:
    """`with steps.step("build modules") as result: ...; result.detail = "5 modules"`."""

    def __init__(self, say: SayFn, prefix: str = "nvidia") -> None:
        self.say = say
        self.prefix = prefix

    @contextmanager
    def step(self, name: str) -> Iterator[StepResult]:
        result = StepResult()
        start = time.monotonic()
        try:
            yield result
        except BaseException:
            self.say(f"{self.prefix}: {name}: FAILED ({time.monotonic() - start:.1f}s)")
            raise
        detail = f": {result.detail}" if result.detail else ""
        self.say(f"{self.prefix}: {name}{detail} ({time.monotonic() - start:.1f}s)")
