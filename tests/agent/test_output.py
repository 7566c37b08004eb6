"""Writing the document: atomic replace, devices and FIFOs written into, stops held back."""

from __future__ import annotations

import os
import signal

import pytest

from bee import output, stops


def test_a_stop_signal_during_the_write_lands_after_it_and_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    real_fsync = os.fsync

    def fsync_then_sigterm(fd: int) -> None:  # systemd stopping the unit mid-write
        os.kill(os.getpid(), signal.SIGTERM)
        real_fsync(fd)

    previous = signal.signal(signal.SIGTERM, stops._stop)
    monkeypatch.setattr(os, "fsync", fsync_then_sigterm)
    try:
        with pytest.raises(stops.Stopped):
            output.write_document(target, b"new")
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
        import logging

        logging.getLogger("bee").disabled = False
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert target.read_bytes() == b"new"


def test_held_keeps_a_stop_pending_until_the_block_ends():
    previous = signal.signal(signal.SIGTERM, stops._stop)
    reached_end_of_block = False
    try:
        with pytest.raises(stops.Stopped), stops.held():
            os.kill(os.getpid(), signal.SIGTERM)
            reached_end_of_block = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        import logging

        logging.getLogger("bee").disabled = False
    assert reached_end_of_block
