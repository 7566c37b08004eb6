"""buildtools.vm.phases: a boot's phases from the serial console and systemd-analyze."""

from __future__ import annotations

import time
from pathlib import Path

from buildtools.vm import phases
from buildtools.vm.phases import SerialLine

# Lines as a boot through isolinux put them on ttyS0 (Debian 13 image), with when they arrived.
BOOT = [
    SerialLine(2.1, "ISOLINUX 6.04 20250413  Copyright (C) 1994-2015 H. Peter Anvin et al"),
    SerialLine(19.0, "[    0.000000] Linux version 6.12.118+deb13-amd64"),
    SerialLine(19.0, "[    0.412000] printk: legacy console [ttyS0] enabled"),
    SerialLine(21.5, "[    3.100000] ACPI: PCI Root Bridge [PCI0]"),
    SerialLine(28.2, "[    9.737216] Run /init as init process"),
    SerialLine(30.0, "Loading, please wait..."),
    SerialLine(46.0, "Begin: Running /scripts/init-bottom ... done."),
    SerialLine(
        46.5,
        "[   27.655137] Not activating Mandatory Access Control as /sbin/tomoyo-init does not "
        "exist.",
    ),
    SerialLine(
        101.6,
        "[   83.130786] systemd[1]: systemd 257.9-1~deb13u1 running in system mode (+PAM +AUDIT)",
    ),
    SerialLine(102.0, "Welcome to Debian GNU/Linux 13 (trixie)!"),
]


def test_phases_of_a_bootloader_boot() -> None:
    marks = phases.phases_from_lines(BOOT)
    assert marks.bootloader_at_s == 2.1
    # The kernel's clock started when the line that arrived least late was printed:
    # 21.5 - 3.1 = 18.4 (the first lines were buffered until the console was enabled).
    assert round(marks.kernel_at_s, 3) == 18.4
    assert round(marks.init_at_s, 3) == round(18.4 + 9.737216, 3)
    assert round(marks.switch_root_at_s, 3) == round(18.4 + 27.655137, 3)
    assert round(marks.systemd_at_s, 3) == round(18.4 + 83.130786, 3)


def test_rows_join_a_phase_that_was_not_seen() -> None:
    # A -kernel boot: no bootloader line; firmware and bootloader are one phase.
    marks = phases.phases_from_lines(BOOT[1:])
    full = phases.Phases(
        bootloader_at_s=marks.bootloader_at_s,
        kernel_at_s=marks.kernel_at_s,
        init_at_s=marks.init_at_s,
        switch_root_at_s=marks.switch_root_at_s,
        systemd_at_s=marks.systemd_at_s,
        ssh_at_s=150.0,
        audit_at_s=None,
    )
    rows = full.rows()
    assert [r[0] for r in rows] == [
        "firmware + bootloader",
        "kernel",
        "initramfs",
        "systemd start",
        "systemd to SSH",
        "SSH to audit done",
    ]
    assert round(rows[0][1], 3) == 18.4 and rows[-1] == ("SSH to audit done", None, None)
    assert round(sum(r[1] for r in rows[:-1]), 6) == 150.0


def test_no_lines_no_marks() -> None:
    marks = phases.phases_from_lines([])
    assert (marks.bootloader_at_s, marks.kernel_at_s, marks.systemd_at_s) == (None, None, None)
    assert all(took is None for _name, took, _at in marks.rows())


def test_longest_silences_in_boot_order() -> None:
    gaps = phases.longest_silences(BOOT, 2)
    assert [round(g, 1) for g, _b, _a in gaps] == [16.9, 55.1]
    assert "tomoyo-init" in gaps[1][1]
    assert "systemd 257" in gaps[1][2]


def test_clean_drops_escapes_and_redraws() -> None:
    raw = "\x1b[0;31m*     \x1b[0m] Job live-config.service/start running (10s / no limit)\r"
    assert phases.clean(raw).endswith("Job live-config.service/start running (10s / no limit)")
    assert phases.clean("first\rsecond\r") == "second"


def test_startup_finished_and_blame() -> None:
    text = "Startup finished in 21.440s (kernel) + 1min 3.211s (userspace) = 1min 24.651s \n"
    assert phases.parse_startup_finished(text) == {"kernel": 21.44, "userspace": 63.211}
    uefi = (
        "Startup finished in 4.1s (firmware) + 6.5s (loader) + 20.0s (kernel) + 40.2s "
        "(userspace) = 1min 10.8s"
    )
    parts = ["firmware", "loader", "kernel", "userspace"]
    assert list(phases.parse_startup_finished(uefi)) == parts
    assert phases.parse_startup_finished("Bootup is not yet finished.") == {}
    blame = "40.102s live-config.service\n  812ms bee-nvidia.service\n1min 2.5s x.service\nnoise\n"
    assert phases.parse_blame(blame, 2) == [(62.5, "x.service"), (40.102, "live-config.service")]


def test_serial_clock_times_lines_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"")
    started = time.monotonic()
    clock = phases.SerialClock(log, started).start()
    with log.open("ab") as out:
        out.write(b"ISOLINUX 6.04\r\nhalf a li")
        out.flush()
        time.sleep(4 * phases.POLL_S)
        out.write(b"ne\n\x1b[0mlast, no newline")
    clock.stop()
    lines = clock.lines()
    assert [line.text for line in lines] == ["ISOLINUX 6.04", "half a line", "last, no newline"]
    assert lines[0].at_s < lines[1].at_s
