"""Build (or reuse) the NVIDIA kernel modules and user space for the image's pinned kernel.

    python3 -m buildtools.nvidia.build [--source debian|run] [--run-file PATH] [--dist DIR]
    nox -s nvidia_modules -- [same options]

Step 6 of the image build. Reads NVIDIA_DRIVER_VERSION, NVIDIA_FLAVOUR, NVIDIA_SOURCE,
NVIDIA_RUN_URL, NVIDIA_RUN_SHA256 and DEBIAN_KERNEL_ABI from iso/builder/VERSIONS, and leaves
`dist/nvidia-<version>-<kver>/` (layout in buildtools/nvidia/cache.py). A second run with the
same inputs verifies the entry's sha256s and reuses it without network. One progress line per
step; every command's output goes to dist/logs/nvidia.log, printed on failure.

The ISO builder calls `ensure_nvidia(versions, dist_dir, log)`; the result is path-like (the
cache directory) and carries the manifest.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buildtools import hosttools
from buildtools.hosttools import HostToolsError
from buildtools.nvidia import kbuild, sources
from buildtools.nvidia.buildroot import KernelBuildRoot, kernel_build_root
from buildtools.nvidia.cache import NvidiaBuild, build_entry, cache_dir, load_entry, pid_alive
from buildtools.nvidia.signing import SigningKey, ensure_signed
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.versions import REPO_ROOT, Versions, VersionsError, load_versions
from buildtools.runner import CommandError, Runner, interrupt_on_signals

SOURCES = ("debian", "run")
FLAVOURS = ("proprietary", "open")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

__all__ = ["DriverPins", "NvidiaBuild", "NvidiaError", "ensure_nvidia", "main"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverPins:
    """What VERSIONS (and the command line) ask for, checked before any long step."""

    version: str
    flavour: str
    source: str
    kernel_abi: str
    run_url: str = ""
    run_sha256: str = ""
    run_file: Path | None = None

    @classmethod
    def from_versions(
        cls,
        versions: Versions,
        *,
        flavour: str | None = None,
        source: str | None = None,
        run_file: Path | None = None,
    ) -> DriverPins:
        pins = cls(
            version=versions["NVIDIA_DRIVER_VERSION"],
            flavour=flavour or pinned_flavours(versions)[0],
            source=source or versions.get("NVIDIA_SOURCE", "debian"),
            kernel_abi=versions.kernel_abi,
            run_url=versions.get("NVIDIA_RUN_URL"),
            run_sha256=versions.get("NVIDIA_RUN_SHA256").lower(),
            run_file=run_file,
        )
        pins.check()
        return pins

    def check(self) -> None:
        if not _VERSION.match(self.version):
            raise NvidiaError(f"NVIDIA_DRIVER_VERSION {self.version!r} is not like 535.309.01")
        if self.flavour not in FLAVOURS:
            raise NvidiaError(f"NVIDIA_FLAVOUR {self.flavour!r} is not one of {FLAVOURS}")
        if self.source not in SOURCES:
            raise NvidiaError(f"NVIDIA_SOURCE {self.source!r} is not one of {SOURCES}")
        kbuild.check_abi(self.kernel_abi)
        if self.run_file is not None and self.source != "run":
            raise NvidiaError("--run-file needs --source run (or NVIDIA_SOURCE=run)")
        if self.source == "run" and self.run_sha256 and not _SHA256.match(self.run_sha256):
            raise NvidiaError(f"NVIDIA_RUN_SHA256 {self.run_sha256!r} is not a sha256 digest")

    def cache_inputs(self) -> dict[str, Any]:
        """What decides the cache entry's content; any change means a rebuild."""
        inputs: dict[str, Any] = {
            "version": self.version,
            "flavour": self.flavour,
            "kernel_abi": self.kernel_abi,
            "source": self.source,
        }
        if self.source == "run":
            inputs["run_sha256"] = self.run_sha256
        return inputs


SayFn = Callable[[str], None]


def pinned_flavours(versions: Versions) -> tuple[str, ...]:
    """NVIDIA_FLAVOURS ("open proprietary": both are built and shipped, bee-nvidia picks one per
    machine at boot), or the older single NVIDIA_FLAVOUR."""
    pinned = versions.get("NVIDIA_FLAVOURS") or versions.get("NVIDIA_FLAVOUR")
    words = tuple(pinned.split())
    if not words:
        raise NvidiaError("NVIDIA_FLAVOURS is not set in VERSIONS (open, proprietary or both)")
    for word in words:
        if word not in FLAVOURS or words.count(word) > 1:
            raise NvidiaError(
                f"NVIDIA_FLAVOURS {' '.join(words)!r}: each of {FLAVOURS} at most once"
            )
    return words


