"""The signals that stop bee, and the few places where one must wait for a safe moment.

SIGINT (Ctrl-C, `kill -INT`), SIGTERM (systemd stopping the unit), SIGHUP (the SSH session
dropped): each raises `Stopped` in the main thread, which unwinds through the audit's cleanup
(every tool's process group killed), exit 128 + N, nothing written. The handler is installed
explicitly, SIGINT too: Python keeps SIGINT ignored when bee starts with it ignored (any
`cmd &` from a shell without job control), and an interrupted audit then ran on and exited 0.
SIGHUP's default action would end bee at once and leave its tools running.

A Python handler raises wherever the main thread happens to be. Inside `Thread.start()` (its
wait on a Condition) that broke the Condition's lock ("RuntimeError: release unlocked lock")
and printed a traceback instead of stopping; `held()` keeps the signals pending across such
spots, and the stop lands when they end.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class Stopped(BaseException):
    """A stop signal arrived: unwind like Ctrl-C, killing the tools started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    # The tools killed on the way out are not news: bee's last line says it was stopped.
    logging.getLogger("bee").disabled = True
    raise Stopped(signum)


def install() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Keep the stop signals pending in this thread for the block (threads started inside
    inherit it: they call `release_in_thread()` first, or their tools would too)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def release_in_thread() -> None:
    """Undo an inherited `held()` in a new thread: a tool it starts inherits the mask."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
