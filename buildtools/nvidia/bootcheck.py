"""Boot the pinned Debian kernel in QEMU and load the cached NVIDIA modules into it.

    python3 -m buildtools.nvidia.bootcheck [--dist DIR] [--timeout SECONDS]

A check of the NVIDIA cache entry against the real kernel, before (and apart from) the ISO:
`vermagic` only says which kernel a module was built for; whether every kernel symbol it uses
resolves with the right CRC (CONFIG_MODVERSIONS) is only known when the kernel loads it.

It fetches `linux-image-<ABI>` and `busybox-static` with the private apt configuration (cached
in dist/nvidia-bootcheck/), builds an initramfs holding busybox, the in-tree modules the NVIDIA
modules depend on (resolved with `depmod -b` over the kernel package), the NVIDIA modules, and
nvidia-smi with libnvidia-ml.so.1 in /usr/lib and the host's glibc (bookworm's, as in the image),
then boots it with `qemu-system-x86_64 -accel tcg -cpu max` and reads the serial console.

QEMU has no NVIDIA GPU, so the expected outcome is:
- each in-tree dependency loads;
- `insmod nvidia.ko` is accepted by the module loader and then fails in its init with
  "No such device" (NVRM: No NVIDIA GPU found);
- the other NVIDIA modules fail only on symbols that nvidia.ko would export (never on a kernel
  symbol: those are looked up in the kernel's Module.symvers); nvidia-peermem, built against a
  stock kernel without InfiniBand peer memory, refuses to load (EINVAL) and is not judged;
- no "disagrees about version of symbol", "version magic" or "Invalid module format";
- nvidia-smi finds libnvidia-ml.so.1 and reports that it cannot talk to the driver (exit 9),
  not that the library is missing (exit 12).
The serial log and a JSON report are written to dist/nvidia-bootcheck/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildtools import hosttools, initramfs
from buildtools.hosttools import HostToolsError
from buildtools.nvidia.build import FLAVOURS, ensure_nvidia, pinned_flavours
from buildtools.nvidia.buildroot import kernel_build_root
from buildtools.nvidia.cache import NvidiaBuild
from buildtools.nvidia.kbuild import headers_dir
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.versions import REPO_ROOT, Versions, VersionsError, load_versions
from buildtools.runner import CommandError, Runner, interrupt_on_signals

MARK = "BEE-CHECK"
BUSYBOX_APPLETS = ("sh", "mount", "insmod", "cat", "echo", "dmesg", "head", "grep", "poweroff")
FATAL_PATTERNS = ("disagrees about version of symbol", "version magic", "Invalid module format")
SMI_NO_DRIVER = 9
SMI_NO_DEVICE = 6


@dataclass(slots=True)
class BootResult:
    kernel: str = ""
    deps: dict[str, str] = field(default_factory=dict)
    insmod: dict[str, tuple[int, str]] = field(default_factory=dict)
    dmesg: list[str] = field(default_factory=list)
    smi: tuple[int, str] | None = None
    done: bool = False


def parse_serial(text: str) -> BootResult:
    """The BEE-CHECK lines the initramfs prints, e.g. `BEE-CHECK insmod nvidia.ko rc=1 ...`."""
    result = BootResult()
    for raw in text.splitlines():
        _before, marker, line = raw.partition(MARK + " ")
        if not marker:
            continue
        kind, _sep, rest = line.strip().partition(" ")
        if kind == "uname":
            result.kernel = rest.strip()
        elif kind in ("dep-ok", "dep-fail"):
            result.deps[rest.strip()] = kind
        elif kind in ("insmod", "smi"):
            name = ""
            if kind == "insmod":
                name, _sep, rest = rest.partition(" ")
            code_text, _sep, message = rest.partition(" ")
            digits = code_text.removeprefix("rc=")
            # `rc=19`; anything else (a cut line, `rc=²`) is no exit code, never a crash.
            known = code_text.startswith("rc=") and digits.isascii() and digits.isdigit()
            code = int(digits) if known else -1
            if kind == "insmod":
                result.insmod[name] = (code, message.strip())
            else:
                result.smi = (code, message.strip())
        elif kind == "dmesg":
            result.dmesg.append(rest.strip())
        elif kind == "done":
            result.done = True
    return result


def unknown_symbols(dmesg: list[str]) -> set[str]:
    """Symbols from `nvidia_uvm: Unknown symbol nvUvmInterfaceRegisterGpu (err -2)` lines."""
    found = set()
    for line in dmesg:
        match = re.search(r"Unknown symbol (\S+)", line)
        if match:
            found.add(match.group(1))
    return found


def kernel_symbols(kernel_abi: str, headers: Path | None = None) -> set[str]:
    """Exported symbols of the kernel and its in-tree modules (Module.symvers: crc, name, ...)."""
    path = (headers or headers_dir(kernel_abi)) / "Module.symvers"
    symbols = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            symbols.add(parts[1])
    return symbols


def judge(
    result: BootResult, modules: list[str], kernel_abi: str, kernel_exports: set[str]
) -> list[str]:
    """Problems found in a boot's results (empty: the modules fit the kernel)."""
    problems = []
    if not result.done:
        problems.append("the initramfs did not finish (see the serial log)")
    if result.kernel != kernel_abi:
        problems.append(f"booted {result.kernel!r}, not {kernel_abi}")
    for dep, state in result.deps.items():
        if state != "dep-ok":
            problems.append(f"in-tree dependency {dep} did not load")
    for line in result.dmesg:
        for pattern in FATAL_PATTERNS:
            if pattern in line:
                problems.append(f"kernel refused a module: {line}")
    nvidia = result.insmod.get("nvidia.ko")
    nvidia_no_gpu = any("No NVIDIA GPU found" in line for line in result.dmesg)
    if nvidia is None:
        problems.append("nvidia.ko was not tried")
    elif nvidia[0] != 0 and not ("No such device" in nvidia[1] and nvidia_no_gpu):
        problems.append(f"insmod nvidia.ko: {nvidia[1] or nvidia[0]}")
    wrong = sorted(unknown_symbols(result.dmesg) & kernel_exports)
    if wrong:
        problems.append(f"kernel symbols did not resolve: {', '.join(wrong[:5])}")
    if result.smi is None:
        problems.append("nvidia-smi was not run")
    elif result.smi[0] not in (SMI_NO_DRIVER, SMI_NO_DEVICE, 0):
        problems.append(f"nvidia-smi exit {result.smi[0]}: {result.smi[1]}")
    for name in modules:
        if name not in result.insmod:
            problems.append(f"{name} was not tried")
    return problems


