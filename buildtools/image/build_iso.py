"""Build the bee live ISO: `nox -s build_iso -- [options]` (python3 -m buildtools.image.build_iso).

Runs as root on a Debian 12 or 13 host (or in the privileged container of
buildtools/image/container.py). Everything that can fail fast is checked first (root, host tools,
VERSIONS, the keys file, the vendor dir, the pinned kernel on the mirror); then:

  1. package the agent (dist/agent/bee.pyz; skipped when no source is newer)
  2. a fresh staging dir, dist/staging/, with iso/overlay/ copied in
  3. authorized_keys into staged /root/.ssh/ (or the password-fallback marker)
  4. the agent into the staged tree
  5. vendor binaries from iso/vendor/ (each optional)
  6. NVIDIA modules, user space and firmware (buildtools/nvidia/build.py), unless --no-nvidia;
     the modules signed for Secure Boot (buildtools/nvidia/signing.py) with a key made for this
     build, or the operator's (--module-signing-key KEY --module-signing-cert CERT)
  7. staged /etc/bee-release and /etc/motd
  8. live-build in a disposable workdir, dist/lb-work/, with the staged tree as
     config/includes.chroot_after_packages/ (the package cache in dist/cache/ survives)
  9. dist/bee-<version>[-no-nvidia]-amd64.iso and its .sha256, and the certificate the modules
     are signed with, dist/bee-<version>-amd64.module-signing.der and .pem (docs/secure-boot.md)

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
import sys
import time
import traceback
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from buildtools import hosttools
from buildtools.hosttools import HostToolsError
from buildtools.image import releasetools, staging
from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.kernel import KernelError, check_kernel, split_abi
from buildtools.pins.versions import REPO_ROOT, Versions, VersionsError, load_versions
from buildtools.runner import CommandError, Result, Runner, interrupt_on_signals

BUILDER_DIR = REPO_ROOT / "iso" / "builder"
SOURCE_DIRS = (staging.OVERLAY_DIR, BUILDER_DIR)
SQUASHFS_TYPES = ("zstd", "xz", "gzip", "lzo", "lz4")
MIN_FREE_BYTES = 8 * 1024**3
LB_CONFIG_TIMEOUT_S = 300
LB_BUILD_TIMEOUT_S = 3 * 3600  # about 10 min here; a slow mirror or a loaded host, not hours
# live-build announces each script: "[2026-11-26 00:59:56] lb chroot_apt install". The
# progress line names each stage family (bootstrap, chroot, installer, binary, source) once.
_LB_SCRIPT = re.compile(r"^\[[^\]]+\] lb (bootstrap|chroot|installer|binary|source)(?:_|\s|$)")


class BuildError(Exception):
    """The build cannot go on; the message is one line."""


# -- output ----------------------------------------------------------------------------------

STEPS = 9


def step(runner: Runner, number: int, title: str) -> AbstractContextManager[list[str]]:
    """`[3/9] SSH access (0.0s): 1 key(s)`: one progress line per step, from the runner."""
    return runner.step(f"[{number}/{STEPS}] {title}")


# -- preflight -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    versions: Versions
    authorized_keys: Path | None
    spec: Path | None
    upload_url: str | None
    vendor_dir: Path
    vendor_dir_given: bool
    out: Path
    cache: Path
    no_nvidia: bool
    module_signing_key: Path | None
    module_signing_cert: Path | None
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
            "12 or 13 host, or use `nox -s build_iso_container` (a privileged container)"
        )
    if not debian_version.is_file():
        raise BuildError(
            "build_iso runs on Debian (12 or 13); on this host use `nox -s build_iso_container`"
        )


def live_build_version(runner: Runner) -> str:
    argv = ["dpkg-query", "-W", "-f", "${Version}", "live-build"]
    return runner.run(argv, timeout_s=60, check=False).stdout.strip() or "unknown"


def check_free_space(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise BuildError(
            f"{path} has {free / 1024**3:.1f} GiB free; a build needs "
            f"{MIN_FREE_BYTES / 1024**3:.0f} GiB"
        )


# -- git and release -------------------------------------------------------------------------


def git_state(repo: Path, runner: Runner) -> tuple[str, bool]:
    """(commit, dirty) of the source tree; ("unknown", True) outside a git checkout."""

    def git(*args: str) -> Result:
        return runner.run(["git", "-C", str(repo), *args], timeout_s=60, check=False)

    try:
        head = git("rev-parse", "HEAD")
    except CommandError:  # no git on the host: the release file says unknown
        return "unknown", True
    if head.code != 0:
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


def remove_workdir(path: Path, runner: Runner) -> None:
    """Unmount whatever an interrupted live-build left mounted, then delete the workdir."""
    if not path.exists():
        return
    for _attempt in range(3):
        points = mounts_under(path, Path("/proc/mounts").read_text(encoding="utf-8"))
        if not points:
            break
        for point in points:
            runner.run(["umount", "-l", point], timeout_s=120, check=False)
    if mounts_under(path, Path("/proc/mounts").read_text(encoding="utf-8")):
        raise BuildError(f"{path} still has mounts under it; unmount them and retry")
    shutil.rmtree(path)


def prepare_workdir(workdir: Path, staged: Path, cache_dir: Path, runner: Runner) -> None:
    """iso/builder/ copied to `workdir`, the staged tree as includes.chroot_after_packages."""
    remove_workdir(workdir, runner)
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
        description="Build the bee live ISO into dist/ (root, a Debian 12 or 13 host).",
    )
    parser.add_argument(
        "--authorized-keys",
        type=Path,
        metavar="FILE",
        help="SSH public keys for root; without it the image uses a one-time root password",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="a hardware spec (bee spec) baked in as /etc/bee/spec.toml: the boot audit judges"
        " the machine against it and the console says ACCEPT or REJECT",
    )
    parser.add_argument(
        "--upload-url",
        metavar="URL",
        help="bake in /etc/bee/upload-url: every boot PUTs its audit there (docs/fleet.md)",
    )
    parser.add_argument(
        "--vendor-dir",
        type=Path,
        metavar="DIR",
        help=f"vendor binaries ({', '.join(staging.VENDOR_BINARIES)}); default iso/vendor/",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", metavar="DIR")
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="where the NVIDIA build, the apt lists and live-build's cache live (default: --out;"
        " vm_test points it at dist/ so every image build shares one cache)",
    )
    parser.add_argument("--no-nvidia", action="store_true", help="build without NVIDIA modules")
    parser.add_argument(
        "--module-signing-key",
        type=Path,
        metavar="KEY",
        help="private key (PEM, no passphrase) to sign the NVIDIA modules with, for Secure Boot;"
        " default: a key made for this build and deleted after signing (docs/secure-boot.md)",
    )
    parser.add_argument(
        "--module-signing-cert",
        type=Path,
        metavar="CERT",
        help="the X.509 certificate (PEM or DER) of --module-signing-key: what a fleet enrols",
    )
    parser.add_argument("--mirror", metavar="URL", help="Debian mirror (default: VERSIONS)")
    parser.add_argument(
        "--security-mirror", metavar="URL", help="Debian security mirror (default: VERSIONS)"
    )
    parser.add_argument("--squashfs-compression", choices=SQUASHFS_TYPES, default="zstd")
    parser.add_argument(
        "--boot-timeout",
        type=int,
        default=3,
        metavar="SECONDS",
        help="how long the boot menu waits before the default entry (default 3; any key stops it)",
    )
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
    if (args.module_signing_key is None) != (args.module_signing_cert is None):
        parser.error("--module-signing-key and --module-signing-cert go together")
    if args.no_nvidia and args.module_signing_key is not None:
        parser.error("--module-signing-key signs the NVIDIA modules: not with --no-nvidia")
    return Options(
        versions=versions,
        authorized_keys=args.authorized_keys,
        spec=args.spec,
        upload_url=args.upload_url,
        vendor_dir=args.vendor_dir or staging.VENDOR_DIR,
        vendor_dir_given=args.vendor_dir is not None,
        out=args.out.resolve(),
        cache=(args.cache or args.out).resolve(),
        no_nvidia=args.no_nvidia,
        module_signing_key=args.module_signing_key,
        module_signing_cert=args.module_signing_cert,
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


def build(options: Options, progress: Runner) -> Path:
    versions = options.versions
    abi = versions.kernel_abi
    split_abi(abi)
    dist = options.out

    # -- fail fast: everything below is checked before any long step. The operator's inputs
    # first, so a typo is reported before anything is installed or downloaded.
    keys = None
    if options.authorized_keys is not None:
        keys = staging.read_authorized_keys(options.authorized_keys)
    spec = staging.read_spec(options.spec) if options.spec is not None else None
    upload_url = staging.check_upload_url(options.upload_url) if options.upload_url else None
    if options.vendor_dir_given and not options.vendor_dir.is_dir():
        raise BuildError(f"vendor dir {options.vendor_dir} does not exist")
    for given in (options.module_signing_key, options.module_signing_cert):
        if given is not None and not given.is_file():
            raise BuildError(f"module signing file {given} does not exist")
    version = agent_version(staging.AGENT_DIR)
    check_host(os.geteuid(), Path("/etc/debian_version"))
    check_free_space(dist)
    hosttools.ensure("build_iso --no-nvidia" if options.no_nvidia else "build_iso", progress)
    cache = options.cache
    repo = AptRepo(
        cache / "apt" / versions["DEBIAN_RELEASE"],
        mirror=options.mirror,
        security_mirror=options.security_mirror,
        release=versions["DEBIAN_RELEASE"],
        runner=progress,
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
    tools = releasetools.ensure_release_tools(repo, cache, progress)
    progress.write(f"release tools: {tools}\n")
    source_before = {path: staging.tree_digest(path) for path in SOURCE_DIRS}

    with step(progress, 1, "package the agent") as notes:
        agent = staging.package_agent(staging.AGENT_DIR, dist / "agent")
        notes.append(f"bee {version}, {'built' if agent.rebuilt else 'up to date, not rebuilt'}")

    with step(progress, 2, "fresh staging dir") as notes:
        staged = staging.fresh_staging(dist / "staging")
        staging.copy_overlay(staging.OVERLAY_DIR, staged)
        notes.append(str(staged))

    with step(progress, 3, "SSH access") as notes:
        access = staging.inject_authorized_keys(staged, keys)
        if keys:
            notes.append(f"{len(keys)} key(s) for root from {options.authorized_keys}")
        else:
            notes.append("NO KEYS GIVEN: password-fallback marker set")
            progress.say(
                "!!! no --authorized-keys: the image allows root SSH login with a one-time "
                "password shown on the machine's console at each boot !!!"
            )

    with step(progress, 4, "agent into the image") as notes:
        staging.inject_agent(staged, agent.zipapp, staging.AGENT_DIR / "bee")
        notes.append("/usr/local/bin/bee, python3 -m bee")
        if spec is not None:
            staging.inject_spec(staged, spec)
            notes.append(f"spec {options.spec} as /{staging.SPEC_PATH}")
        if upload_url is not None:
            staging.inject_upload_url(staged, upload_url)
            notes.append(f"upload URL in /{staging.UPLOAD_URL_PATH}")

    with step(progress, 5, "vendor binaries") as notes:
        report = staging.inject_vendor(
            staged, options.vendor_dir, must_exist=options.vendor_dir_given
        )
        notes.append(f"found: {', '.join(report.found) or 'none'}")
        if report.missing:
            notes.append(f"absent: {', '.join(report.missing)}")
        if report.ignored:
            notes.append(f"ignored: {', '.join(report.ignored)}")

    with step(progress, 6, "NVIDIA modules and user space") as notes:
        if options.no_nvidia:
            nvidia = None
            notes.append("skipped (--no-nvidia)")
        else:
            nvidia = _nvidia_payload(options, cache, staged, progress)
            notes.append(
                f"driver {nvidia.version} ({' + '.join(nvidia.flavours)}), "
                f"modules {', '.join(nvidia.modules)}"
            )
            if nvidia.signing:
                notes.append(
                    f"signed ({nvidia.signing.get('origin')} key, certificate sha256 "
                    f"{nvidia.signing.get('cert_sha256')})"
                )

    with step(progress, 7, "release file and motd") as notes:
        commit, dirty = git_state(REPO_ROOT, progress)
        release = staging.Release(
            bee_version=version,
            bee_git_commit=commit,
            bee_git_dirty=dirty,
            bee_build_time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            debian_release=versions["DEBIAN_RELEASE"],
            debian_kernel_abi=abi,
            nvidia_driver_version=nvidia.version if nvidia else "none",
            nvidia_flavour=" ".join(nvidia.flavours) if nvidia else "none",
            nvidia_source=nvidia.source if nvidia else "none",
            live_build_version=live_build_version(progress),
            ssh_access=access,
        )
        staging.write_release(staged, release)
        notes.append(f"{commit[:12]}{' (dirty)' if dirty else ''}")

    workdir = dist / "lb-work"
    with step(progress, 8, "live-build (lb config && lb build)") as notes:
        prepare_workdir(workdir, staged, cache / "cache" / "live-build", progress)
        env = {
            "BEE_MIRROR": options.mirror,
            "BEE_SECURITY_MIRROR": options.security_mirror,
            "BEE_SQUASHFS_COMPRESSION": options.squashfs,
            "BEE_BOOT_TIMEOUT": str(options.boot_timeout),
        }
        progress.run(["lb", "config"], cwd=workdir, env=env, timeout_s=LB_CONFIG_TIMEOUT_S)
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

        progress.run(
            ["lb", "build"], cwd=workdir, env=env, on_line=on_line, timeout_s=LB_BUILD_TIMEOUT_S
        )
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

    with step(progress, 9, "ISO and checksum") as notes:
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
        if nvidia and nvidia.signing:
            certs = publish_signing_cert(staged, iso)
            notes.append(f"module signing certificate {certs[0].name}")

    if not options.keep_workdir:
        remove_workdir(workdir, progress)
    return iso


def signing_cert_stem(iso: Path) -> str:
    """dist/bee-0.4-amd64.iso -> bee-0.4-amd64.module-signing (.der, .pem)."""
    return f"{iso.name.removesuffix('.iso')}.module-signing"


def publish_signing_cert(staged: Path, iso: Path) -> list[Path]:
    """The image's module-signing certificate beside the ISO, named after it."""
    published = []
    for name in staging.MODULE_SIGNING_CERTS:
        source = staged / staging.NVIDIA_MODULE_DIR / name
        dest = iso.with_name(signing_cert_stem(iso) + Path(name).suffix)
        shutil.copyfile(source, dest)
        published.append(dest)
    return published


