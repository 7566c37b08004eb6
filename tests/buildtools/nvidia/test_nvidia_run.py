"""The `.run` path end to end, on a small scale, with real tools.

The test builds a genuine self-extracting archive with Debian's makeself, laid out like NVIDIA's
installer (NVIDIA-Linux-x86_64-<v>/ with kernel/, nvidia-smi, nvidia-modprobe,
libnvidia-ml.so.<v>, libcuda.so.<v>, firmware/gsp_*.bin). The kernel/ tree holds two tiny
kernel modules (nvidia, nvidia-uvm that uses a symbol of nvidia); the user-space files are small
programs compiled here with gcc. The archive is served on 127.0.0.1 and `ensure_nvidia` downloads
it, verifies its sha256, extracts it with `-x`, builds the modules against the pinned kernel's
headers, checks their vermagic, and writes the cache entry; a second call reuses the entry and
downloads nothing.

About `-x`: NVIDIA's installer is built with NVIDIA's fork of makeself, whose header handles
`-x`/`--extract-only` (unpack into ./<dir> and stop). Stock makeself 2.4 has the same behaviour
under `--noexec --keep`; the test adds the `-x` spelling to a copy of Debian's stock header
(`makeself --header`), which is the only difference from a plain makeself archive.

Skipped, with the reason, where the pinned kernel's headers, a compiler, make, makeself or
modinfo are missing (install linux-headers-<ABI>: `nox -s nvidia_modules` does it as root).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildtools.nvidia import kbuild
from buildtools.nvidia.build import ensure_nvidia, main
from buildtools.nvidia.buildroot import KernelBuildRoot, host_release
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.versions import load_versions, parse_versions
from buildtools.runner import Runner

VERSION = "9.9.9"
ABI = load_versions().kernel_abi
STOCK_HEADER = Path("/usr/share/makeself/makeself-header.sh")
# Built on the host: the test pins the host's own release, so no build root is made.
HOST_RELEASE = host_release() or "unknown"
TOOLS = ("gcc", "make", "makeself", "modinfo", "strip", "ldd")


def _missing_prerequisites() -> str:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    if not STOCK_HEADER.is_file():
        return f"no {STOCK_HEADER} (Debian's makeself package)"
    if not (kbuild.headers_dir(ABI) / "Makefile").is_file():
        return f"no kernel headers for the pinned {ABI} (apt-get install linux-headers-{ABI})"
    try:
        kbuild.kernel_compiler(ABI, KernelBuildRoot(root=None, release=HOST_RELEASE))
    except NvidiaError as exc:
        return str(exc)
    return ""


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(_missing_prerequisites()), reason=_missing_prerequisites() or "ok"),
]

NVIDIA_C = r"""
#include <linux/module.h>
int bee_tiny_nvidia_value(void) { return 42; }
EXPORT_SYMBOL(bee_tiny_nvidia_value);
static int __init tiny_init(void) { return 0; }
static void __exit tiny_exit(void) { }
module_init(tiny_init);
module_exit(tiny_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("%(version)s");
MODULE_DESCRIPTION("bee test: stands in for nvidia.ko");
"""
NVIDIA_UVM_C = r"""
#include <linux/module.h>
int bee_tiny_nvidia_value(void);
static int __init tiny_init(void) { return bee_tiny_nvidia_value() == 42 ? 0 : -1; }
static void __exit tiny_exit(void) { }
module_init(tiny_init);
module_exit(tiny_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("%(version)s");
MODULE_DESCRIPTION("bee test: stands in for nvidia-uvm.ko");
"""
KERNEL_MAKEFILE = """\
KERNEL_UNAME ?= $(shell uname -r)
modules:
\t$(MAKE) -C /lib/modules/$(KERNEL_UNAME)/build M=$(CURDIR) modules
"""
LIBRARY_C = r"""
const char bee_driver_version[] = "%(version)s";
int bee_library_version(void) { return 9; }
"""
# Behaves like nvidia-smi where it matters here: exit 12 when NVML cannot be loaded.
SMI_C = r"""
#include <dlfcn.h>
#include <stdio.h>
static const char version[] = "NVIDIA-SMI version : %(version)s";
int main(void) {
    if (!dlopen("libnvidia-ml.so.1", RTLD_NOW)) {
        puts("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system.");
        return 12;
    }
    puts("No devices were found");
    return version[0] == 'N' ? 6 : 0;
}
"""
MODPROBE_C = r"""
#include <stdio.h>
int main(void) { puts("nvidia-modprobe: version %(version)s"); return 0; }
"""


def _gcc(args: list[str], source: str, out: Path) -> None:
    subprocess.run(
        ["gcc", "-x", "c", "-o", str(out), *args, "-"],
        input=(source % {"version": VERSION}).encode(),
        check=True,
        capture_output=True,
    )


def _installer(tmp: Path) -> Path:
    tree = tmp / "src" / f"NVIDIA-Linux-x86_64-{VERSION}"
    kernel = tree / "kernel"
    kernel.mkdir(parents=True)
    (kernel / "Makefile").write_text(KERNEL_MAKEFILE)
    (kernel / "Kbuild").write_text("obj-m := nvidia.o nvidia-uvm.o\n")
    (kernel / "nvidia.c").write_text(NVIDIA_C % {"version": VERSION})
    (kernel / "nvidia-uvm.c").write_text(NVIDIA_UVM_C % {"version": VERSION})
    for stem in ("libnvidia-ml.so", "libcuda.so"):
        soname = f"{stem}.1"
        _gcc(["-shared", "-fPIC", f"-Wl,-soname,{soname}"], LIBRARY_C, tree / f"{stem}.{VERSION}")
    _gcc(["-ldl"], SMI_C, tree / "nvidia-smi")
    _gcc([], MODPROBE_C, tree / "nvidia-modprobe")
    (tree / "firmware").mkdir()
    (tree / "firmware" / "gsp_tu10x.bin").write_bytes(b"bee test firmware " + VERSION.encode())
    (tree / "supported-gpus").mkdir()
    (tree / "supported-gpus" / "supported-gpus.json").write_text(
        json.dumps({"chips": [{"devid": "0x2335", "name": "H200", "features": ["kernelopen"]}]})
    )
    (tree / "nvidia-installer").write_text("#!/bin/sh\necho 'not run by -x'\nexit 1\n")
    (tree / "nvidia-installer").chmod(0o755)

    header = STOCK_HEADER.read_text()
    marker = "\t--noexec)\n"
    assert marker in header, "makeself header layout changed"
    header = header.replace(
        marker, '    -x | --extract-only)\n\tkeep=y\n\tscript=""\n\tshift\n\t;;\n' + marker, 1
    )
    (tmp / "header.sh").write_text(header)
    serve = tmp / "serve"
    serve.mkdir()
    run = serve / f"NVIDIA-Linux-x86_64-{VERSION}.run"
    subprocess.run(
        [
            "makeself",
            "--header",
            str(tmp / "header.sh"),
            "--nox11",
            str(tree),
            str(run),
            "bee test installer",
            "./nvidia-installer",
        ],
        check=True,
        capture_output=True,
    )
    return run


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def installer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _installer(tmp_path_factory.mktemp("installer"))


@pytest.fixture
def server(installer: Path) -> Iterator[_Server]:
    srv = _Server(installer.parent)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _versions(tmp: Path, url: str, sha256: str) -> Path:
    path = tmp / "VERSIONS"
    path.write_text(
        f"DEBIAN_RELEASE={HOST_RELEASE}\n"
        f"DEBIAN_KERNEL_ABI={ABI}\n"
        "DEBIAN_MIRROR=http://127.0.0.1:9/debian\n"
        "DEBIAN_SECURITY_MIRROR=http://127.0.0.1:9/debian-security\n"
        "NVIDIA_SOURCE=run\n"
        f"NVIDIA_DRIVER_VERSION={VERSION}\n"
        "NVIDIA_FLAVOUR=proprietary\n"
        f"NVIDIA_RUN_URL={url}\n"
        f"NVIDIA_RUN_SHA256={sha256}\n"
    )
    return path


def test_run_installer_downloaded_verified_extracted_built_and_cached(
    tmp_path: Path, installer: Path, server: _Server
) -> None:
    digest = hashlib.sha256(installer.read_bytes()).hexdigest()
    versions_file = _versions(tmp_path, server.url(installer.name), digest)
    versions = parse_versions(versions_file.read_text(), versions_file)
    dist = tmp_path / "dist"
    lines: list[str] = []

    build = ensure_nvidia(versions, dist, lines.append, jobs=2)
    log = Runner(dist / "logs" / "nvidia.log")
    assert not build.cache_hit
    assert server.requests == [f"/{installer.name}"]
    assert (dist / installer.name).is_file()  # the installer itself is cached in dist/
    assert any(line.startswith("nvidia proprietary: make modules") for line in lines)

    entry = dist / f"nvidia-{VERSION}-{ABI}-proprietary"
    assert build.path == entry
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["modules"] == ["nvidia.ko", "nvidia-uvm.ko"]
    assert manifest["module_names"] == {"nvidia.ko": "nvidia", "nvidia-uvm.ko": "nvidia_uvm"}
    assert manifest["depends"] == {"nvidia.ko": [], "nvidia-uvm.ko": ["nvidia"]}
    assert manifest["external_depends"] == []
    for magic in manifest["vermagic"].values():
        assert magic.split()[0] == ABI
    assert manifest["source"] == "run"
    assert manifest["source_detail"]["run_sha256"] == digest
    assert manifest["libraries"] == {
        "libnvidia-ml.so.1": f"libnvidia-ml.so.{VERSION}",
        "libcuda.so.1": f"libcuda.so.{VERSION}",
    }
    assert manifest["firmware"] == [f"firmware/nvidia/{VERSION}/gsp_tu10x.bin"]
    assert manifest["binaries"] == ["bin/nvidia-smi", "bin/nvidia-modprobe"]
    assert manifest["nvidia_smi_on_build_host"] == "exit 6: No devices were found"
    assert "nvidia-persistenced" in manifest["skipped"]
    assert manifest["supported_gpus"]["chips"] == 1
    assert (entry / "supported-gpus.json").is_file()
    for module in build.module_paths:
        vermagic = subprocess.run(
            ["modinfo", "-F", "vermagic", str(module)], capture_output=True, text=True, check=True
        ).stdout
        assert vermagic.startswith(ABI + " ")

    # The checks refuse modules built for another kernel or driver version.
    other_abi = f"9.9.9-1-{ABI.rpartition('-')[2]}"
    with pytest.raises(NvidiaError, match=f"does not start with the pinned {re.escape(other_abi)}"):
        kbuild.check_modules(build.module_paths, kernel_abi=other_abi, version=VERSION, log=log)
    with pytest.raises(NvidiaError, match=r"module version 9\.9\.9 is not the pinned 9\.9\.10"):
        kbuild.check_modules(build.module_paths, kernel_abi=ABI, version="9.9.10", log=log)

    # Same inputs: reused in place, nothing downloaded, nothing built.
    lines.clear()
    again = ensure_nvidia(versions, dist, lines.append)
    assert again.cache_hit
    assert server.requests == [f"/{installer.name}"]
    assert len(lines) == 1
    assert lines[0].startswith("nvidia proprietary: cache (")
    assert ": hit " in lines[0]

    # Entry gone, installer still in dist/: rebuilt without downloading anything.
    shutil.rmtree(entry)
    rebuilt = ensure_nvidia(versions, dist, lines.append, jobs=2)
    assert not rebuilt.cache_hit
    assert server.requests == [f"/{installer.name}"]
    assert any("sha256 ok (cached)" in line for line in lines)


def test_run_installer_with_wrong_digest_is_refused_and_not_kept(
    tmp_path: Path, installer: Path, server: _Server, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = "ab" * 32
    versions_file = _versions(tmp_path, server.url(installer.name), pinned)
    dist = tmp_path / "dist"
    code = main(["--versions", str(versions_file), "--dist", str(dist)])
    err = capsys.readouterr().err
    assert code == 1
    actual = hashlib.sha256(installer.read_bytes()).hexdigest()
    assert pinned in err
    assert actual in err
    assert "Traceback" not in err
    assert not list(dist.glob("*.run*"))
    assert not list(dist.glob("nvidia-*"))
