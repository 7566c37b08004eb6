"""Capture and replay round-trip whatever a tool printed, byte for byte as decoded text."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import CaptureError, RecordingRunner, ReplayRunner
from bee.runner import CommandResult

# Decoded tool output: any text without surrogates (decoding with replacement never makes one).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
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


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
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
                result.stdout,
                result.stderr,
                result.returncode,
            )
        # Spellings of one path ("/sys", "/../sys") are kept apart, as the runner saw them.
        assert {p: replay.read_text(p) for p in files} == seen_files
        assert {p: replay.list_dir(p) for p in dirs} == seen_dirs
        assert {p: replay.read_link(p) for p in links} == seen_links


def test_command_not_in_the_capture_replays_as_not_found(tmp_path):
    RecordingRunner(ScriptedRunner({}, {}, {}, {}), tmp_path).finish()
    result = ReplayRunner(tmp_path).run(["nvidia-smi", "-q", "-x"], timeout_s=1)
    assert result.not_found and result.error == "not in the capture"


def test_manifest_cannot_point_outside_its_capture(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    capture = tmp_path / "cap"
    capture.mkdir()
    manifest = {"format": "bee-capture/1", "files": {"/etc/x": "../secret"}, "commands": []}
    (capture / "manifest.json").write_text(json.dumps(manifest))
    assert ReplayRunner(capture).read_text("/etc/x") is None


def test_broken_manifest_is_a_capture_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    try:
        ReplayRunner(tmp_path)
    except CaptureError as exc:
        assert "cannot read" in str(exc)
    else:
        raise AssertionError("a broken manifest was accepted")
