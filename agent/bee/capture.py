"""Capture and replay: a directory that holds everything a run of bee saw.

Layout of a capture directory (format `bee-capture/1`):

    manifest.json             commands (argv, exit status, timings, flags, output file names),
                              files read (path -> file under fs/, or null when unreadable),
                              directories listed (path -> entries, or null), links read
    commands/NNN.stdout|.stderr   raw output of command NNN, as decoded text
    fs/<absolute path>        content of each file read from /sys, /proc, /etc

`RecordingRunner` wraps any runner and keeps the record (and, with a directory, writes it);
`ReplayRunner` answers from such a directory on a machine that has none of the tools.

A capture may come from anywhere, and bee writes one as root into a directory that may hold
anything already: every file of it is reached through `_Tree`, which follows no symlink (not
the last component, not one on the way), reads and writes only regular files with one link
(never a FIFO, a device or a hard link to a file elsewhere), and bounds every size. A replay
checks the whole manifest and reads every file it names when it starts: a damaged capture is
one error naming the entry, before any collector runs.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bee import packets
from bee.runner import OUTPUT_CAP_BYTES, RC_NOT_FOUND, CommandResult, Runner

FORMAT = "bee-capture/1"
MANIFEST = "manifest.json"
# The error of a replayed command the capture does not hold (asked by a newer bee).
NOT_CAPTURED = "not in the capture"
# A captured output is at most the runner's cap as decoded text: up to 3 bytes of UTF-8 for
# each byte read (U+FFFD for an undecodable one).
MAX_FILE_BYTES = 3 * OUTPUT_CAP_BYTES
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_CAPTURE_BYTES = 512 * 1024 * 1024  # everything a replay loads


class CaptureError(Exception):
    """A capture directory that cannot be read or written."""


class _Tree:
    """A directory whose files are reached without following anything but the directory itself.

    The directory is the operator's own path (`--capture DIR`, `--replay DIR`); below it every
    component is opened with O_NOFOLLOW relative to its parent's descriptor.
    """

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        try:
            if create:
                path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise CaptureError(f"cannot create capture directory {path}") from None
            raise CaptureError(f"{path} is not a bee capture (no such directory)") from None
        except OSError as exc:
            link = exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink()
            what = "is a symlink" if link else exc.strerror or str(exc)
            verb = "create capture directory" if create else "open capture"
            raise CaptureError(f"cannot {verb} {path}: {what}") from None
        owner = os.fstat(self._fd).st_uid
        if create and owner not in (os.geteuid(), 0):
            os.close(self._fd)
            raise CaptureError(f"cannot write a capture into {path}: owned by uid {owner}")
        self._open: list[tuple[str, int]] = []  # the directory chain of the last file reached

    def close(self) -> None:
        self._enter([], create=False)
        os.close(self._fd)

    def _enter(self, parts: list[str], *, create: bool) -> int:
        """The descriptor of directory `parts`, reusing the chain opened for the last file."""
        keep = 0
        while keep < min(len(parts), len(self._open)) and self._open[keep][0] == parts[keep]:
            keep += 1
        for _, fd in self._open[keep:]:
            os.close(fd)
        del self._open[keep:]
        for part in parts[keep:]:
            parent = self._open[-1][1] if self._open else self._fd
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self._open.append((part, os.open(part, flags, dir_fd=parent)))
        return self._open[-1][1] if self._open else self._fd

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of regular file `name`; OSError or ValueError (saying why) otherwise."""
        *parts, last = _parts(name)
        parent = self._enter(parts, create=False)
        before = os.stat(last, dir_fd=parent, follow_symlinks=False)
        _check_regular(before, limit)
        fd = os.open(
            last, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
        )
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
                raise ValueError("changed while it was opened")
            _check_regular(now, limit)
            chunks, size = [], 0
            while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise ValueError(f"larger than {limit} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write(self, name: str, data: bytes) -> None:
        """A new regular file `name` (whatever was there is removed, never written through)."""
        *parts, last = _parts(name)
        parent = self._enter(parts, create=True)
        try:
            os.unlink(last, dir_fd=parent)  # a symlink, FIFO or hard link left in DIR goes
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(last, flags, 0o644, dir_fd=parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def rename(self, old: str, new: str) -> None:
        os.replace(old, new, src_dir_fd=self._fd, dst_dir_fd=self._fd)


def _parts(name: str) -> list[str]:
    # "fs//etc/x": captures before 0.1.1 wrote the mirror names with a double slash.
    parts = [p for p in name.split("/") if p]
    if name.startswith("/") or not parts or any(p in (".", "..") for p in parts):
        raise ValueError("not a plain relative name inside the capture")
    return parts


def _check_regular(info: os.stat_result, limit: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise ValueError("a symlink (not followed)")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a FIFO, device, socket or directory)")
    if info.st_nlink != 1:
        raise ValueError(f"a hard link ({info.st_nlink} names)")
    if info.st_size > limit:
        raise ValueError(f"larger than {limit} bytes")


@dataclass(slots=True)
class _Record:
    commands: list[dict] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)
    dirs: dict[str, list[str] | None] = field(default_factory=dict)
    links: dict[str, str | None] = field(default_factory=dict)
    receives: list[dict] = field(default_factory=list)


class RecordingRunner:
    """Passes everything to `inner` and remembers it; writes a capture when given a directory."""

    def __init__(self, inner: Runner, capture_dir: Path | None = None) -> None:
        self.inner = inner
        self.results: list[CommandResult] = []
        self._dir = capture_dir
        self._record = _Record()
        self._mirrors: set[str] = set()  # fs/ names in use
        self._others = 0  # fs-other/NNNN names handed out
        self._failed: list[str] = []  # outputs that could not be written, the first with why
        self._written = 0
        self._finish_error: str | None = None
        self._lock = threading.Lock()
        self._tree = _Tree(capture_dir, create=True) if capture_dir is not None else None

    @property
    def errors(self) -> list[str]:
        """What could not be written into the capture: one line, however many files failed
        (a full disk must not bury the hardware's errors under dozens of its own)."""
        found = []
        if self._failed:
            total = len(self._failed) + self._written
            found.append(
                f"capture: {len(self._failed)} of {total} outputs not written into "
                f"{self._dir} (first: {self._failed[0]})"
            )
        if self._finish_error:
            found.append(self._finish_error)
        return found

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        result = self.inner.run(argv, timeout_s=timeout_s)
        with self._lock:
            number = len(self.results)
            self.results.append(result)
            if self._tree is not None:
                entry = {k: v for k, v in asdict(result).items() if k not in ("stdout", "stderr")}
                entry["argv"] = list(result.argv)
                for stream in ("stdout", "stderr"):
                    entry[stream] = self._write(
                        f"commands/{number:03d}.{stream}", getattr(result, stream)
                    )
                self._record.commands.append(entry)
        return result

    def read_text(self, path: str) -> str | None:
        text = self.inner.read_text(path)
        if self._tree is not None:
            with self._lock:
                name = None
                if text is not None:
                    mirror = "fs/" + os.path.normpath("/" + path).lstrip("/")
                    # Another spelling of a path already captured ("/x/../y"), or a file where
                    # a directory of another path must go: keep it apart, numbered.
                    taken = mirror in self._mirrors and path not in self._record.files
                    self._mirrors.add(mirror)
                    names = [] if taken else [mirror]
                    name = self._write_first([*names, self._other_name()], text)
                self._record.files[path] = name
        return text

    def list_dir(self, path: str) -> list[str] | None:
        entries = self.inner.list_dir(path)
        with self._lock:
            self._record.dirs[path] = entries
        return entries

    def read_link(self, path: str) -> str | None:
        target = self.inner.read_link(path)
        with self._lock:
            self._record.links[path] = target
        return target

    def receive_frames(
        self, interfaces: Sequence[str], *, ethertype: int, seconds: float
    ) -> packets.Frames | None:
        receive = getattr(self.inner, "receive_frames", None)
        if not callable(receive):
            return None
        frames = receive(interfaces, ethertype=ethertype, seconds=seconds)
        if self._tree is not None:
            with self._lock:
                number = len(self._record.receives)
                name = self._write(
                    f"receives/{number:03d}.txt", packets.frames_to_text(frames.frames)
                )
                entry = {k: v for k, v in asdict(frames).items() if k != "frames"}
                self._record.receives.append({**entry, "frames": name})
        return frames

    def _other_name(self) -> str:
        self._others += 1
        return f"fs-other/{self._others:04d}"

    def _write_first(self, names: Iterable[str], text: str) -> str | None:
        """The first of `names` that can be written; a failure counts only if none can."""
        why = None
        for name in names:
            why = self._try_write(name, text)
            if why is None:
                self._written += 1
                return name
        self._failed.append(str(why))
        return None

    def _write(self, name: str, text: str) -> str | None:
        return self._write_first([name], text)

    def _try_write(self, name: str, text: str) -> str | None:
        assert self._tree is not None
        try:
            # surrogatepass: any str can be written (a replay decodes it with replacement).
            self._tree.write(name, text.encode("utf-8", errors="surrogatepass"))
        except (OSError, ValueError, UnicodeError) as exc:
            return f"{name}: {getattr(exc, 'strerror', None) or exc}"
        return None

    def finish(self, **meta: object) -> None:
        """Write the manifest (last, atomically: a capture without one is incomplete)."""
        if self._tree is None:
            return
        with self._lock:
            manifest = {
                "format": FORMAT,
                **meta,
                "errors": self.errors,
                "commands": self._record.commands,
                "files": self._record.files,
                "dirs": self._record.dirs,
                "links": self._record.links,
                "receives": self._record.receives,
            }
            text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
            tmp = MANIFEST + ".tmp"
            try:
                self._tree.write(tmp, text.encode("utf-8", errors="surrogatepass"))
                self._tree.rename(tmp, MANIFEST)
            except (OSError, ValueError, UnicodeError) as exc:
                why = getattr(exc, "strerror", None) or exc
                self._finish_error = f"capture: cannot write {self._dir}/{MANIFEST}: {why}"
            finally:
                self._tree.close()
                self._tree = None


def _manifest_error(where: str, what: str, value: object) -> CaptureError:
    return CaptureError(f"{where}: {what}, not {_short(value)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _check(ok: bool, where: str, what: str, value: object) -> None:
    if not ok:
        raise _manifest_error(where, what, value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _validate(manifest: Any, where: str) -> None:
    """Every field a replay uses has the type a capture writes: one error naming the entry."""
    _check(isinstance(manifest, dict), where, "a JSON object", type(manifest).__name__)
    _check(manifest.get("format") == FORMAT, f"{where}: format", f"{FORMAT!r}",
           manifest.get("format"))  # fmt: skip
    commands = manifest.get("commands", [])
    _check(isinstance(commands, list), f"{where}: commands", "a list", commands)
    flags = ("timed_out", "stdout_truncated", "stderr_truncated", "not_found")
    for number, entry in enumerate(commands):
        at = f"{where}: commands[{number}]"
        _check(isinstance(entry, dict), at, "an object", entry)
        argv = entry.get("argv")
        _check(isinstance(argv, list) and bool(argv) and all(isinstance(a, str) for a in argv),
               f"{at}.argv", "a list of strings", argv)  # fmt: skip
        _check(_is_int(entry.get("returncode", 0)), f"{at}.returncode", "an integer",
               entry.get("returncode"))  # fmt: skip
        duration = entry.get("duration_s", 0.0)
        _check(isinstance(duration, int | float) and not isinstance(duration, bool)
               and math.isfinite(duration) and duration >= 0,
               f"{at}.duration_s", "a number of seconds", duration)  # fmt: skip
        for flag in flags:
            _check(isinstance(entry.get(flag, False), bool), f"{at}.{flag}", "true or false",
                   entry.get(flag))  # fmt: skip
        for key in ("error", "stdout", "stderr"):
            _check(_is_str_or_none(entry.get(key)), f"{at}.{key}", "a string or null",
                   entry.get(key))  # fmt: skip
    for key in ("files", "links"):
        table = manifest.get(key, {})
        _check(isinstance(table, dict), f"{where}: {key}", "an object", table)
        for path, value in table.items():
            _check(_is_str_or_none(value), f"{where}: {key}[{path!r}]", "a string or null",
                   value)  # fmt: skip
    receives = manifest.get("receives", [])
    _check(isinstance(receives, list), f"{where}: receives", "a list", receives)
    for number, entry in enumerate(receives):
        at = f"{where}: receives[{number}]"
        _check(isinstance(entry, dict), at, "an object", entry)
        _check(_is_str_or_none(entry.get("frames")), f"{at}.frames", "a string or null",
               entry.get("frames"))  # fmt: skip
        for key in ("seconds", "duration_s"):
            value = entry.get(key) or 0.0
            _check(isinstance(value, int | float) and math.isfinite(value), f"{at}.{key}",
                   "a number of seconds", value)  # fmt: skip
    dirs = manifest.get("dirs", {})
    _check(isinstance(dirs, dict), f"{where}: dirs", "an object", dirs)
    for path, entries in dirs.items():
        _check(entries is None or (isinstance(entries, list)
               and all(isinstance(e, str) for e in entries)),
               f"{where}: dirs[{path!r}]", "a list of names or null", entries)  # fmt: skip


class ReplayRunner:
    """Answers commands and reads from a capture directory; the live system is never touched."""

    def __init__(self, capture_dir: Path) -> None:
        self._dir = capture_dir
        tree = _Tree(capture_dir, create=False)
        try:
            manifest = self._load_manifest(tree)
            self._texts = self._load_texts(tree, manifest)
        finally:
            tree.close()
        self.meta = {
            k: v
            for k, v in manifest.items()
            if k not in ("commands", "files", "dirs", "links", "errors", "receives")
        }
        self._commands: dict[tuple[str, ...], list[dict]] = {}
        for entry in manifest.get("commands") or []:
            self._commands.setdefault(tuple(entry["argv"]), []).append(entry)
        self._served: dict[tuple[str, ...], int] = {}
        self._files: dict[str, str | None] = manifest.get("files") or {}
        self._dirs: dict[str, list[str] | None] = manifest.get("dirs") or {}
        self._links: dict[str, str | None] = manifest.get("links") or {}
        self._receives: list[dict] = [
            r for r in manifest.get("receives") or [] if isinstance(r, dict)
        ]
        self._lock = threading.Lock()

    def _load_manifest(self, tree: _Tree) -> dict[str, Any]:
        where = str(self._dir / MANIFEST)
        try:
            data = tree.read(MANIFEST, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise CaptureError(f"{self._dir} is not a bee capture (no {MANIFEST})") from None
        except (OSError, ValueError) as exc:
            raise CaptureError(
                f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            manifest = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except RecursionError:
            raise CaptureError(f"{where}: nested too deeply") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise CaptureError(f"cannot read {where}: {exc}") from None
        _validate(manifest, where)
        return manifest

    def _load_texts(self, tree: _Tree, manifest: dict[str, Any]) -> dict[str, str]:
        """Every file the manifest names, read now and decoded as the live runner decodes."""
        named: dict[str, str] = {}  # file name -> the manifest entry naming it (for errors)
        for number, entry in enumerate(manifest.get("commands") or []):
            for stream in ("stdout", "stderr"):
                if entry.get(stream):
                    named.setdefault(entry[stream], f"commands[{number}].{stream}")
        for path, name in (manifest.get("files") or {}).items():
            if name:
                named.setdefault(name, f"files[{path!r}]")
        for number, entry in enumerate(manifest.get("receives") or []):
            if isinstance(entry, dict) and isinstance(entry.get("frames"), str):
                named.setdefault(entry["frames"], f"receives[{number}].frames")
        texts: dict[str, str] = {}
        total = 0
        for name in sorted(named):
            try:
                data = tree.read(name, MAX_FILE_BYTES)
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise CaptureError(f"{self._dir}: {named[name]} -> {name}: {why}") from None
            total += len(data)
            if total > MAX_CAPTURE_BYTES:
                raise CaptureError(f"{self._dir}: more than {MAX_CAPTURE_BYTES} bytes to replay")
            texts[name] = data.decode("utf-8", errors="replace")
        return texts

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        key = tuple(argv)
        with self._lock:
            entries = self._commands.get(key)
            if not entries:
                return CommandResult(
                    argv=key,
                    returncode=RC_NOT_FOUND,
                    stdout="",
                    stderr="",
                    duration_s=0.0,
                    not_found=True,
                    error=NOT_CAPTURED,
                )
            # Repeated commands replay in order; past the end, the last answer repeats.
            index = self._served.get(key, 0)
            self._served[key] = index + 1
            entry = entries[min(index, len(entries) - 1)]
        return CommandResult(
            argv=key,
            returncode=entry.get("returncode", 0),
            stdout=self._read(entry.get("stdout")) or "",
            stderr=self._read(entry.get("stderr")) or "",
            duration_s=float(entry.get("duration_s", 0.0)),
            timed_out=entry.get("timed_out", False),
            stdout_truncated=entry.get("stdout_truncated", False),
            stderr_truncated=entry.get("stderr_truncated", False),
            not_found=entry.get("not_found", False),
            error=entry.get("error"),
        )

    def read_text(self, path: str) -> str | None:
        return self._read(self._files.get(path))

    def list_dir(self, path: str) -> list[str] | None:
        entries = self._dirs.get(path)
        return list(entries) if entries is not None else None

    def read_link(self, path: str) -> str | None:
        return self._links.get(path)

    def receive_frames(
        self, interfaces: Sequence[str], *, ethertype: int, seconds: float
    ) -> packets.Frames:
        """What the captured run heard on these interfaces, at once (a replay does not wait).
        A capture that never listened answers with an error, not with silence."""
        asked = tuple(interfaces)
        for entry in self._receives:
            if (
                tuple(entry.get("interfaces") or ()) == asked
                and entry.get("ethertype") == ethertype
            ):
                return packets.Frames(
                    interfaces=asked,
                    ethertype=ethertype,
                    seconds=float(entry.get("seconds") or 0.0),
                    duration_s=float(entry.get("duration_s") or 0.0),
                    frames=packets.frames_from_text(self._read(entry.get("frames")) or ""),
                    errors=[str(e) for e in entry.get("errors") or []],
                    listened=tuple(str(i) for i in entry.get("listened") or ()),
                )
        return packets.Frames(
            interfaces=asked,
            ethertype=ethertype,
            seconds=seconds,
            duration_s=0.0,
            errors=["not in the capture: this capture did not listen on these interfaces"],
        )

    def _read(self, name: str | None) -> str | None:
        return self._texts.get(name) if name else None