# -- building the initramfs ----------------------------------------------------------------


INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "{mark} uname $(cat /proc/sys/kernel/osrelease)"
for m in {deps}; do
  if insmod /deps/$m 2>/dev/null; then echo "{mark} dep-ok $m"; else echo "{mark} dep-fail $m"; fi
done
for m in {modules}; do
  out=$(insmod /nvidia/$m 2>&1)
  echo "{mark} insmod $m rc=$? $out"
done
dmesg | grep -E "NVRM|nvidia|Unknown symbol|disagrees|version magic|Invalid module" \\
  | while read -r line; do echo "{mark} dmesg $line"; done
/usr/local/bin/nvidia-smi > /smi.out 2>&1
echo "{mark} smi rc=$? $(grep -v '^$' /smi.out | head -n 1)"
echo "{mark} done"
poweroff -f
"""


def build_initramfs(
    *,
    build: NvidiaBuild,
    kernel_root: Path,
    kernel_abi: str,
    busybox: Path,
    dest: Path,
    log: Runner,
) -> Path:
    tree = dest.parent / "initramfs"
    shutil.rmtree(tree, ignore_errors=True)
    dirs = ("proc", "sys", "dev", "deps", "nvidia", "usr/lib", "usr/local/bin")
    initramfs.busybox_tree(tree, busybox, BUSYBOX_APPLETS, dirs)

    # Debian 13's package has usr/lib/modules/ only (merged /usr); depmod -b looks in lib/.
    if not (kernel_root / "lib").exists() and (kernel_root / "usr/lib").is_dir():
        (kernel_root / "lib").symlink_to("usr/lib")
    log.run(["depmod", "-b", kernel_root, kernel_abi], timeout_s=120)
    moddir = kernel_root / "lib/modules" / kernel_abi
    deps = initramfs.parse_modules_dep((moddir / "modules.dep").read_text())
    try:
        dep_paths = initramfs.load_order(build.manifest["external_depends"], deps)
    except KeyError as exc:
        raise NvidiaError(f"in-tree module {exc.args[0]} is not in the kernel package") from None
    dep_names = [initramfs.copy_module(moddir / rel, tree / "deps") for rel in dep_paths]
    for module in build.module_paths:
        shutil.copy2(module, tree / "nvidia" / module.name)
    shutil.copy2(build.path / "bin/nvidia-smi", tree / "usr/local/bin/nvidia-smi")
    for lib in (build.path / "lib").iterdir():
        if lib.is_symlink():
            (tree / "usr/lib" / lib.name).symlink_to(os.readlink(lib))
        else:
            shutil.copy2(lib, tree / "usr/lib" / lib.name)
    # glibc from this (bookworm) host, at the paths ldd resolves them to.
    env = {"LD_LIBRARY_PATH": str(build.path / "lib")}
    host_libs = set()
    for binary in (build.path / "bin/nvidia-smi", build.path / "lib/libnvidia-ml.so.1"):
        output = log.run(["ldd", binary], env=env, timeout_s=60).output
        host_libs |= {p for p in initramfs.ldd_paths(output) if not p.is_relative_to(build.path)}
    for lib in sorted(host_libs):
        initramfs.copy_host_file(tree, lib)
    script = INIT.format(
        mark=MARK, deps=" ".join(dep_names), modules=" ".join(build.manifest["modules"])
    )
    initramfs.write_init(tree, script)
    dest.write_bytes(gzip.compress(initramfs.newc_archive(tree), compresslevel=1))
    shutil.rmtree(tree, ignore_errors=True)
    return dest


def run_qemu(kernel: Path, initrd: Path, serial_log: Path, log: Runner, timeout_s: int) -> str:
    serial_log.unlink(missing_ok=True)
    log.run(
        [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "1",
            "-kernel",
            kernel,
            "-initrd",
            initrd,
            "-append",
            "console=ttyS0 panic=-1 loglevel=4",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{serial_log}",
            "-no-reboot",
        ],
        timeout_s=timeout_s,
    )
    return serial_log.read_text(encoding="utf-8", errors="replace")


def bootcheck(
    dist_dir: Path, say: Any = print, timeout_s: int = 600, flavour: str | None = None
) -> list[dict[str, Any]]:
    """Boot the pinned kernel once per shipped flavour (or the one asked for); one report each."""
    versions = load_versions()
    dist_dir = Path(dist_dir).resolve()
    flavours = [flavour] if flavour else list(pinned_flavours(versions))
    with Runner(dist_dir / "logs" / "nvidia-bootcheck.log", say=say) as log:
        hosttools.ensure("nvidia_bootcheck", log)
        return [_bootcheck(versions, dist_dir, one, log, timeout_s) for one in flavours]


def _bootcheck(
    versions: Versions, dist_dir: Path, flavour: str, log: Runner, timeout_s: int
) -> dict[str, Any]:
    abi = versions.kernel_abi
    work = dist_dir / "nvidia-bootcheck"
    tag = f"nvidia-bootcheck {flavour}"
    build = ensure_nvidia(versions, dist_dir, log.say, flavour=flavour)
    out = work / flavour
    out.mkdir(parents=True, exist_ok=True)
    with log.step(f"{tag}: kernel and busybox packages") as notes:
        repo = AptRepo.from_versions(versions, dist_dir, runner=log)
        debs_dir = work / "debs"
        wanted = {f"linux-image-{abi}": None, "busybox-static": None}
        for name in wanted:
            found = sorted(debs_dir.glob(f"{name}_*.deb"))
            if not found:
                repo.ensure_updated()
                found = repo.download([name], debs_dir)
            wanted[name] = found[-1]
        kernel_root = work / "kernel"
        shutil.rmtree(kernel_root, ignore_errors=True)
        log.run(["dpkg-deb", "-x", wanted[f"linux-image-{abi}"], kernel_root], timeout_s=600)
        bb_root = work / "busybox"
        shutil.rmtree(bb_root, ignore_errors=True)
        log.run(["dpkg-deb", "-x", wanted["busybox-static"], bb_root], timeout_s=600)
        where = kernel_build_root(
            release=versions["DEBIAN_RELEASE"],
            kernel_abi=abi,
            repo=repo,
            dist_dir=dist_dir,
            log=log,
        )
        notes.append(", ".join(path.name for path in wanted.values() if path))
    with log.step(f"{tag}: initramfs") as notes:
        initrd = build_initramfs(
            build=build,
            kernel_root=kernel_root,
            kernel_abi=abi,
            # bin/ in Debian 12's package, usr/bin/ in Debian 13's (merged /usr).
            busybox=next(
                (p for p in (bb_root / "bin/busybox", bb_root / "usr/bin/busybox") if p.is_file()),
                bb_root / "bin/busybox",
            ),
            dest=out / "initrd.gz",
            log=log,
        )
        notes.append(f"{initrd} ({initrd.stat().st_size >> 20} MiB)")
    with log.step(f"{tag}: boot (qemu, tcg)") as notes:
        serial = run_qemu(
            kernel_root / "boot" / f"vmlinuz-{abi}", initrd, out / "serial.log", log, timeout_s
        )
        boot = parse_serial(serial)
        notes.append(f"booted {boot.kernel or '?'}")
    shutil.rmtree(kernel_root, ignore_errors=True)
    initrd.unlink(missing_ok=True)
    symbols = kernel_symbols(abi, where.path(headers_dir(abi)))
    problems = judge(boot, build.manifest["modules"], abi, symbols)
    report = {
        "kernel_abi": abi,
        "flavour": flavour,
        "booted_kernel": boot.kernel,
        "entry": str(build.path),
        "in_tree_dependencies": boot.deps,
        "insmod": {name: {"rc": rc, "message": msg} for name, (rc, msg) in boot.insmod.items()},
        "dmesg": boot.dmesg,
        "nvidia_smi": {"rc": boot.smi[0], "first_line": boot.smi[1]} if boot.smi else None,
        "unknown_symbols": sorted(unknown_symbols(boot.dmesg)),
        "problems": problems,
        "serial_log": str(out / "serial.log"),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m buildtools.nvidia.bootcheck",
        description="Boot the pinned kernel in QEMU and load the cached NVIDIA modules into it.",
    )
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--timeout", type=int, default=600, help="QEMU time limit (seconds)")
    parser.add_argument("--flavour", choices=FLAVOURS, help="check only this flavour")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    try:
        reports = bootcheck(args.dist, timeout_s=args.timeout, flavour=args.flavour)
    except (NvidiaError, AptError, VersionsError, CommandError, HostToolsError, OSError) as exc:
        print(f"nvidia-bootcheck: error: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        name = f"nvidia-bootcheck {report['flavour']}"
        for module, outcome in report["insmod"].items():
            print(f"{name}: insmod {module}: rc={outcome['rc']} {outcome['message']}")
        if report["nvidia_smi"]:
            smi = report["nvidia_smi"]
            print(f"{name}: nvidia-smi: exit {smi['rc']}: {smi['first_line']}")
        for problem in report["problems"]:
            print(f"{name}: FAIL: {problem}", file=sys.stderr)
        verdict = "FAIL" if report["problems"] else "ok"
        print(f"{name}: {verdict}; report {Path(report['serial_log']).parent / 'report.json'}")
    return 1 if any(report["problems"] for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
