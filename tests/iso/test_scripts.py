"""The image's shell scripts: POSIX syntax, and the parts that run without the image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "iso" / "overlay"
BUILDER = REPO / "iso" / "builder"
SCRIPTS = [
    *sorted((OVERLAY / "usr/local/lib/bee").iterdir()),
    OVERLAY / "etc/update-motd.d/50-bee",
    BUILDER / "smoketest.sh",
    BUILDER / "auto/config",
    *sorted((BUILDER / "config/hooks/normal").glob("*.hook.*")),
]
SHELLS = [shell for shell in ("dash", "sh") if shutil.which(shell)]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_is_executable_posix_sh(script: Path) -> None:
    assert script.read_text().startswith("#!/bin/sh\n")
    assert script.stat().st_mode & 0o111 or script.name == "smoketest.sh"
    for shell in SHELLS:
        result = subprocess.run(
            [shell, "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(OVERLAY / "usr/local/lib/bee/bee-nvidia"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_bee_nvidia_usage_error() -> None:
    result = run_script("frobnicate")
    assert result.returncode == 2
    assert "usage" in result.stderr


def host_has_nvidia_gpu() -> bool:
    for device in Path("/sys/bus/pci/devices").glob("*"):
        try:
            vendor = (device / "vendor").read_text().strip()
            klass = (device / "class").read_text().strip()
        except OSError:
            continue
        if vendor == "0x10de" and klass.startswith("0x03"):
            return True
    return False


def test_bee_nvidia_has_gpu_matches_the_pci_bus() -> None:
    """The ExecCondition: exit 0 with an NVIDIA display controller, 1 (skip) without."""
    result = run_script("has-gpu")
    assert result.returncode == (0 if host_has_nvidia_gpu() else 1)
