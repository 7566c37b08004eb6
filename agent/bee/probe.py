"""What a collector gets: the runner, plus a place to put its errors and notes.

A collector is `collect(probe) -> model | None`. It never needs to catch a tool's failure:
`probe.run` records a command that failed as an error (or a missing tool as a quiet note) and
hands back the result, so the collector only decides what the output means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bee.runner import CommandResult, Runner

log = logging.getLogger("bee")

DEFAULT_TIMEOUT_S = 30.0


class Probe:
    def __init__(self, runner: Runner, collector: str) -> None:
        self.runner = runner
        self.collector = collector
        self.errors: list[str] = []
        self.notes: list[str] = []

    def run(
        self, argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, check: bool = True
    ) -> CommandResult:
        """Run a tool. With check, a non-zero exit or a timeout becomes an error entry."""
        result = self.runner.run(argv, timeout_s=timeout_s)
        if result.not_found:
            self.note(f"{result.program} is not installed")
        elif check and not result.ok:
            self.error(result.describe_failure())
        return result

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
