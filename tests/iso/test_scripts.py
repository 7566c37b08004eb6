"""The image's shell scripts: POSIX syntax, and the parts that run without the image."""

from __future__ import annotations

import os
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


def built_nvidia_modules() -> Path | None:
    """modules/ of a buildtools/nvidia/build.py cache entry in dist/, if one was built here."""
    found = sorted((REPO / "dist").glob("nvidia-*/modules/nvidia.ko"))
    return found[-1].parent if found else None


def test_bee_nvidia_refuses_modules_for_another_kernel() -> None:
    """The version-mismatch report, with real modules; never reaches insmod (vermagic first)."""
    modules = built_nvidia_modules()
    if modules is None or shutil.which("modinfo") is None:
        pytest.skip("needs modinfo and NVIDIA modules in dist/ (nox -s nvidia_modules)")
    vermagic = subprocess.run(
        ["modinfo", "-F", "vermagic", str(modules / "nvidia.ko")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    running = os.uname().release
    if vermagic == running or Path("/sys/module/nvidia").exists():
        pytest.skip("this host could load these modules: not trying")
    result = subprocess.run(
        ["sh", str(OVERLAY / "usr/local/lib/bee/bee-nvidia"), "load"],
        env={**os.environ, "BEE_NVIDIA_DIR": str(modules)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"FAILED: nvidia: built for kernel '{vermagic}', running {running}: version mismatch"
        in result.stderr
    )
