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
    OVERLAY / "etc/initramfs-tools/scripts/panic/bee-netboot",
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


def bus_like_this_host(root: Path) -> Path:
    """This host's PCI functions as sysfs shows them (their real vendor and class files)."""
    for device in Path("/sys/bus/pci/devices").glob("*"):
        try:
            files = {name: (device / name).read_text() for name in ("vendor", "class")}
        except OSError:
            continue
        (root / device.name).mkdir(parents=True)
        for name, text in files.items():
            (root / device.name / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("added", "has_gpu"),
    [
        ({}, False),
        # The H200 of the lent GPU host: `3D controller [0302]` at 0000:00:06.0 in
        # fixtures/lspci/h200-firecracker-vmm-nn-D.txt.
        ({"0000:00:06.0": ("0x10de", "0x030200")}, True),
        ({"0000:41:00.0": ("0x10de", "0x030000")}, True),  # a VGA-class GPU
        # A GPU's audio function and an NVSwitch-like bridge: NVIDIA, but no GPU.
        ({"0000:41:00.1": ("0x10de", "0x040300"), "0000:05:00.0": ("0x10de", "0x068000")}, False),
    ],
)
def test_bee_nvidia_has_gpu_on_a_bus_with_and_without_one(
    tmp_path: Path, added: dict[str, tuple[str, str]], has_gpu: bool
) -> None:
    """The script's own answer on known buses: an `exit 1` every time cannot pass (B.4.2)."""
    if host_has_nvidia_gpu():
        pytest.skip("this host has an NVIDIA GPU: its bus is not the no-GPU base")
    bus = bus_like_this_host(tmp_path / "devices")
    for address, (vendor, klass) in added.items():
        (bus / address).mkdir(parents=True)
        (bus / address / "vendor").write_text(f"{vendor}\n")
        (bus / address / "class").write_text(f"{klass}\n")
    result = subprocess.run(
        ["sh", str(OVERLAY / "usr/local/lib/bee/bee-nvidia"), "has-gpu"],
        env={**os.environ, "BEE_NVIDIA_SYS_PCI": str(bus)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == (0 if has_gpu else 1), result.stdout + result.stderr
    expected = "NVIDIA GPU found on the PCI bus" if has_gpu else "no NVIDIA GPU on the PCI bus"
    assert expected in result.stdout


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
        "cause": "",  # not Secure Boot's refusal
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


# --- the initramfs panic script of a netboot ----------------------------------------------------

NETBOOT_PANIC = OVERLAY / "etc/initramfs-tools/scripts/panic/bee-netboot"
# klibc ipconfig's lines as the QEMU netboot's console showed them (vm_test --netboot).
IP_CONFIG = """\
IP-Config: enp3s0 hardware address 52:54:00:be:e0:01 mtu 1500 DHCP RARP
IP-Config: enp3s0 complete (dhcp from 10.0.2.2):
 address: 10.0.2.15        broadcast: 10.0.2.255       netmask: 255.255.255.0
"""


def run_netboot_panic(tmp_path: Path, cmdline: str, log: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    (tmp_path / "boot.log").write_text(log)
    env = {
        **os.environ,
        "BEE_CMDLINE": str(tmp_path / "cmdline"),
        "BEE_BOOT_LOG": str(tmp_path / "boot.log"),
    }
    return subprocess.run(
        ["sh", str(NETBOOT_PANIC)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def busybox_wget_log(tmp_path: Path, url: str) -> str:
    """What live-boot's do_httpmount leaves in /boot.log: its Begin line, then busybox wget's
    own output, from the real busybox against `url`."""
    dest = tmp_path / "dest" / url.rsplit("/", 1)[-1]
    dest.parent.mkdir(exist_ok=True)
    no_proxy = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    wget = subprocess.run(
        ["busybox", "wget", url, "-O", str(dest)],
        env=no_proxy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"Begin: Trying wget {url} -O {dest} ... {wget.stdout}{wget.stderr}"


@pytest.fixture
def http_dir(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 over an empty directory: every file is a 404."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    (root / "filesystem.squashfs").write_bytes(b"squash" * 100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (its wget)")
def test_netboot_panic_names_the_url_and_wget_s_error(tmp_path: Path, http_dir: str) -> None:
    url = f"{http_dir}/missing.squashfs"
    log = IP_CONFIG + busybox_wget_log(tmp_path, url)
    result = run_netboot_panic(tmp_path, f"boot=live components fetch={url} quiet", log)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"bee netboot: FAILED to fetch the root file system from fetch={url}" in lines
    assert "bee netboot: wget: server returned error: HTTP/1.0 404 File not found" in lines
    assert "bee netboot: network: IP-Config: enp3s0 complete, address 10.0.2.15" in lines


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (its wget)")
def test_netboot_panic_for_a_server_that_is_down(tmp_path: Path) -> None:
    port = qemu_free_port()
    url = f"http://127.0.0.1:{port}/filesystem.squashfs"
    result = run_netboot_panic(tmp_path, f"fetch={url}", busybox_wget_log(tmp_path, url))
    assert "bee netboot: wget: can't connect to remote host (127.0.0.1): Connection refused" in (
        result.stdout.splitlines()
    )
    assert "bee netboot: network: no IP-Config result in" in result.stdout


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (its wget)")
def test_netboot_panic_after_a_good_fetch_says_nothing(tmp_path: Path, http_dir: str) -> None:
    """The squashfs came (wget said 'saved'): a later panic is not the fetch's."""
    url = f"{http_dir}/filesystem.squashfs"
    log = IP_CONFIG + busybox_wget_log(tmp_path, url)
    assert "' saved" in log
    result = run_netboot_panic(tmp_path, f"fetch={url}", log)
    assert (result.returncode, result.stdout) == (0, "")


def test_netboot_panic_is_silent_without_fetch(tmp_path: Path) -> None:
    result = run_netboot_panic(tmp_path, "boot=live components", "wget: anything\n")
    assert (result.returncode, result.stdout) == (0, "")


def qemu_free_port() -> int:
    from buildtools.vm import qemu

    return qemu.free_port()