def ensure_nvidia_flavours(
    versions: Versions, dist_dir: Path, log: SayFn = print, **options: Any
) -> list[NvidiaBuild]:
    """One cache entry per pinned flavour (they share the downloads and the build root)."""
    return [
        ensure_nvidia(versions, dist_dir, log, flavour=flavour, **options)
        for flavour in pinned_flavours(versions)
    ]


def ensure_nvidia(
    versions: Versions,
    dist_dir: Path,
    log: SayFn = print,
    *,
    flavour: str | None = None,
    source: str | None = None,
    run_file: Path | None = None,
    log_file: Path | None = None,
    jobs: int | None = None,
    signing_key: SigningKey | None = None,
) -> NvidiaBuild:
    """The cache entry for the pinned driver and kernel, one flavour (default: the first
    pinned): reused if valid, else built. With `signing_key`, the entry of the same modules
    signed with it (buildtools/nvidia/signing.py), reused or signed from the unsigned one.

    `log` gets one progress line per step. Raises NvidiaError, AptError or CommandError with a
    one-line message; command output is in `log_file` (default dist/logs/nvidia.log).
    """
    dist_dir = Path(dist_dir).resolve()
    pins = DriverPins.from_versions(versions, flavour=flavour, source=source, run_file=run_file)
    with Runner(log_file or dist_dir / "logs" / "nvidia.log", say=log) as runner:
        runner.write(f"\n=== {datetime.now(UTC).isoformat()} ensure_nvidia {pins}\n")
        entry = _ensure(pins, versions, dist_dir, runner, jobs)
        if signing_key is None:
            return entry
        with runner.step(f"nvidia {pins.flavour}: sign modules") as notes:
            signed = ensure_signed(
                entry,
                signing_key,
                kernel_abi=pins.kernel_abi,
                where=lambda: _build_root(pins, versions, dist_dir, runner),
                log=runner,
            )
            notes.append(
                f"{'hit' if signed.cache_hit else 'signed'} {signed.path.name}: "
                f"{signing_key.origin} key {signing_key.subject}, cert sha256 "
                f"{signing_key.sha256[:16]}..."
            )
        return signed


def _build_root(
    pins: DriverPins, versions: Versions, dist_dir: Path, runner: Runner
) -> KernelBuildRoot:
    """Where the kernel's tools run: the host of the image's release, or its build root."""
    return kernel_build_root(
        release=versions["DEBIAN_RELEASE"],
        kernel_abi=pins.kernel_abi,
        repo=AptRepo.from_versions(versions, dist_dir, runner=runner),
        dist_dir=dist_dir,
        log=runner,
    )


