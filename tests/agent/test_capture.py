"""Capture and replay round-trip whatever a tool printed, byte for byte as decoded text."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import MAX_FILE_BYTES, CaptureError, RecordingRunner, ReplayRunner
from bee.runner import CommandResult
from conftest import REPO, run_bee

QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"

# Any text, lone surrogates too: a runner other than the system's may hand them over, and a
# replay must still give text that encodes as UTF-8 (it crashed the document's write).
text = st.text(max_size=300)


def as_replayed(value: str | None) -> str | None:
    """What a replay gives for captured text: its bytes decoded as the live runner decodes."""
    if value is None:
        return None
    return value.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")


argv = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4).map(tuple)


class ScriptedRunner:
    """Answers from a dict: the stand-in for a machine in these round-trip tests."""

    def __init__(self, outputs, files, dirs, links):
        self.outputs, self.files, self.dirs, self.links = outputs, files, dirs, links

    def run(self, argv, *, timeout_s):
        stdout, stderr, rc = self.outputs[tuple(argv)]
        return CommandResult(
            argv=tuple(argv), returncode=rc, stdout=stdout, stderr=stderr, duration_s=0.01
        )

    def read_text(self, path):
        return self.files.get(path)

    def list_dir(self, path):
        return self.dirs.get(path)

    def read_link(self, path):
        return self.links.get(path)


paths = st.lists(
    st.sampled_from(["sys", "proc", "a b", "0000:00:1f.2", "x.y", "..", "é"]),
    min_size=1,
    max_size=4,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(
    outputs=st.dictionaries(argv, st.tuples(text, text, st.integers(-9, 255)), max_size=5),
    files=st.dictionaries(paths, st.one_of(st.none(), text), max_size=5),
    dirs=st.dictionaries(
        paths, st.one_of(st.none(), st.lists(st.text(max_size=8), max_size=4)), max_size=3
    ),
    links=st.dictionaries(paths, st.one_of(st.none(), st.text(max_size=20)), max_size=3),
)
def test_replay_returns_what_was_captured(outputs, files, dirs, links):
    machine = ScriptedRunner(outputs, files, dirs, links)
    with TemporaryDirectory() as tmp:
        capture = Path(tmp) / "cap"
        recorder = RecordingRunner(machine, capture)
        seen = {a: recorder.run(a, timeout_s=1) for a in outputs}
        seen_files = {p: recorder.read_text(p) for p in files}
        seen_dirs = {p: recorder.list_dir(p) for p in dirs}
        seen_links = {p: recorder.read_link(p) for p in links}
        recorder.finish()
        replay = ReplayRunner(capture)
        for a, result in seen.items():
            again = replay.run(a, timeout_s=1)
            assert (again.stdout, again.stderr, again.returncode) == (
                as_replayed(result.stdout),
                as_replayed(result.stderr),
                result.returncode,
            )
            again.stdout.encode("utf-8")
        # Spellings of one path ("/sys", "/../sys") are kept apart, as the runner saw them.
        assert {p: replay.read_text(p) for p in files} == {
            p: as_replayed(t) for p, t in seen_files.items()
        }
        assert {p: replay.list_dir(p) for p in dirs} == seen_dirs
        assert {p: replay.read_link(p) for p in links} == seen_links


def test_command_not_in_the_capture_replays_as_not_found(tmp_path):
    RecordingRunner(ScriptedRunner({}, {}, {}, {}), tmp_path).finish()
    result = ReplayRunner(tmp_path).run(["nvidia-smi", "-q", "-x"], timeout_s=1)
    assert result.not_found and result.error == "not in the capture"


def test_broken_manifest_is_a_capture_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    try:
        ReplayRunner(tmp_path)
    except CaptureError as exc:
        assert "cannot read" in str(exc)
    else:
        raise AssertionError("a broken manifest was accepted")


# -- a capture is untrusted input, and DIR may hold anything already (issue 20 #6-#8) ----------


def qemu_copy(tmp_path: Path) -> Path:
    capture = tmp_path / "c"
    shutil.copytree(QEMU_CAPTURE, capture)
    return capture


HOSTNAME = "fs/proc/sys/kernel/hostname"


def replay_error(capture: Path) -> str:
    with pytest.raises(CaptureError) as caught:
        ReplayRunner(capture)
    return str(caught.value)


def test_replay_follows_no_symlink_out_of_the_capture(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n")
    capture = qemu_copy(tmp_path)
    (capture / HOSTNAME).unlink()
    (capture / HOSTNAME).symlink_to(secret)
    message = replay_error(capture)
    assert "files['/proc/sys/kernel/hostname']" in message and "symlink" in message
    assert "secret" not in message


def test_replay_follows_no_symlinked_directory_either(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    capture = qemu_copy(tmp_path)
    shutil.move(capture / "fs" / "proc", elsewhere)
    (capture / "fs" / "proc").symlink_to(elsewhere)
    assert "/proc/" in replay_error(capture)


def test_a_fifo_in_a_capture_is_refused_at_once_not_waited_on(tmp_path):
    capture = qemu_copy(tmp_path)
    (capture / HOSTNAME).unlink()
    os.mkfifo(capture / HOSTNAME)
    proc = run_bee("audit", "--replay", str(capture), "-o", "-", "--deadline", "5", timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "not a regular file" in proc.stderr


def test_a_link_to_dev_zero_or_an_oversized_file_is_refused(tmp_path):
    capture = qemu_copy(tmp_path)
    (capture / HOSTNAME).unlink()
    (capture / HOSTNAME).symlink_to("/dev/zero")
    assert "symlink" in replay_error(capture)
    (capture / HOSTNAME).unlink()
    with open(capture / HOSTNAME, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    assert "larger than" in replay_error(capture)


def test_a_hard_link_in_a_capture_is_refused(tmp_path):
    capture = qemu_copy(tmp_path)
    os.link(capture / HOSTNAME, tmp_path / "other-name")
    assert "hard link" in replay_error(capture)


def test_a_non_utf8_byte_in_a_captured_file_is_replaced_not_a_crash(tmp_path):
    capture = qemu_copy(tmp_path)
    (capture / HOSTNAME).write_bytes(b"bee\377\n")
    proc = run_bee("audit", "--replay", str(capture), "-o", "-", "--no-qr")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["host"]["hostname"] == "bee\ufffd"


def _manifest(capture: Path) -> dict:
    return json.loads((capture / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda m: m["commands"][3].update(returncode="x"), "commands[3].returncode"),
        (lambda m: m["commands"][0].update(duration_s=float("nan")), "not a number"),
        (lambda m: m["commands"][1].update(argv="lsblk"), "commands[1].argv"),
        (lambda m: m["commands"][2].update(timed_out="no"), "commands[2].timed_out"),
        (lambda m: m["commands"][2].update(stdout=["x"]), "commands[2].stdout"),
        (lambda m: m["files"].update({"/etc/x": 7}), "files['/etc/x']"),
        (lambda m: m["files"].update({"/etc/x": "../secret"}), "files['/etc/x']"),
        (lambda m: m["files"].update({"/etc/x": "/etc/shadow"}), "files['/etc/x']"),
        (lambda m: m["dirs"].update({"/sys": "abc"}), "dirs['/sys']"),
        (lambda m: m.update(commands={}), "commands: a list"),
        (lambda m: m.update(format="bee-capture/9"), "format"),
    ],
)
def test_a_damaged_manifest_is_one_error_naming_the_entry(tmp_path, damage, named):
    capture = qemu_copy(tmp_path)
    manifest = _manifest(capture)
    damage(manifest)
    (capture / "manifest.json").write_text(json.dumps(manifest))  # NaN is written as NaN
    proc = run_bee("audit", "--replay", str(capture), "-o", "-")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and named in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("text", [b"[" * 100_000, b'{"format": "bee-capture/1", "x": "\xff"}'])
def test_a_deeply_nested_or_non_utf8_manifest_is_one_error(tmp_path, text):
    (tmp_path / "manifest.json").write_bytes(text)
    proc = run_bee("audit", "--replay", str(tmp_path), "-o", "-")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "manifest.json" in proc.stderr and "Traceback" not in proc.stderr


class QuietMachine(ScriptedRunner):
    def __init__(self):
        super().__init__({("lsblk",): ("{}", "", 0), ("true",): ("", "", 0)}, {"/a": "A"}, {}, {})


def test_capture_writes_through_no_symlink_already_in_its_directory(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    capture = tmp_path / "cap"
    (capture / "commands").mkdir(parents=True)
    (capture / "manifest.json.tmp").symlink_to(victim)
    (capture / "commands" / "000.stdout").symlink_to(victim)
    (capture / "fs").symlink_to(tmp_path)  # a directory on the way
    recorder = RecordingRunner(QuietMachine(), capture)
    recorder.run(["lsblk"], timeout_s=1)
    recorder.read_text("/a")
    recorder.finish()
    assert victim.read_text() == "precious" and not (tmp_path / "a").exists()
    replay = ReplayRunner(capture)
    assert replay.run(["lsblk"], timeout_s=1).stdout == "{}" and replay.read_text("/a") == "A"
    assert _manifest(capture)["files"]["/a"].startswith("fs-other/")  # not through fs/


def test_a_capture_directory_that_is_a_symlink_or_someone_elses_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(CaptureError, match="symlink"):
        RecordingRunner(QuietMachine(), tmp_path / "link")
    if os.geteuid() == 0:  # only root can hand a directory to another user
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, 65534)
        with pytest.raises(CaptureError, match="owned by uid 65534"):
            RecordingRunner(QuietMachine(), other)


def test_outputs_that_cannot_be_written_are_one_error_not_dozens(tmp_path):
    capture = tmp_path / "cap"
    capture.mkdir()
    (capture / "commands").write_text("a file where the directory goes")
    machine = ScriptedRunner({(str(n),): ("out", "", 0) for n in range(20)}, {}, {}, {})
    recorder = RecordingRunner(machine, capture)
    for n in range(20):
        recorder.run([str(n)], timeout_s=1)
    recorder.finish()
    [message] = recorder.errors
    assert message.startswith(f"capture: 40 of 40 outputs not written into {capture}")


def test_mirror_names_are_plain_and_conflicts_never_share_a_name(tmp_path):
    machine = ScriptedRunner({}, {"/a": "A", "/a/b": "B", "/c/../a/b": "C"}, {}, {})
    recorder = RecordingRunner(machine, tmp_path)
    recorder.read_text("/a")  # fs/a is a file, so /a/b cannot be fs/a/b
    recorder.read_text("/a/b")
    machine.files["/a/b"] = "B2"
    recorder.read_text("/a/b")  # read again after the conflict
    recorder.read_text("/c/../a/b")  # another spelling of a path in conflict
    recorder.finish()
    names = _manifest(tmp_path)["files"]
    assert names["/a"] == "fs/a" and len(set(names.values())) == 3
    replay = ReplayRunner(tmp_path)
    assert [replay.read_text(p) for p in ("/a", "/a/b", "/c/../a/b")] == ["A", "B2", "C"]
    assert recorder.errors == []  # a write that its fallback made good is no error
