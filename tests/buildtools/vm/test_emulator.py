"""buildtools.vm.emulator: which QEMU the VM test runs.

The parsers are checked on what the tools printed here. The fetch runs for real: apt against a
local `file:` archive (tests/conftest.py local_archive) whose qemu-system-x86 holds this host's
own qemu-system-x86_64 and whose seabios holds its bios-256k.bin, unpacked with dpkg-deb and run
with --version. The minimum version is lowered to the host's for that, and the host's QEMU is
looked for under a name that does not exist, so the backport path is the one taken.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from buildtools.pins.aptrepo import AptRepo
from buildtools.runner import Runner
from buildtools.vm import emulator
from conftest import local_archive

# `qemu-system-x86_64 --version` on this Debian 12 host, and bookworm-backports' build of 10.0.
QEMU_72 = (
    "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"
    "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
)
QEMU_10 = (
    "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n"
    "Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n"
)
OS_RELEASE_12 = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)
SEABIOS = Path("/usr/share/seabios/bios-256k.bin")


def test_parse_version() -> None:
    assert emulator.parse_version(QEMU_72) == (7, 2, 22)
    assert emulator.parse_version(QEMU_10) == (10, 0, 2)
    assert emulator.parse_version("QEMU emulator version 9.2\n") == (9, 2)
    assert emulator.parse_version("qemu-system-x86_64: command not found") is None


def test_dotted() -> None:
    assert emulator.dotted((10, 0, 2)) == "10.0.2"
    assert emulator.dotted(None) == "unknown"


def test_new_enough_is_the_minimum_or_later() -> None:
    assert not emulator.new_enough(emulator.parse_version(QEMU_72))
    assert emulator.new_enough(emulator.parse_version(QEMU_10))
    assert emulator.new_enough(emulator.MIN_VERSION)
    assert not emulator.new_enough(None)


def test_parse_codename() -> None:
    assert emulator.parse_codename(OS_RELEASE_12) == "bookworm"
    assert emulator.parse_codename('VERSION_CODENAME="trixie"\n') == "trixie"
    assert emulator.parse_codename("ID=debian\n") is None
    assert emulator.parse_codename("VERSION_CODENAME=\n") is None


def test_command_puts_its_own_data_before_the_hosts() -> None:
    emu = emulator.Emulator(binary="/e/usr/bin/q", version=(10, 0), data_dirs=("/e/a", "/e/b"))
    assert emu.command == ["/e/usr/bin/q", "-L", "/e/a", "-L", "/e/b"]
    assert emulator.Emulator(binary="q", version=None).command == ["q"]


def test_machine_type_keeps_16_gib_dimms() -> None:
    assert emulator.Emulator(binary="q", version=(7, 2, 22)).machine == "q35"
    assert emulator.Emulator(binary="q", version=(10, 0, 2)).machine == "pc-q35-9.0"
    assert emulator.Emulator(binary="q", version=None).machine == "q35"


def test_host_only_keeps_the_hosts_qemu(tmp_path: Path) -> None:
    with Runner(tmp_path / "log") as runner:
        emu = emulator.resolve(tmp_path / "dist", runner, host_only=True)
    assert emu.command == [emulator.HOST_QEMU]
    assert not (tmp_path / "dist").exists()


needs_tools = pytest.mark.skipif(
    not all(
        shutil.which(tool)
        for tool in ("apt-get", "dpkg-deb", "dpkg-scanpackages", emulator.HOST_QEMU)
    )
    or not SEABIOS.is_file(),
    reason="needs apt-get, dpkg-deb, dpkg-scanpackages (dpkg-dev), qemu-system-x86 and seabios",
)


@pytest.fixture
def backports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(dist dir, os-release file, a repo factory) with a local bookworm-backports archive that
    holds this host's QEMU as the "backport"; the minimum is this host's version."""
    host_binary = Path(shutil.which(emulator.HOST_QEMU) or "")
    printed = subprocess.run([host_binary, "--version"], capture_output=True, text=True, check=True)
    version = emulator.parse_version(printed.stdout)
    assert version is not None
    monkeypatch.setattr(emulator, "MIN_VERSION", version[:2])
    monkeypatch.setattr(emulator, "HOST_QEMU", "qemu-system-x86_64-not-on-this-host")
    archive = local_archive(
        tmp_path / "archive",
        {"qemu-system-x86": "1:10.0.2+ds-2~bpo12+1", "qemu-system-data": "1:10.0.2+ds-2~bpo12+1",
         "seabios": "1.16.3-2~bpo12+1"},
        suite="bookworm-backports",
        files={
            "qemu-system-x86": {"usr/bin/qemu-system-x86_64": host_binary},
            "seabios": {"usr/share/seabios/bios-256k.bin": SEABIOS},
        },
    )  # fmt: skip
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASE_12)
    dist = tmp_path / "dist"

    def repo(runner: Runner) -> AptRepo:
        return AptRepo(
            dist / "apt" / "bookworm-backports",
            mirror=f"file:{archive}",
            release="bookworm-backports",
            areas=("main",),
            trusted=True,
            runner=runner,
        )

    return dist, os_release, repo, version


