"""What a collector gets: the runner, plus a place to put its errors and notes.

A collector is `collect(probe) -> model | None`. It never needs to catch a tool's failure:
`probe.run` records a command that failed as an error (or a missing tool as a quiet note) and
hands back the result, so the collector only decides what the output means.

A command several collectors need (dmidecode for board, cpu, memory and psu; ipmitool's FRU)
is asked with `shared=True`: it runs once per audit, every asker gets the same result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from bee.runner import CommandResult, Runner

if TYPE_CHECKING:
    from bee import packets

log = logging.getLogger("bee")

DEFAULT_TIMEOUT_S = 30.0
T = TypeVar("T")


class _Slot:
    __slots__ = ("done", "failed", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.failed = True


class Shared:
    """What several collectors of one audit need: each command runs once, and each value
    derived from one (dmidecode's parsed records) is computed once. The first asker does the
    work (with its timeout); the others wait for it and get the same object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot] = {}

    def once(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            slot = self._slots.get(key)
            first = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot()
        if first:
            try:
                slot.value = compute()
                slot.failed = False
            finally:
                slot.done.set()
        else:
            # Past the deadline the runner kills the first asker's tool, so this wait ends too.
            slot.done.wait()
        if slot.failed:
            raise RuntimeError(f"{key!r} failed in the collector that asked first")
        return slot.value

    def run(self, runner: Runner, argv: Sequence[str], timeout_s: float) -> CommandResult:
        key = tuple(argv)
        return self.once(("run", key), lambda: runner.run(key, timeout_s=timeout_s))


class Probe:
    def __init__(
        self,
        runner: Runner,
        collector: str,
        shared: Shared | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.collector = collector
        self.shared = shared if shared is not None else Shared()
        # The audit's options (`bee audit` flags a collector reads), the same for every probe.
        self.options: Mapping[str, Any] = MappingProxyType(dict(options or {}))
        self.errors: list[str] = []
        self.notes: list[str] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        check: bool = True,
        shared: bool = False,
    ) -> CommandResult:
        """Run a tool. With check, a non-zero exit or a timeout becomes an error entry. With
        shared, the audit runs it once for every collector that asks (same argv)."""
        if shared:
            result = self.shared.run(self.runner, argv, timeout_s)
        else:
            result = self.runner.run(argv, timeout_s=timeout_s)
        self.account(result, check=check)
        return result

    def account(self, result: CommandResult, *, check: bool = True) -> None:
        """What `run` says about a result: a missing tool is a note; with check, a failure is
        an error. For a result fetched without `run` (the shared one before a fallback)."""
        if result.not_found:
            self.note(f"{result.program} is not installed")
        elif check and not result.ok:
            self.error(result.describe_failure())

    def read_text(self, path: str) -> str | None:
        return self.runner.read_text(path)

    def read_value(self, path: str) -> str | None:
        """A one-value sysfs/procfs file, stripped; None when missing or empty."""
        text = self.runner.read_text(path)
        if text is None:
            return None
        return text.strip() or None

    def list_dir(self, path: str) -> list[str] | None:
        return self.runner.list_dir(path)

    def read_link(self, path: str) -> str | None:
        return self.runner.read_link(path)

    def receive_frames(
        self, interfaces: Sequence[str], *, ethertype: int, seconds: float
    ) -> packets.Frames | None:
        """Passive raw-frame listening (bee/packets.py); None when the runner cannot listen."""
        receive = getattr(self.runner, "receive_frames", None)
        if not callable(receive):
            return None
        return receive(interfaces, ethertype=ethertype, seconds=seconds)

    def exists(self, path: str) -> bool:
        parent, _, name = path.rstrip("/").rpartition("/")
        entries = self.runner.list_dir(parent or "/")
        return entries is not None and name in entries

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)
            log.warning("%s: %s", self.collector, message)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            log.info("%s: %s", self.collector, message)
