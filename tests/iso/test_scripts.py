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
    """modules/ of a buildtools/nvidia/build.py proprietary cache entry in dist/, if built here."""
    found = sorted((REPO / "dist").glob("nvidia-*-proprietary/modules/nvidia.ko"))
    return found[-1].parent if found else None


def run_load(tmp_path: Path, nvidia_dir: Path, cmdline: str, path: str | None = None):
    """`bee-nvidia load` against a module tree, a kernel command line and a record file."""
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    env = {
        **os.environ,
        "BEE_NVIDIA_DIR": str(nvidia_dir),
        "BEE_NVIDIA_CMDLINE": str(tmp_path / "cmdline"),
        "BEE_NVIDIA_RECORD": str(tmp_path / "run/nvidia-load"),
    }
    if path is not None:
        env["PATH"] = path
    result = subprocess.run(
        ["sh", str(OVERLAY / "usr/local/lib/bee/bee-nvidia"), "load"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    record = tmp_path / "run/nvidia-load"
    values = {}
    for line in record.read_text().splitlines() if record.exists() else []:
        key, _sep, value = line.partition("=")
        values[key] = value
    return result, values


def test_bee_nvidia_refuses_modules_for_another_kernel(tmp_path: Path) -> None:
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
    tree = tmp_path / "nvidia"
    tree.mkdir()
    (tree / "proprietary").symlink_to(modules)
    result, record = run_load(tmp_path, tree, "quiet bee.nvidia=proprietary")
    assert result.returncode == 1
    mismatch = f"nvidia: built for kernel '{vermagic}', running {running}: version mismatch"
    assert f"FAILED: {mismatch}" in result.stderr
    assert record == {
        "status": "failed",
        "flavour": "proprietary",
        "reason": "bee.nvidia=proprietary on the kernel command line",
        "message": mismatch,
    }


def shipped_tree(root: Path) -> Path:
    """A module tree as the image lays it out (the files are never loaded by these tests)."""
    for flavour in ("open", "proprietary"):
        (root / flavour).mkdir(parents=True)
        (root / flavour / "nvidia.ko").write_bytes(b"")
    return root


def test_bee_nvidia_none_on_the_command_line_loads_nothing_and_says_so(tmp_path: Path) -> None:
    result, record = run_load(tmp_path, shipped_tree(tmp_path / "nvidia"), "bee.nvidia=none")
    assert result.returncode == 0, result.stderr
    assert "bee-nvidia: nothing to load" in result.stdout
    assert record["status"] == "skipped" and record["flavour"] == "none"


def test_bee_nvidia_unknown_flavour_fails_once_with_a_record(tmp_path: Path) -> None:
    result, record = run_load(tmp_path, shipped_tree(tmp_path / "nvidia"), "bee.nvidia=nouveau")
    assert result.returncode == 1
    assert record["status"] == "failed"
    assert "unknown flavour 'nouveau'" in record["message"]


def test_bee_nvidia_asks_the_agent_for_the_flavour(tmp_path: Path) -> None:
    """The real agent on PATH answers from this host's PCI bus and /usr/local/lib/nvidia (which
    this host lacks): nothing to load, and its reason lands in the record."""
    from buildtools.image import staging

    build = staging.package_agent(staging.AGENT_DIR, tmp_path / "agent")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(build.zipapp, bin_dir / "bee")
    if host_has_nvidia_gpu() or Path("/usr/local/lib/nvidia").exists():
        pytest.skip("this host has NVIDIA hardware or modules: its answer would vary")
    path = f"{bin_dir}:{os.environ['PATH']}"
    result, record = run_load(tmp_path, shipped_tree(tmp_path / "nvidia"), "quiet", path)
    assert result.returncode == 0, result.stderr
    assert record["status"] == "skipped" and record["flavour"] == "none"
    assert "supported-gpus.json is missing" in record["reason"]