@needs_tools
def test_backport_is_fetched_unpacked_and_reused_offline(tmp_path: Path, backports) -> None:
    dist, os_release, repo, version = backports
    with Runner(tmp_path / "log") as runner:
        emu = emulator.resolve(dist, runner, repo=repo(runner), os_release=os_release)
        root = dist / "emulator" / "qemu-1_10.0.2+ds-2~bpo12+1"
        assert emu.binary == str(root / "usr/bin/qemu-system-x86_64")
        assert emu.version == version
        assert emu.command[1:] == [
            "-L", str(root / "usr/share/seabios"), "-L", str(root / "usr/share/qemu"),
        ]  # fmt: skip
        assert (root / "usr/share/seabios/bios-256k.bin").read_bytes() == SEABIOS.read_bytes()
        assert "from bookworm-backports" in emu.why
        assert sorted(p.name for p in (dist / "emulator" / "debs").glob("*.deb")) == [
            "qemu-system-data_1%3a10.0.2+ds-2~bpo12+1_all.deb",
            "qemu-system-x86_1%3a10.0.2+ds-2~bpo12+1_all.deb",
            "seabios_1.16.3-2~bpo12+1_all.deb",
        ]

        # The archive gone (no network): the unpack from before is used, nothing fetched.
        shutil.rmtree(tmp_path / "archive")
        shutil.rmtree(dist / "emulator" / "debs")
        again = emulator.resolve(dist, runner, repo=repo(runner), os_release=os_release)
        assert again.command == emu.command
        assert not (dist / "emulator" / "debs").exists()

        # A half-done unpack (no .complete) is not run.
        (root / emulator.COMPLETE).unlink()
        fallback = emulator.resolve(dist, runner, repo=repo(runner), os_release=os_release)
    assert fallback.command == [emulator.HOST_QEMU]
    assert "boots slower" in fallback.why


@needs_tools
def test_no_backport_new_enough_falls_back_to_the_host(
    tmp_path: Path, backports, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist, os_release, repo, version = backports
    monkeypatch.setattr(emulator, "MIN_VERSION", (version[0] + 1, 0))
    with Runner(tmp_path / "log") as runner:
        emu = emulator.resolve(dist, runner, repo=repo(runner), os_release=os_release)
    assert emu.command == [emulator.HOST_QEMU]
    assert "older than" not in emu.why and "boots slower" in emu.why
    assert "bookworm-backports has no qemu-system-x86" in emu.why


def test_no_codename_falls_back_to_the_host(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(emulator, "HOST_QEMU", "qemu-system-x86_64-not-on-this-host")
    os_release = tmp_path / "os-release"
    os_release.write_text("ID=debian\n")
    with Runner(tmp_path / "log") as runner:
        emu = emulator.resolve(tmp_path / "dist", runner, os_release=os_release)
    assert emu.command == ["qemu-system-x86_64-not-on-this-host"]
    assert "no VERSION_CODENAME" in emu.why
