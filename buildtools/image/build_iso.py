"""Build the bee live ISO: `nox -s build_iso -- [options]` (python3 -m buildtools.image.build_iso).

Runs as root on a Debian bookworm host (or in the privileged container of
buildtools/image/container.py). Everything that can fail fast is checked first (root, host tools,
VERSIONS, the keys file, the vendor dir, the pinned kernel on the mirror); then:

  1. package the agent (dist/agent/bee.pyz; skipped when no source is newer)
  2. a fresh staging dir, dist/staging/, with iso/overlay/ copied in
  3. authorized_keys into staged /root/.ssh/ (or the password-fallback marker)
  4. the agent into the staged tree
  5. vendor binaries from iso/vendor/ (each optional)
  6. NVIDIA modules, user space and firmware (buildtools/nvidia/build.py), unless --no-nvidia
  7. staged /etc/bee-release and /etc/motd
  8. live-build in a disposable workdir, dist/lb-work/, with the staged tree as
     config/includes.chroot_after_packages/ (the package cache in dist/cache/ survives)
  9. dist/bee-<version>[-no-nvidia]-amd64.iso and its .sha256

One progress line per step with its duration; the full log is dist/build-iso.log.
iso/overlay/ and iso/builder/ are only read: the build checks they are unchanged at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from buildtools.image import staging
from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.kernel import KernelError, check_kernel, split_abi
from buildtools.pins.versions import REPO_ROOT, Versions, VersionsError, load_versions

BUILDER_DIR = REPO_ROOT / "iso" / "builder"
SOURCE_DIRS = (staging.OVERLAY_DIR, BUILDER_DIR)
# Host commands the build needs, and the Debian package that brings each.
HOST_TOOLS = {
    "lb": "live-build",
    "debootstrap": "debootstrap",
    "mksquashfs": "squashfs-tools",
    "xorriso": "xorriso",
}
SQUASHFS_TYPES = ("zstd", "xz", "gzip", "lzo", "lz4")
MIN_FREE_BYTES = 8 * 1024**3
# live-build announces each script: "[2026-11-26 00:59:56] lb chroot_apt install". The
# progress line names each stage family (bootstrap, chroot, installer, binary, source) once.
_LB_SCRIPT = re.compile(r"^\[[^\]]+\] lb (bootstrap|chroot|installer|binary|source)(?:_|\s|$)")


class BuildError(Exception):
    """The build cannot go on; the message is one line."""


# -- output ----------------------------------------------------------------------------------


class Progress:
    """One line per step on stdout; everything, commands included, in the log file."""

    def __init__(self, log_path: Path, out: IO[str] = sys.stdout) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.log = log_path.open("w", encoding="utf-8")
        self.out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self.write(text + "\n")

    def write(self, text: str) -> None:
        self.log.write(text)
        self.log.flush()

    @contextmanager
    def step(self, number: int, title: str) -> Iterator[list[str]]:
        """Times a step; the step may append a short outcome to the yielded list."""
        notes: list[str] = []
        self.write(f"\n===== step {number}: {title}\n")
        started = time.monotonic()
        yield notes
        took = time.monotonic() - started
        outcome = f": {'; '.join(notes)}" if notes else ""
        self.say(f"[{number}/9] {title} ({took:.1f}s){outcome}")

    def close(self) -> None:
        self.log.close()


def run_logged(
    argv: list[str],
    progress: Progress,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Run a command with its output into the log; BuildError with the log's path on failure."""
    progress.write(f"$ {' '.join(argv)}\n")
    full_env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive", **(env or {}))
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        raise BuildError(f"cannot run {argv[0]}: {exc.strerror}") from None
    assert proc.stdout is not None
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace")
        progress.write(line)
        tail = [*tail[-4:], line.rstrip()]
        if on_line is not None:
            on_line(line.rstrip("\n"))
    code = proc.wait()
    if code != 0:
        last = " | ".join(part for part in tail if part)[-300:]
        raise BuildError(f"{' '.join(argv[:2])} failed (exit {code}): {last}")


