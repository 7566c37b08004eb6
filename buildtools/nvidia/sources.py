"""Where the NVIDIA driver comes from: Debian's non-free packages, or NVIDIA's .run installer.

Both end as a `DriverTree`: an unpacked directory holding the kernel module source and the
user space (nvidia-smi, nvidia-modprobe, libnvidia-ml, libcuda, GSP firmware), plus a record of
where it came from for the manifest.

Debian (`NVIDIA_SOURCE=debian`): each package is fetched at the version whose upstream part is
exactly NVIDIA_DRIVER_VERSION (bookworm carries 535.309.01 in bookworm-security and 535.261.03 in
bookworm itself), with `apt-get download` through a private apt configuration, unpacked with
`dpkg-deb -x`; the module source is the tarball in usr/src/. A package that has no such version
stops the build before anything is downloaded.

.run (`NVIDIA_SOURCE=run`): the installer from NVIDIA_RUN_URL (or a local file) is copied into
dist/, its sha256 checked against NVIDIA_RUN_SHA256 before use, and extracted with the
installer's own `-x` (which unpacks into ./NVIDIA-Linux-x86_64-<version>/).
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildtools.nvidia.cache import sha256_file, verify_sha256
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptRepo, upstream_version
from buildtools.runner import Runner

DEBIAN_MODULE_SOURCE = {
    "proprietary": "nvidia-kernel-source",
    "open": "nvidia-open-kernel-source",
}
DEBIAN_USER_SPACE = (
    "nvidia-smi",
    "libnvidia-ml1",
    "libcuda1",
    "firmware-nvidia-gsp",
    # Only for the driver's own supported-gpus.json (usr/share/doc/nvidia-driver/), which
    # bee-nvidia reads to pick the module flavour; nothing else of it is shipped.
    "nvidia-driver",
)
# Shipped only when Debian has it at the same driver version: trixie has nvidia-modprobe at
# 570.133.07, so it is left out (bee-nvidia makes the device nodes itself). Trixie's
# nvidia-persistenced is 550.163.01 but needs libtirpc3t64 and libnvidia-cfg1, which the image
# does not carry: bee-nvidia turns persistence on with `nvidia-smi -pm 1` instead.
DEBIAN_OPTIONAL = ("nvidia-modprobe",)
RUN_KERNEL_DIR = {"proprietary": "kernel", "open": "kernel-open"}
_DOWNLOAD_TIMEOUT_S = 120
_CHUNK = 1 << 20


@dataclass(slots=True, kw_only=True)
class DriverTree:
    """An unpacked driver: `root` holds the user space, `kernel_src` the module source."""

    root: Path
    kernel_src: Path
    origin: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)


# -- Debian packages -----------------------------------------------------------------------


def debian_packages(flavour: str) -> list[str]:
    return [DEBIAN_MODULE_SOURCE[flavour], *DEBIAN_USER_SPACE]


def pick_version(available: list[str], version: str) -> str | None:
    """The first (apt's preferred) Debian version whose upstream part is exactly `version`."""
    for candidate in available:
        if upstream_version(candidate) == version:
            return candidate
    return None


def select_debian_versions(
    repo: AptRepo, packages: list[str], version: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """({package: exact Debian version}, {package: what the mirror has instead}) for `version`."""
    chosen: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for package in packages:
        available = repo.available_versions(package)
        picked = pick_version(available, version)
        if picked is None:
            missing[package] = available
        else:
            chosen[package] = picked
    return chosen, missing


def mismatch_message(missing: dict[str, list[str]], version: str, flavour: str) -> str:
    parts = []
    for package, available in sorted(missing.items()):
        offered = ", ".join(upstream_version(v) for v in available) or "nothing"
        parts.append(f"{package} (mirror has {offered})")
    message = (
        f"the Debian mirror has no {version} build of: {'; '.join(parts)}. Everything shipped "
        "must be the same driver version (NVML refuses a library/module mismatch)"
    )
    if flavour == "open" and DEBIAN_MODULE_SOURCE["open"] in missing:
        message += (
            "; Debian's open module source lags its user space: use NVIDIA_FLAVOURS=proprietary, "
            "NVIDIA_SOURCE=run, or pin NVIDIA_DRIVER_VERSION to a version every package has"
        )
    return message


def fetch_debian(
    repo: AptRepo,
    *,
    version: str,
    flavour: str,
    debs_dir: Path,
    work: Path,
    log: Runner,
) -> DriverTree:
    """Download (or reuse) the .debs of exactly `version`, unpack them, untar the module source."""
    repo.ensure_updated()
    required = debian_packages(flavour)
    chosen, missing = select_debian_versions(repo, required, version)
    if missing:
        raise NvidiaError(mismatch_message(missing, version, flavour))
    skipped: dict[str, str] = {}
    optional, optional_missing = select_debian_versions(repo, list(DEBIAN_OPTIONAL), version)
    for package, available in optional_missing.items():
        offered = ", ".join(upstream_version(v) for v in available) or "nothing"
        skipped[package] = f"Debian has {offered}, not {version}"
    chosen.update(optional)

    debs_dir.mkdir(parents=True, exist_ok=True)
    debs: dict[str, Path] = {}
    to_fetch = []
    for package, deb_version in chosen.items():
        cached = sorted(debs_dir.glob(f"{package}_{deb_version.replace(':', '%3a')}_*.deb"))
        if cached:
            debs[package] = cached[0]
        else:
            to_fetch.append(f"{package}={deb_version}")
    if to_fetch:
        for path in repo.download(to_fetch, debs_dir):
            debs[path.name.partition("_")[0]] = path

    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    for package in chosen:
        log.run(["dpkg-deb", "-x", debs[package], root], timeout_s=600)
    tarball = root / "usr/src" / f"{DEBIAN_MODULE_SOURCE[flavour].removesuffix('-source')}.tar.xz"
    if not tarball.is_file():
        raise NvidiaError(f"{DEBIAN_MODULE_SOURCE[flavour]} has no {tarball.name} in usr/src/")
    src_root = work / "src"
    src_root.mkdir(parents=True, exist_ok=True)
    log.run(["tar", "-xJf", tarball, "-C", src_root], timeout_s=600)
    kernel_src = _single_dir_with(src_root, "Kbuild")
    return DriverTree(
        root=root,
        kernel_src=kernel_src,
        origin={
            "mirror": repo.mirror,
            "security_mirror": repo.security_mirror,
            "packages": chosen,
            "deb_sha256": {name: sha256_file(path) for name, path in sorted(debs.items())},
        },
        skipped=skipped,
    )


def _single_dir_with(base: Path, marker: str) -> Path:
    found = sorted(path.parent for path in base.glob(f"*/*/{marker}"))
    found += sorted(path.parent for path in base.glob(f"*/{marker}"))
    if len(found) != 1:
        raise NvidiaError(f"expected one module source tree with {marker} under {base}: {found}")
    return found[0]


# -- the .run installer --------------------------------------------------------------------


def run_file_name(version: str) -> str:
    return f"NVIDIA-Linux-x86_64-{version}.run"


def fetch_run(
    *, url: str, sha256: str, version: str, dist_dir: Path, local_file: Path | None = None
) -> tuple[Path, bool]:
    """The verified installer in dist/ and whether it was already there (nothing downloaded).

    A cached copy is reused only if it still matches the pin. A download or copy goes to a
    `.part` file first; a digest mismatch removes it and names both digests.
    """
    dest = Path(dist_dir) / run_file_name(version)
    pin_name = "NVIDIA_RUN_SHA256"
    if dest.is_file() and sha256 and sha256_file(dest) == sha256.strip().lower():
        return dest, True
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    try:
        if local_file is not None:
            if not Path(local_file).is_file():
                raise NvidiaError(f"--run-file {local_file}: no such file")
            shutil.copyfile(local_file, part)
            what = str(local_file)
        else:
            if not url:
                raise NvidiaError("NVIDIA_RUN_URL is empty in VERSIONS and no --run-file given")
            _download(url, part)
            what = url
        verify_sha256(part, sha256, what=what, pin_name=pin_name)
        part.rename(dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest, False


def _download(url: str, dest: Path) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise NvidiaError(f"NVIDIA_RUN_URL {url!r}: only http, https and file URLs are fetched")
    try:
        with (
            urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            dest.open("wb") as out,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise NvidiaError(f"downloading {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NvidiaError(f"downloading {url}: {reason}") from None


def extract_run(
    run_file: Path, *, version: str, flavour: str, work: Path, log: Runner
) -> DriverTree:
    """`sh <installer> -x` in an empty directory; it unpacks NVIDIA-Linux-x86_64-<version>/."""
    work.mkdir(parents=True, exist_ok=True)
    log.run(["sh", Path(run_file).resolve(), "-x"], cwd=work, timeout_s=900)
    expected = work / run_file_name(version).removesuffix(".run")
    if not expected.is_dir():
        found = ", ".join(sorted(p.name for p in work.iterdir())) or "nothing"
        raise NvidiaError(
            f"{run_file.name} -x did not unpack {expected.name}/ (found: {found}); "
            "is it the installer for NVIDIA_DRIVER_VERSION?"
        )
    kernel_src = expected / RUN_KERNEL_DIR[flavour]
    if not (kernel_src / "Makefile").is_file():
        raise NvidiaError(f"{run_file.name} has no {RUN_KERNEL_DIR[flavour]}/Makefile")
    return DriverTree(
        root=expected,
        kernel_src=kernel_src,
        origin={"run_file": run_file.name, "run_sha256": sha256_file(run_file)},
    )