def _nvidia_payload(
    options: Options, cache: Path, staged: Path, progress: Runner
) -> staging.NvidiaPayload:
    # Imported here: only an NVIDIA build needs it, and a --no-nvidia build works without.
    from buildtools.nvidia import build as nvidia
    from buildtools.nvidia import signing

    # The key's copies live here only while the modules are signed (a per-build key is never
    # kept: nothing else can be signed with it).
    work = options.out / f".module-signing-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        if options.module_signing_key and options.module_signing_cert:
            key = signing.describe_key(
                options.module_signing_key,
                options.module_signing_cert,
                origin="operator",
                work=work,
                log=progress,
            )
        else:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            key = signing.generate_key(
                work, common_name=f"bee module signing (per-build {stamp})", log=progress
            )
        entries = nvidia.ensure_nvidia_flavours(
            options.versions,
            cache,
            lambda line: progress.say(f"      {line}"),
            signing_key=key,
        )
    except (nvidia.NvidiaError, CommandError, AptError) as exc:
        raise BuildError(f"NVIDIA: {exc} (or build with --no-nvidia)") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return staging.inject_nvidia(staged, [Path(entry.path) for entry in entries])


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    interrupt_on_signals()
    options.out.mkdir(parents=True, exist_ok=True)
    # One build per dist/ at a time: two would share dist/staging and dist/lb-work.
    lock = (options.out / "build-iso.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"build_iso: another build is running in {options.out}", file=sys.stderr)
        return 1
    progress = Runner(options.out / "build-iso.log", fresh=True)
    started = time.monotonic()
    try:
        result = build(options, progress)
    except KeyboardInterrupt:
        progress.say(f"build_iso: interrupted; log: {progress.log_path}")
        return 130
    except (
        BuildError,
        staging.StagingError,
        KernelError,
        VersionsError,
        AptError,
        CommandError,
        HostToolsError,
        releasetools.ReleaseToolsError,
    ) as exc:
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
