"""dist/netboot/ from a real (small) ISO made with xorriso, the configurations, and the HTTP
server with the bridge QEMU runs per guest connection (a real subprocess, real sockets)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buildtools.netboot import artefacts, serve
from buildtools.runner import Runner

LIVE_CFG = """\
label live-amd64
\tmenu label ^Live system (amd64)
\tmenu default
\tlinux /live/vmlinuz
\tinitrd /live/initrd.img
\tappend boot=live components quiet splash hostname=bee console=ttyS0,115200 console=tty1
"""


def test_the_url_must_name_the_server_by_ip() -> None:
    assert artefacts.check_url("http://10.0.0.5/bee/") == "http://10.0.0.5/bee"
    with pytest.raises(artefacts.NetbootError, match="by its IP address"):
        artefacts.check_url("http://pxe.example/bee")
    with pytest.raises(artefacts.NetbootError, match="http:// only"):
        artefacts.check_url("https://10.0.0.5/bee")


def test_kernel_arguments_keep_the_image_s_own_and_fetch_the_squashfs() -> None:
    append = "boot=live components quiet splash hostname=bee console=ttyS0,115200 fetch=x"
    arguments = artefacts.kernel_arguments(append, "http://10.0.0.5/bee", "bee.upload=http://x/")
    assert arguments == (
        "boot=live components hostname=bee console=ttyS0,115200 "
        "fetch=http://10.0.0.5/bee/filesystem.squashfs bee.upload=http://x/"
    )
    script = artefacts.ipxe_script("http://10.0.0.5/bee", arguments)
    assert script.startswith("#!ipxe\n")
    assert "kernel http://10.0.0.5/bee/vmlinuz initrd=initrd.img boot=live" in script
    assert "BOOTIF=01-${net0/mac:hexhyp}" in script
    assert "IPAPPEND 2" in artefacts.pxelinux_config("http://10.0.0.5/bee", arguments)


@pytest.fixture
def small_iso(tmp_path: Path) -> Path:
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso")
    tree = tmp_path / "tree"
    (tree / "live").mkdir(parents=True)
    (tree / "isolinux").mkdir()
    (tree / "live/vmlinuz").write_bytes(b"kernel" * 100)
    (tree / "live/initrd.img").write_bytes(b"initrd" * 100)
    (tree / "live/filesystem.squashfs").write_bytes(b"squash" * 1000)
    (tree / "isolinux/live.cfg").write_text(LIVE_CFG)
    iso = tmp_path / "small.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", str(iso), str(tree)],
        check=True,
        capture_output=True,
    )
    return iso


def test_netboot_directory_from_the_iso(tmp_path: Path, small_iso: Path) -> None:
    out = tmp_path / "netboot"
    with Runner(tmp_path / "log") as runner:
        made = artefacts.make_netboot(small_iso, out, "http://10.0.0.5/bee", runner)
    assert (out / "filesystem.squashfs").read_bytes() == b"squash" * 1000
    assert (out / "vmlinuz").read_bytes() == b"kernel" * 100
    ipxe = (out / "boot.ipxe").read_text()
    assert "fetch=http://10.0.0.5/bee/filesystem.squashfs" in ipxe
    assert " quiet" not in ipxe and "hostname=bee" in ipxe
    sums = (out / "SHA256SUMS").read_text().splitlines()
    names = sorted(line.split("  ", 1)[1] for line in sums)
    assert names == [
        "boot.ipxe",
        "filesystem.squashfs",
        "grub/grub.cfg",
        "initrd.img",
        "pxelinux.cfg/default",
        "vmlinuz",
    ]
    assert made.append.startswith("boot=live components")
    assert not out.with_name("netboot.partial").exists()


def test_server_counts_what_the_bridge_carries(tmp_path: Path) -> None:
    (tmp_path / "filesystem.squashfs").write_bytes(b"x" * 300_000)
    with serve.NetbootServer(tmp_path) as server:
        command = server.guestfwd().partition("-cmd:")[2].split()

        def get(path: str) -> subprocess.CompletedProcess[bytes]:
            request = f"GET {path} HTTP/1.0\r\nHost: 10.0.2.100\r\n\r\n".encode()
            return subprocess.run(
                command, input=request, capture_output=True, timeout=30, check=False
            )

        result = get("/filesystem.squashfs")
        missing = get("/wrong.squashfs")
    assert result.returncode == 0, result.stderr
    head, _sep, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and body == b"x" * 300_000
    assert missing.stdout.startswith(b"HTTP/1.0 404")
    assert server.served.bytes_by_path == {"/filesystem.squashfs": 300_000}
    assert server.served.requests == [("/filesystem.squashfs", 200), ("/wrong.squashfs", 404)]
    assert command[0] == sys.executable


# --- the ready configurations in docs/netboot.md ----------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "netboot.md"


def docs_block(marker: str) -> str:
    """The fenced block of docs/netboot.md that contains `marker`, as a user would copy it."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = [part.split("\n", 1)[1] for part in text.split("```")[1::2] if "\n" in part]
    return next(block for block in blocks if marker in block)


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq (dnsmasq-base)")
def test_the_docs_dnsmasq_configuration_is_accepted_by_dnsmasq(tmp_path: Path) -> None:
    conf = tmp_path / "bee-pxe.conf"
    conf.write_text(docs_block("/etc/dnsmasq.d/bee-pxe.conf"))
    result = subprocess.run(
        ["dnsmasq", "--test", "-C", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "dhcp-boot=tag:ipxe,http://10.0.0.5/bee/boot.ipxe" in conf.read_text()


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
def test_the_docs_nginx_configuration_is_accepted_by_nginx(tmp_path: Path) -> None:
    # nginx -t binds nothing; a loopback address keeps it so should that change.
    server = docs_block("/etc/nginx/sites-enabled/bee").replace(
        "listen 80;", "listen 127.0.0.1:80;"
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; client_body_temp_path {tmp_path};\n{server}\n}}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-q", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
