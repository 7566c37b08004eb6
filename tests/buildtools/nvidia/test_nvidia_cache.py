"""The NVIDIA cache: sha256 pins, hits and misses, interrupted builds, the manifest.

No root, no network: entries are filled with small files written by the tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from buildtools.nvidia.cache import (
    CACHE_FORMAT,
    MANIFEST,
    build_entry,
    cache_dir,
    load_entry,
    partial_dir,
    remove_stale_partials,
    sha256_file,
    verify_sha256,
)
from buildtools.nvidia.steps import NvidiaError

INPUTS = {
    "version": "535.309.01",
    "flavour": "proprietary",
    "kernel_abi": "6.1.0-56-amd64",
    "source": "debian",
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- sha256 pins ---------------------------------------------------------------------------


def test_sha256_match_keeps_file(tmp_path: Path) -> None:
    path = tmp_path / "NVIDIA-Linux-x86_64-1.2.3.run"
    path.write_bytes(b"installer")
    assert verify_sha256(path, _digest(b"installer").upper(), what="x", pin_name="PIN") == (
        _digest(b"installer")
    )
    assert path.exists()


def test_sha256_mismatch_names_both_digests_and_removes_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.run"
    path.write_bytes(b"tampered")
    pinned = _digest(b"genuine")
    with pytest.raises(NvidiaError) as caught:
        verify_sha256(path, pinned, what="http://host/bad.run", pin_name="NVIDIA_RUN_SHA256")
    message = str(caught.value)
    assert pinned in message
    assert _digest(b"tampered") in message
    assert "\n" not in message
    assert not path.exists()


def test_sha256_missing_pin_refuses_and_reports_digest(tmp_path: Path) -> None:
    path = tmp_path / "unpinned.run"
    path.write_bytes(b"anything")
    with pytest.raises(NvidiaError, match="NVIDIA_RUN_SHA256 is empty") as caught:
        verify_sha256(path, "", what="unpinned.run", pin_name="NVIDIA_RUN_SHA256")
    assert _digest(b"anything") in str(caught.value)
    assert not path.exists()


def test_sha256_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_sha256(tmp_path / "absent.run", _digest(b""), what="x", pin_name="PIN")


# -- entries -------------------------------------------------------------------------------


def _fill(entry: Path) -> dict[str, Any]:
    (entry / "modules").mkdir()
    (entry / "modules" / "nvidia.ko").write_bytes(b"\x7fELF module")
    (entry / "lib").mkdir()
    (entry / "lib" / "libnvidia-ml.so.535.309.01").write_bytes(b"\x7fELF lib")
    (entry / "lib" / "libnvidia-ml.so.1").symlink_to("libnvidia-ml.so.535.309.01")
    return {"version": "535.309.01", "modules": ["nvidia.ko"]}


def _entry(tmp_path: Path) -> Path:
    return cache_dir(tmp_path, "535.309.01", "6.1.0-56-amd64", "proprietary")


def test_miss_when_nothing_cached(tmp_path: Path) -> None:
    entry, why = load_entry(_entry(tmp_path), INPUTS)
    assert entry is None
    assert "no cache" in why


def test_build_then_hit(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    built = build_entry(final, INPUTS, _fill)
    assert not built.cache_hit
    assert final.name == "nvidia-535.309.01-6.1.0-56-amd64-proprietary"
    assert os.fspath(built) == str(final)
    hit, why = load_entry(final, INPUTS)
    assert why == ""
    assert hit is not None
    assert hit.cache_hit
    assert hit.module_paths == [final / "modules" / "nvidia.ko"]
    assert list(tmp_path.glob(".*")) == []  # no temporary directory left behind


def test_manifest_records_inputs_and_sha256_of_every_file(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    build_entry(final, INPUTS, _fill)
    manifest = json.loads((final / MANIFEST).read_text())
    assert manifest["cache_format"] == CACHE_FORMAT
    assert manifest["inputs"] == INPUTS
    assert manifest["version"] == "535.309.01"
    assert manifest["modules"] == ["nvidia.ko"]
    assert manifest["sha256"] == {
        "lib/libnvidia-ml.so.535.309.01": _digest(b"\x7fELF lib"),
        "modules/nvidia.ko": _digest(b"\x7fELF module"),
    }
    assert manifest["symlinks"] == {"lib/libnvidia-ml.so.1": "libnvidia-ml.so.535.309.01"}
    for rel, digest in manifest["sha256"].items():
        assert sha256_file(final / rel) == digest


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"flavour": "open"}, "inputs changed (flavour)"),
        ({"kernel_abi": "6.1.0-57-amd64"}, "inputs changed (kernel_abi)"),
        ({"source": "run", "run_sha256": "0" * 64}, "inputs changed (run_sha256, source)"),
    ],
)
def test_miss_when_inputs_change(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    final = _entry(tmp_path)
    build_entry(final, INPUTS, _fill)
    entry, why = load_entry(final, {**INPUTS, **change})
    assert entry is None
    assert why == reason


def test_miss_when_a_file_changed_or_vanished(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    build_entry(final, INPUTS, _fill)
    (final / "modules" / "nvidia.ko").write_bytes(b"\x7fELF other")
    assert load_entry(final, INPUTS) == (None, "modules/nvidia.ko changed since it was built")
    (final / "modules" / "nvidia.ko").unlink()
    assert load_entry(final, INPUTS) == (None, "modules/nvidia.ko is missing")


def test_miss_when_a_symlink_changed(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    build_entry(final, INPUTS, _fill)
    (final / "lib" / "libnvidia-ml.so.1").unlink()
    entry, why = load_entry(final, INPUTS)
    assert entry is None
    assert "symlink lib/libnvidia-ml.so.1" in why


def test_miss_on_garbled_or_foreign_manifest(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    build_entry(final, INPUTS, _fill)
    (final / MANIFEST).write_text("{not json")
    assert load_entry(final, INPUTS)[0] is None
    (final / MANIFEST).write_text(json.dumps({"cache_format": CACHE_FORMAT + 1}))
    assert "another cache format" in load_entry(final, INPUTS)[1]


class Interrupted(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("error", [NvidiaError("make failed"), Interrupted()])
def test_interrupted_build_leaves_no_entry(tmp_path: Path, error: BaseException) -> None:
    final = _entry(tmp_path)

    def fill_then_fail(entry: Path) -> dict[str, Any]:
        _fill(entry)
        raise error

    with pytest.raises(type(error)):
        build_entry(final, INPUTS, fill_then_fail)
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []
    assert load_entry(final, INPUTS)[0] is None


def test_killed_build_leftovers_never_count_and_are_cleaned(tmp_path: Path) -> None:
    """A SIGKILLed build cannot clean up: its partial dir must not look like an entry."""
    final = _entry(tmp_path)
    dead_pid = 2**22 + 1  # above pid_max's default: no such process
    leftover = final.parent / f".{final.name}.partial-{dead_pid}"
    leftover.mkdir(parents=True)
    _fill(leftover)
    (leftover / MANIFEST).write_text(json.dumps({"cache_format": CACHE_FORMAT}))
    assert load_entry(final, INPUTS)[0] is None
    assert remove_stale_partials(final) == [leftover]
    assert not leftover.exists()


def test_entry_without_manifest_is_a_miss(tmp_path: Path) -> None:
    """Files copied by hand (or a crash between copy and manifest) do not make an entry."""
    final = _entry(tmp_path)
    final.mkdir(parents=True)
    _fill(final)
    entry, why = load_entry(final, INPUTS)
    assert entry is None
    assert "no manifest" in why


def test_rebuild_replaces_invalid_entry(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    final.mkdir(parents=True)
    (final / "stale.ko").write_bytes(b"old")
    build_entry(final, INPUTS, _fill)
    assert not (final / "stale.ko").exists()
    assert load_entry(final, INPUTS)[0] is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]


def test_partial_dir_is_hidden_and_per_process(tmp_path: Path) -> None:
    final = _entry(tmp_path)
    assert partial_dir(final).name == f".{final.name}.partial-{os.getpid()}"
