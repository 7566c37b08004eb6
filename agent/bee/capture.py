"""Capture and replay: a directory that holds everything a run of bee saw.

Layout of a capture directory (format `bee-capture/1`):

    manifest.json             commands (argv, exit status, timings, flags, output file names),
                              files read (path -> file under fs/, or null when unreadable),
                              directories listed (path -> entries, or null), links read
    commands/NNN.stdout|.stderr   raw output of command NNN, as decoded text
    fs/<absolute path>        content of each file read from /sys, /proc, /etc

`RecordingRunner` wraps any runner and keeps the record (and, with a directory, writes it);
`ReplayRunner` answers from such a directory on a machine that has none of the tools.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bee import packets
from bee.runner import RC_NOT_FOUND, CommandResult, Runner

FORMAT = "bee-capture/1"
MANIFEST = "manifest.json"
# The error of a replayed command the capture does not hold (asked by a newer bee).
NOT_CAPTURED = "not in the capture"


class CaptureError(Exception):
    """A capture directory that cannot be read or written."""


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
        self.errors: list[str] = []  # what could not be written into the capture
        self._dir = capture_dir
        self._record = _Record()
        self._mirrors: set[str] = set()  # fs/ names in use
        self._lock = threading.Lock()
        if capture_dir is not None:
            try:
                (capture_dir / "commands").mkdir(parents=True, exist_ok=True)
                (capture_dir / "fs").mkdir(exist_ok=True)
            except OSError as exc:
                raise CaptureError(
                    f"cannot create capture directory {capture_dir}: {exc}"
                ) from None

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        result = self.inner.run(argv, timeout_s=timeout_s)
        with self._lock:
            number = len(self.results)
            self.results.append(result)
            if self._dir is not None:
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
        if self._dir is not None:
            with self._lock:
                name = None
                if text is not None:
                    mirror = "fs" + os.path.normpath("/" + path)
                    # Another spelling of a path already captured ("/x/../y"), or a file where
                    # a directory of another path must go: keep it apart, numbered.
                    taken = mirror in self._mirrors and path not in self._record.files
                    name = None if taken else self._write(mirror, text)
                    self._mirrors.add(mirror)
                    if name is None:
                        name = self._write(f"fs-other/{len(self._record.files):04d}", text)
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
        if self._dir is not None:
            with self._lock:
                number = len(self._record.receives)
                name = self._write(
                    f"receives/{number:03d}.txt", packets.frames_to_text(frames.frames)
                )
                entry = {k: v for k, v in asdict(frames).items() if k != "frames"}
                self._record.receives.append({**entry, "frames": name})
        return frames

    def _write(self, name: str, text: str) -> str | None:
        """Write one captured output; None (and a remembered error) when it cannot be."""
        assert self._dir is not None
        target = self._dir / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # newline="" keeps the text byte-for-byte (no newline translation on replay).
            with open(target, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                f.write(text)
        except OSError as exc:
            message = f"capture: cannot write {target}: {exc.strerror or exc}"
            if message not in self.errors:
                self.errors.append(message)
            return None
        return name

    def finish(self, **meta: object) -> None:
        """Write the manifest (last, atomically: a capture without one is incomplete)."""
        if self._dir is None:
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
        tmp = self._dir / (MANIFEST + ".tmp")
        try:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self._dir / MANIFEST)
        except OSError as exc:
            self.errors.append(f"capture: cannot write {tmp}: {exc.strerror or exc}")


class ReplayRunner:
    """Answers commands and reads from a capture directory; the live system is never touched."""

    def __init__(self, capture_dir: Path) -> None:
        self._dir = capture_dir
        path = capture_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CaptureError(f"{capture_dir} is not a bee capture (no {MANIFEST})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CaptureError(f"cannot read {path}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CaptureError(f"{path}: not a {FORMAT} manifest")
        self.meta = {
            k: v
            for k, v in manifest.items()
            if k not in ("commands", "files", "dirs", "links", "errors", "receives")
        }
        self._commands: dict[tuple[str, ...], list[dict]] = {}
        for entry in manifest.get("commands") or []:
            self._commands.setdefault(tuple(entry.get("argv") or ()), []).append(entry)
        self._served: dict[tuple[str, ...], int] = {}
        self._files: dict[str, str | None] = manifest.get("files") or {}
        self._dirs: dict[str, list[str] | None] = manifest.get("dirs") or {}
        self._links: dict[str, str | None] = manifest.get("links") or {}
        self._receives: list[dict] = [
            r for r in manifest.get("receives") or [] if isinstance(r, dict)
        ]
        self._lock = threading.Lock()

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
            returncode=int(entry.get("returncode", 0)),
            stdout=self._read(entry.get("stdout")) or "",
            stderr=self._read(entry.get("stderr")) or "",
            duration_s=float(entry.get("duration_s", 0.0)),
            timed_out=bool(entry.get("timed_out")),
            stdout_truncated=bool(entry.get("stdout_truncated")),
            stderr_truncated=bool(entry.get("stderr_truncated")),
            not_found=bool(entry.get("not_found")),
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
        if not name:
            return None
        # A manifest must not point outside its capture. Checked on the name alone (resolving
        # every path cost ten lstat calls per file read, half of a big host's replay).
        relative = os.path.normpath(name)
        if os.path.isabs(relative) or relative == ".." or relative.startswith("../"):
            return None
        try:
            with open(
                os.path.join(self._dir, relative),
                encoding="utf-8",
                errors="surrogateescape",
                newline="",
            ) as f:
                return f.read()
        except OSError:
            return None