# -- preflight -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    versions: Versions
    authorized_keys: Path | None
    vendor_dir: Path
    vendor_dir_given: bool
    out: Path
    no_nvidia: bool
    mirror: str
    security_mirror: str
    squashfs: str
    boot_timeout: int
    keep_workdir: bool
    check_only: bool


def check_host(euid: int, debian_version: Path) -> None:
    """Root on Debian, or a one-line error that says what to do instead."""
    if euid != 0:
        raise BuildError(
            "build_iso needs root (live-build mounts and chroots): run it as root on a Debian "
            "bookworm host, or use `nox -s build_iso_container` (a privileged container)"
        )
    if not debian_version.is_file():
        raise BuildError(
            "build_iso runs on Debian bookworm; on this host use `nox -s build_iso_container`"
        )


def missing_host_packages() -> list[str]:
    # The bootloaders (isolinux, grub-efi) come from the chroot: live-build builds with it.
    return [package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None]


def install_host_packages(packages: list[str], progress: Progress) -> None:
    progress.say(f"installing build tools on this host: {' '.join(packages)}")
    run_logged(["apt-get", "-q", "update"], progress)
    run_logged(["apt-get", "-q", "-y", "--no-install-recommends", "install", *packages], progress)


def live_build_version() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "live-build"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def check_free_space(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise BuildError(
            f"{path} has {free / 1024**3:.1f} GiB free; a build needs "
            f"{MIN_FREE_BYTES / 1024**3:.0f} GiB"
        )


# -- git and release -------------------------------------------------------------------------


def git_state(repo: Path) -> tuple[str, bool]:
    """(commit, dirty) of the source tree; ("unknown", True) outside a git checkout."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown", True
    status = git("status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip(), bool(status.stdout.strip())


def agent_version(agent_dir: Path) -> str:
    """`__version__` from agent/bee/__init__.py, read as text (the builder imports no agent)."""
    init = agent_dir / "bee" / "__init__.py"
    try:
        text = init.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"cannot read {init}: {exc.strerror}") from None
    match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    if match is None:
        raise BuildError(f'{init} has no __version__ = "..." line')
    return match.group(1)


def iso_name(version: str, no_nvidia: bool) -> str:
    return f"bee-{version}{'-no-nvidia' if no_nvidia else ''}-amd64.iso"


# -- the live-build workdir ------------------------------------------------------------------


def mounts_under(path: Path, mounts_text: str) -> list[str]:
    """Mount points at or below `path` in /proc/mounts text, deepest first."""
    root = str(path.resolve())
    found = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        # /proc/mounts escapes spaces as \040.
        point = fields[1].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def remove_workdir(path: Path) -> None:
    """Unmount whatever an interrupted live-build left mounted, then delete the workdir."""
    if not path.exists():
        return
    for _attempt in range(3):
        points = mounts_under(path, Path("/proc/mounts").read_text(encoding="utf-8"))
        if not points:
            break
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if mounts_under(path, Path("/proc/mounts").read_text(encoding="utf-8")):
        raise BuildError(f"{path} still has mounts under it; unmount them and retry")
    shutil.rmtree(path)


def prepare_workdir(workdir: Path, staged: Path, cache_dir: Path) -> None:
    """iso/builder/ copied to `workdir`, the staged tree as includes.chroot_after_packages."""
    remove_workdir(workdir)
    shutil.copytree(BUILDER_DIR, workdir, symlinks=True)
    after = workdir / "config" / "includes.chroot_after_packages"
    if after.exists() or (workdir / "config" / "includes.chroot").exists():
        raise BuildError(
            "iso/builder/config/ must not carry includes.chroot*: the staged overlay goes there"
        )
    shutil.copytree(staged, after, symlinks=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (workdir / "cache").symlink_to(cache_dir.resolve())


def check_hooks(workdir: Path) -> None:
    """live-build runs chroot hooks only when normal/ and live/ both hold *.chroot files."""
    for kind in ("normal", "live"):
        if not any((workdir / "config" / "hooks" / kind).glob("*.chroot")):
            raise BuildError(f"lb config left no config/hooks/{kind}/*.chroot: hooks would not run")


def kernels_in(live_dir: Path) -> list[str]:
    """Distinct kernels in the ISO's live/: versioned names, plus any alias that is not one.

    live-build hard-links `vmlinuz` to `vmlinuz-<ABI>` when there is a single kernel.
    """
    images = sorted(live_dir.glob("vmlinuz*"))
    versioned = [path for path in images if path.name.startswith("vmlinuz-")]
    inodes = {path.stat().st_ino for path in versioned}
    aliases = [
        path for path in images if path not in versioned and path.stat().st_ino not in inodes
    ]
    return sorted(path.name for path in [*versioned, *aliases])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- the build -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="nox -s build_iso --",
        description="Build the bee live ISO into dist/ (root, Debian bookworm).",
    )
    parser.add_argument(
        "--authorized-keys",
        type=Path,
        metavar="FILE",
        help="SSH public keys for root; without it the image uses a one-time root password",
    )
    parser.add_argument(
        "--vendor-dir",
        type=Path,
        metavar="DIR",
        help=f"vendor binaries ({', '.join(staging.VENDOR_BINARIES)}); default iso/vendor/",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", metavar="DIR")
    parser.add_argument("--no-nvidia", action="store_true", help="build without NVIDIA modules")
    parser.add_argument("--mirror", metavar="URL", help="Debian mirror (default: VERSIONS)")
    parser.add_argument(
        "--security-mirror", metavar="URL", help="Debian security mirror (default: VERSIONS)"
    )
    parser.add_argument("--squashfs-compression", choices=SQUASHFS_TYPES, default="zstd")
    parser.add_argument("--boot-timeout", type=int, default=5, metavar="SECONDS")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep dist/lb-work/ after a good build"
    )
    parser.add_argument(
        "--check-only", action="store_true", help="run the checks that precede the build and stop"
    )
    args = parser.parse_args(argv)
    versions = _versions_or_exit(parser)
    if args.boot_timeout < 1:
        parser.error("--boot-timeout must be at least 1 second")
    return Options(
        versions=versions,
        authorized_keys=args.authorized_keys,
        vendor_dir=args.vendor_dir or staging.VENDOR_DIR,
        vendor_dir_given=args.vendor_dir is not None,
        out=args.out.resolve(),
        no_nvidia=args.no_nvidia,
        mirror=(args.mirror or versions["DEBIAN_MIRROR"]).rstrip("/"),
        security_mirror=(args.security_mirror or versions["DEBIAN_SECURITY_MIRROR"]).rstrip("/"),
        squashfs=args.squashfs_compression,
        boot_timeout=args.boot_timeout,
        keep_workdir=args.keep_workdir,
        check_only=args.check_only,
    )


def _versions_or_exit(parser: argparse.ArgumentParser) -> Versions:
    try:
        return load_versions()
    except VersionsError as exc:
        parser.exit(1, f"build_iso: {exc}\n")
        raise  # unreachable: parser.exit raises SystemExit


def build(options: Options, progress: Progress) -> Path:
    versions = options.versions
    abi = versions.kernel_abi
    split_abi(abi)
    dist = options.out

    # -- fail fast: everything below is checked before any long step. The operator's inputs
    # first, so a typo is reported before anything is installed or downloaded.
    keys = None
    if options.authorized_keys is not None:
        keys = staging.read_authorized_keys(options.authorized_keys)
    if options.vendor_dir_given and not options.vendor_dir.is_dir():
        raise BuildError(f"vendor dir {options.vendor_dir} does not exist")
    version = agent_version(staging.AGENT_DIR)
    check_host(os.geteuid(), Path("/etc/debian_version"))
    check_free_space(dist)
    missing = missing_host_packages()
    if missing:
        install_host_packages(missing, progress)
    repo = AptRepo(
        dist / "apt" / versions["DEBIAN_RELEASE"],
        mirror=options.mirror,
        security_mirror=options.security_mirror,
        release=versions["DEBIAN_RELEASE"],
        log=progress.write,
    )
    started = time.monotonic()
    repo.update()
    check_kernel(repo, abi)
    progress.say(
        f"checks passed ({time.monotonic() - started:.1f}s): kernel {abi} on {options.mirror}, "
        f"log {progress.log_path}"
    )
    if options.check_only:
        return dist
    source_before = {path: staging.tree_digest(path) for path in SOURCE_DIRS}

    with progress.step(1, "package the agent") as notes:
        agent = staging.package_agent(staging.AGENT_DIR, dist / "agent")
        notes.append(f"bee {version}, {'built' if agent.rebuilt else 'up to date, not rebuilt'}")

    with progress.step(2, "fresh staging dir") as notes:
        staged = staging.fresh_staging(dist / "staging")
        staging.copy_overlay(staging.OVERLAY_DIR, staged)
        notes.append(str(staged))

    with progress.step(3, "SSH access") as notes:
        access = staging.inject_authorized_keys(staged, keys)
        if keys:
            notes.append(f"{len(keys)} key(s) for root from {options.authorized_keys}")
        else:
            notes.append("NO KEYS GIVEN: password-fallback marker set")
            progress.say(
                "!!! no --authorized-keys: the image allows root SSH login with a one-time "
                "password shown on the machine's console at each boot !!!"
            )

    with progress.step(4, "agent into the image") as notes:
        staging.inject_agent(staged, agent.zipapp, staging.AGENT_DIR / "bee")
        notes.append("/usr/local/bin/bee, python3 -m bee")

    with progress.step(5, "vendor binaries") as notes:
        report = staging.inject_vendor(
            staged, options.vendor_dir, must_exist=options.vendor_dir_given
        )
        notes.append(f"found: {', '.join(report.found) or 'none'}")
        if report.missing:
            notes.append(f"absent: {', '.join(report.missing)}")
        if report.ignored:
            notes.append(f"ignored: {', '.join(report.ignored)}")

    with progress.step(6, "NVIDIA modules and user space") as notes:
        if options.no_nvidia:
            nvidia = None
            notes.append("skipped (--no-nvidia)")
        else:
            nvidia = _nvidia_payload(versions, dist, staged, progress)
            notes.append(
                f"driver {nvidia.version} ({nvidia.flavour}), modules {', '.join(nvidia.modules)}"
            )

    with progress.step(7, "release file and motd") as notes:
        commit, dirty = git_state(REPO_ROOT)
        release = staging.Release(
            bee_version=version,
            bee_git_commit=commit,
            bee_git_dirty=dirty,
            bee_build_time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            debian_release=versions["DEBIAN_RELEASE"],
            debian_kernel_abi=abi,
            nvidia_driver_version=nvidia.version if nvidia else "none",
            nvidia_flavour=nvidia.flavour if nvidia else "none",
            nvidia_source=nvidia.source if nvidia else "none",
            live_build_version=live_build_version(),
            ssh_access=access,
        )
        staging.write_release(staged, release)
        notes.append(f"{commit[:12]}{' (dirty)' if dirty else ''}")

    workdir = dist / "lb-work"
    with progress.step(8, "live-build (lb config && lb build)") as notes:
        prepare_workdir(workdir, staged, dist / "cache" / "live-build")
        env = {
            "BEE_MIRROR": options.mirror,
            "BEE_SECURITY_MIRROR": options.security_mirror,
            "BEE_SQUASHFS_COMPRESSION": options.squashfs,
            "BEE_BOOT_TIMEOUT": str(options.boot_timeout),
        }
        run_logged(["lb", "config"], progress, cwd=workdir, env=env)
        check_hooks(workdir)
        lb_started = time.monotonic()
        seen: set[str] = set()

        def on_line(line: str) -> None:
            # Stages interleave (chroot_* scripts call bootstrap_cache): name each once.
            match = _LB_SCRIPT.match(line)
            if match and match.group(1) not in seen:
                seen.add(match.group(1))
                took = time.monotonic() - lb_started
                print(f"      lb {match.group(1)} (at +{took:.0f}s)", flush=True)

        run_logged(["lb", "build"], progress, cwd=workdir, env=env, on_line=on_line)
        changed = [
            str(path.relative_to(REPO_ROOT))
            for path, digest in source_before.items()
            if staging.tree_digest(path) != digest
        ]
        if changed:
            # The build only writes under dist/; the ISO may not match the tree either way.
            raise BuildError(
                f"{', '.join(changed)} changed during the build (an edit meanwhile? the build "
                "never writes there): the ISO was not published, build again"
            )
        kernels = kernels_in(workdir / "binary" / "live")
        if kernels != [f"vmlinuz-{abi}"]:
            raise BuildError(
                f"expected exactly one kernel vmlinuz-{abi} in the ISO, found {kernels}"
            )
        notes.append(f"kernel {abi}, squashfs {options.squashfs}")

    with progress.step(9, "ISO and checksum") as notes:
        built = sorted(workdir.glob("*.iso"))
        if len(built) != 1:
            raise BuildError(f"live-build left {len(built)} ISOs in {workdir}, expected one")
        iso = dist / iso_name(version, options.no_nvidia)
        partial = iso.with_name(iso.name + ".partial")
        shutil.move(built[0], partial)
        checksum = sha256_file(partial)
        os.replace(partial, iso)
        iso.with_name(iso.name + ".sha256").write_text(f"{checksum}  {iso.name}\n")
        notes.append(f"{iso} ({iso.stat().st_size / 1024**2:.0f} MiB)")

    if not options.keep_workdir:
        remove_workdir(workdir)
    return iso


def _nvidia_payload(
    versions: Versions, dist: Path, staged: Path, progress: Progress
) -> staging.NvidiaPayload:
    # Imported here: only an NVIDIA build needs it, and a --no-nvidia build works without.
    from buildtools.nvidia import build as nvidia

    try:
        entry = nvidia.ensure_nvidia(versions, dist, lambda line: progress.say(f"      {line}"))
    except nvidia.NvidiaError as exc:
        raise BuildError(f"NVIDIA: {exc} (or build with --no-nvidia)") from None
    return staging.inject_nvidia(staged, Path(entry.path))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    # One build per dist/ at a time: two would share dist/staging and dist/lb-work.
    lock = (options.out / "build-iso.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"build_iso: another build is running in {options.out}", file=sys.stderr)
        return 1
    progress = Progress(options.out / "build-iso.log")
    started = time.monotonic()
    try:
        result = build(options, progress)
    except KeyboardInterrupt:
        progress.say(f"build_iso: interrupted; log: {progress.log_path}")
        return 130
    except (BuildError, staging.StagingError, KernelError, VersionsError, AptError) as exc:
        progress.say(f"build_iso: {exc}")
        progress.say(f"build_iso: full log: {progress.log_path}")
        return 1
    except Exception as exc:  # a bug or an unexpected error from nvidia.py: still one line
        progress.write("\n" + traceback.format_exc())
        progress.say(f"build_iso: unexpected {type(exc).__name__}: {exc}")
        progress.say(f"build_iso: full log: {progress.log_path}")
        return 1
    finally:
        progress.close()
    if not options.check_only:
        print(f"built {result} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