def _ensure(
    pins: DriverPins, versions: Versions, dist_dir: Path, runner: Runner, jobs: int | None
) -> NvidiaBuild:
    final = cache_dir(dist_dir, pins.version, pins.kernel_abi, pins.flavour)
    inputs = pins.cache_inputs()
    tag = f"nvidia {pins.flavour}"  # two flavours are built in one run: say which

    with runner.step(f"{tag}: cache") as notes:
        entry, why = load_entry(final, inputs)
        notes.append(f"hit {final}" if entry else f"miss: {why}")
    if entry is not None:
        return entry

    started = time.monotonic()
    # A miss builds: the tools it needs are checked (and installed) before anything long.
    hosttools.ensure("nvidia_modules", runner)
    repo = AptRepo.from_versions(versions, dist_dir, runner=runner)
    if pins.source == "run":
        with runner.step(f"{tag}: fetch installer") as notes:
            run_path, cached = sources.fetch_run(
                url=pins.run_url,
                sha256=pins.run_sha256,
                version=pins.version,
                dist_dir=dist_dir,
                local_file=pins.run_file,
            )
            notes.append(f"{run_path.name} sha256 ok" + (" (cached)" if cached else ""))
    with runner.step(f"{tag}: kernel headers") as notes:
        kbuild.check_headers_on_mirror(pins.kernel_abi, repo)
        where = kernel_build_root(
            release=versions["DEBIAN_RELEASE"],
            kernel_abi=pins.kernel_abi,
            repo=repo,
            dist_dir=dist_dir,
            log=runner,
        )
        notes.append(kbuild.ensure_headers(pins.kernel_abi, repo, where))
        compiler = kbuild.kernel_compiler(pins.kernel_abi, where)

    with work_dir(dist_dir) as work:
        with runner.step(f"{tag}: driver source ({pins.source})") as notes:
            if pins.source == "run":
                tree = sources.extract_run(
                    run_path,
                    version=pins.version,
                    flavour=pins.flavour,
                    work=work,
                    log=runner,
                )
                notes.append(f"extracted {tree.root.name}")
            else:
                tree = sources.fetch_debian(
                    repo,
                    version=pins.version,
                    flavour=pins.flavour,
                    debs_dir=dist_dir / "nvidia-debs",
                    work=work,
                    log=runner,
                )
                notes.append(f"{len(tree.origin['packages'])} packages at {pins.version}")

            fixes = kbuild.fit_source_to_kernel(tree.kernel_src, pins.kernel_abi, where)
            if fixes:
                notes.append(f"{len(fixes)} source fix(es) for this kernel")

        def fill(entry_dir: Path) -> dict[str, Any]:
            with runner.step(f"{tag}: make modules ({pins.flavour}, {compiler})") as notes:
                built = kbuild.build_modules(
                    tree.kernel_src, pins.kernel_abi, compiler, runner, jobs=jobs, where=where
                )
                notes.append(", ".join(module.name for module in built))
            with runner.step(f"{tag}: check modules") as notes:
                (entry_dir / "modules").mkdir()
                shipped = []
                for module in built:
                    shutil.copyfile(module, entry_dir / "modules" / module.name)
                    shipped.append(entry_dir / "modules" / module.name)
                kbuild.strip_debug(shipped, runner)
                module_fields = kbuild.check_modules(
                    shipped, kernel_abi=pins.kernel_abi, version=pins.version, log=runner
                )
                notes.append(f"vermagic {pins.kernel_abi}, version {pins.version}: ok")
            with runner.step(f"{tag}: user space") as notes:
                user_fields = kbuild.assemble_user_space(tree, entry_dir, pins.version)
                smi = kbuild.check_user_space(entry_dir, runner)
                notes.append(f"nvidia-smi here: {smi}")
            return {
                "version": pins.version,
                "flavour": pins.flavour,
                "kernel_abi": pins.kernel_abi,
                "source": pins.source,
                "source_detail": tree.origin,
                "compiler": compiler,
                "source_fixes": fixes,
                "built_in": str(where.root) if where.root else "host",
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_seconds": round(time.monotonic() - started, 1),
                "nvidia_smi_on_build_host": smi,
                **module_fields,
                **user_fields,
            }

        with runner.step(f"{tag}: cache entry") as notes:
            entry = build_entry(final, inputs, fill)
            notes.append(f"{final} ({_size_mib(final):.0f} MiB)")
    return entry


@contextmanager
def work_dir(dist_dir: Path) -> Iterator[Path]:
    """dist/.nvidia-work-<pid>/, removed afterwards; ones left by killed builds are removed too."""
    for stale in dist_dir.glob(".nvidia-work-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    work = dist_dir / f".nvidia-work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _size_mib(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / (1 << 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m buildtools.nvidia.build",
        description="Build (or reuse) the NVIDIA modules and user space for the pinned kernel.",
    )
    parser.add_argument("--source", choices=SOURCES, help="override NVIDIA_SOURCE")
    parser.add_argument(
        "--flavour", choices=FLAVOURS, help="build only this one (default: NVIDIA_FLAVOURS)"
    )
    parser.add_argument("--run-file", type=Path, help="a local .run installer (--source run)")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="output directory")
    parser.add_argument("--versions", type=Path, help="VERSIONS file (default: iso/builder/)")
    parser.add_argument("--jobs", type=int, help="make -j (default: all CPUs, under nice)")
    args = parser.parse_args(argv)
    interrupt_on_signals()  # the partial cache entry is removed on the way out, too
    log_file = args.dist.resolve() / "logs" / "nvidia.log"

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        versions = load_versions(args.versions) if args.versions else load_versions()
        flavours = [args.flavour] if args.flavour else list(pinned_flavours(versions))
        builds = [
            ensure_nvidia(
                versions,
                args.dist,
                say,
                flavour=flavour,
                source=args.source,
                run_file=args.run_file,
                log_file=log_file,
                jobs=args.jobs,
            )
            for flavour in flavours
        ]
    except (NvidiaError, AptError, VersionsError, CommandError, HostToolsError) as exc:
        print(f"nvidia: error: {exc}", file=sys.stderr)
        if log_file.exists():
            print(f"nvidia: full log: {log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nvidia: interrupted; no cache entry was written", file=sys.stderr)
        return 130
    for build in builds:
        manifest = build.manifest
        print(
            f"nvidia: {manifest['version']} {manifest['flavour']} for {manifest['kernel_abi']} "
            f"from {manifest['source']}: {build.path}" + (" (reused)" if build.cache_hit else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
