"""Where the NVIDIA modules are compiled: the host, or a build root of the image's release.

The kernel's headers need the compiler the kernel was built with and the kbuild helpers of the
same release: Debian 13's `linux-headers-6.12.118+deb13-amd64` depends on `gcc-14` and
`linux-kbuild-6.12.118+deb13`, whose binaries need glibc 2.38. A Debian 12 host has gcc-12 and
glibc 2.36, and installing Debian 13's packages on it would mix releases. So when the host is
not the image's release, the modules are built in `dist/buildroot-<release>/`: a minimal system
of that release (`debootstrap --variant=minbase` with the compiler, make and kbuild's libraries),
with the pinned kernel's headers and kbuild unpacked into it (`dpkg-deb -x`: the headers
package also wants the kernel image, which a build root does not need). `make` then runs under
`chroot`. The debootstrap used is the release's own, unpacked from its archive into
`dist/buildroot-tools/` (the host's may not know the release). Made once and reused while its
record (`.bee-buildroot.json`: release, ABI, the packages and their versions) still matches.

On a host of the image's release, nothing of this happens: the headers are installed on the host
as before and make runs there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from buildtools.nvidia.cache import pid_alive
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptRepo
from buildtools.runner import Runner

RECORD = ".bee-buildroot.json"
RECORD_FORMAT = 1
OS_RELEASE = Path("/etc/os-release")
BASE_PACKAGES = ("make", "kmod", "binutils", "xz-utils", "libc6-dev")
# "gcc-14", "libelf1t64 (>= 0.144)", "pahole" in a Depends field; alternatives keep the first.
_DEPENDENCY = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelBuildRoot:
    """Where make runs: `root` None means the host itself."""

    root: Path | None
    release: str

    def path(self, inside: str | Path) -> Path:
        """A path of the build system as the host sees it."""
        inside = Path(inside)
        return inside if self.root is None else self.root / inside.relative_to("/")

    def argv(self, command: list[str]) -> list[str]:
        return command if self.root is None else ["chroot", str(self.root), *command]

    @property
    def env(self) -> dict[str, str]:
        # The host's PATH may name directories the build root does not have.
        return {} if self.root is None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"}


def host_release(os_release: Path = OS_RELEASE) -> str | None:
    """VERSION_CODENAME from /etc/os-release (`bookworm`), None when it does not say."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "VERSION_CODENAME":
            return value.strip().strip("\"'") or None
    return None


def depends_of(control_depends: str) -> list[str]:
    """Package names from a Depends field: `libc6 (>= 2.38), gcc-14 | gcc` -> [libc6, gcc-14]."""
    names = []
    for part in control_depends.split(","):
        match = _DEPENDENCY.match(part.split("|")[0])
        if match:
            names.append(match.group(1))
    return names


def kernel_build_root(
    *, release: str, kernel_abi: str, repo: AptRepo, dist_dir: Path, log: Runner
) -> KernelBuildRoot:
    """The host when it runs `release`, else the (made or reused) build root of `release`."""
    if host_release() == release:
        return KernelBuildRoot(root=None, release=release)
    return KernelBuildRoot(
        root=ensure_build_root(
            release=release, kernel_abi=kernel_abi, repo=repo, dist_dir=dist_dir, log=log
        ),
        release=release,
    )


def _deb_field(deb: Path, field: str, log: Runner) -> str:
    return log.run(["dpkg-deb", "-f", deb, field], timeout_s=60).stdout.strip()


def ensure_build_root(
    *, release: str, kernel_abi: str, repo: AptRepo, dist_dir: Path, log: Runner
) -> Path:
    dist_dir = Path(dist_dir)
    root = dist_dir / f"buildroot-{release}"
    repo.ensure_updated()
    debs_dir = dist_dir / "buildroot-debs"
    [arch_headers] = fetch_debs(repo, [f"linux-headers-{kernel_abi}"], debs_dir)
    common = [
        name
        for name in depends_of(_deb_field(arch_headers, "Depends", log))
        if name.startswith("linux-headers-") or name.startswith("linux-kbuild-")
    ]
    unpacked = [arch_headers, *fetch_debs(repo, common, debs_dir)]
    kbuild = [deb for deb in unpacked if deb.name.startswith("linux-kbuild-")]
    if not kbuild:
        raise NvidiaError(f"{arch_headers.name} names no linux-kbuild package in its Depends")
    compilers = [
        name
        for name in depends_of(_deb_field(arch_headers, "Depends", log))
        if re.fullmatch(r"gcc-[0-9]+", name)
    ]
    if not compilers:
        raise NvidiaError(f"{arch_headers.name} names no gcc-N in its Depends")
    libraries = [
        name
        for name in depends_of(_deb_field(kbuild[0], "Depends", log))
        if not name.startswith("libc6")
    ]
    include = sorted({*BASE_PACKAGES, *compilers, *libraries})
    wanted = {
        "format": RECORD_FORMAT,
        "release": release,
        "mirror": repo.mirror,
        "kernel_abi": kernel_abi,
        "include": include,
        "unpacked": sorted(deb.name for deb in unpacked),
    }
    try:
        recorded = json.loads((root / RECORD).read_text(encoding="utf-8"))
        if isinstance(recorded, dict) and {key: recorded.get(key) for key in wanted} == wanted:
            return root
    except (OSError, ValueError):
        pass

    debootstrap = _release_debootstrap(repo, dist_dir, log)
    _remove_stale(dist_dir, f"buildroot-{release}")
    partial = dist_dir / f".buildroot-{release}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    try:
        log.run(
            [
                debootstrap / "usr/sbin/debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                release,
                partial,
                repo.mirror,
            ],
            env={"DEBOOTSTRAP_DIR": str(debootstrap / "usr/share/debootstrap")},
            timeout_s=1800,
        )
        for deb in unpacked:
            log.run(["dpkg-deb", "-x", deb, partial], timeout_s=600)
        build = partial / "usr/lib/modules" / kernel_abi / "build"
        if not (build / "Makefile").is_file() or not (build / ".config").is_file():
            raise NvidiaError(f"the unpacked headers have no {build}/Makefile and .config")
        record = dict(wanted, built_seconds=round(time.monotonic() - started, 1))
        (partial / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return root


def _release_debootstrap(repo: AptRepo, dist_dir: Path, log: Runner) -> Path:
    """The release's own debootstrap (a shell script, arch all) unpacked under dist/."""
    version = repo.candidate("debootstrap")
    if version is None:
        raise NvidiaError(f"{repo.mirror} {repo.release} has no debootstrap package")
    dest = dist_dir / "buildroot-tools" / f"debootstrap-{version}"
    if not (dest / "usr/sbin/debootstrap").is_file():
        [deb] = fetch_debs(repo, ["debootstrap"], dist_dir / "buildroot-debs")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        log.run(["dpkg-deb", "-x", deb, dest], timeout_s=60)
    return dest


def fetch_debs(repo: AptRepo, names: list[str], debs_dir: Path) -> list[Path]:
    """The candidate .deb of each package, from `debs_dir` when already there (no download)."""
    found = []
    debs_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        version = repo.candidate(name)
        if version is None:
            raise NvidiaError(f"{name} is not on {repo.mirror} ({repo.release})")
        cached = sorted(debs_dir.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
        found += cached[:1] or repo.download([f"{name}={version}"], debs_dir)
    return found


def _remove_stale(dist_dir: Path, name: str) -> None:
    for stale in dist_dir.glob(f".{name}.partial-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
