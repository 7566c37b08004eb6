"""Writing the document: atomically, so a reader never sees half of one."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from bee import stops


class OutputError(Exception):
    """The document could not be written; the message is one line for the operator."""


def write_document(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`-o PATH`: a regular file (or a new one) is replaced atomically; a character device or a
    FIFO (`/dev/null`, `/dev/stdout`, a named pipe) cannot be replaced and is written into;
    anything else (a directory, a block device, a socket) is refused."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if info is not None and (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        _write_into(path, data, fifo=stat.S_ISFIFO(info.st_mode))
    elif info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError(f"cannot write {path}: not a regular file, a device or a FIFO")
    else:
        write_atomic(path, data, mode)


def _write_into(path: Path, data: bytes, *, fifo: bool) -> None:
    # O_NONBLOCK for the open only: a FIFO nobody reads fails (ENXIO) instead of hanging bee.
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NONBLOCK if fifo else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        reason = "no process reads this FIFO" if fifo and exc.errno == errno.ENXIO else exc.strerror
        raise OutputError(f"cannot write {path}: {reason or exc}") from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb", closefd=True) as handle:
            handle.write(data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temporary file in the same directory, fsync, rename over the target, fsync the directory.

    On any failure the temporary file is removed and the previous document stays as it was.
    """
    # A stop lands before the temporary file exists or after the rename, never in between.
    with stops.held():
        _write_atomic(path, data, mode)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename is done; a directory that cannot be fsynced is not worth failing for
