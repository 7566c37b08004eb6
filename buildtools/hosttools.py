"""Every program the builder runs on the build host, the Debian package that brings it, and
which nox session needs which.

Each session that needs host tools calls `ensure(SESSION, runner)` before its first long step:
what is missing is named and installed with apt-get (as root; otherwise one line says what to
install). tests/buildtools/test_hosttools.py checks that every program the builder calls is
listed here. Imports nothing else from buildtools (runner.py imports it), so that the builder's
Containerfile can copy this one file and install the same list: `python3 hosttools.py packages
SESSION...` prints the Debian packages those sessions need, one per line.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # runner.py imports this module for its "not found" message
    from buildtools.runner import Runner

# program -> Debian package (bookworm and trixie names).
TOOLS: dict[str, str] = {
    # apt and dpkg: the private apt configuration, package extraction, versions
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "dpkg-query": "dpkg",
    "dpkg": "dpkg",  # dpkg -i of the image release's live-build/debootstrap, --compare-versions
    # the live-build ISO
    "lb": "live-build",
    "debootstrap": "debootstrap",
    "mksquashfs": "squashfs-tools",
    "xorriso": "xorriso",
    "umount": "mount",
    "git": "git",
    # the NVIDIA module build
    "make": "make",
    "chroot": "coreutils",  # make in the build root of the image's release (nvidia/buildroot.py)
    "nice": "coreutils",
    "modinfo": "kmod",
    "depmod": "kmod",
    "strip": "binutils",
    "ldd": "libc-bin",
    "tar": "tar",
    "xz": "xz-utils",  # tar -xJ of Debian's module source
    "sh": "dash",  # NVIDIA's .run installer is a shell archive
    "openssl": "openssl",  # the module-signing key and the signatures' check (nvidia/signing.py)
    # vm_test --secure-boot-modules: a MOK into OVMF's variables (Debian 13; PyPI virt-firmware)
    "virt-fw-vars": "python3-virt-firmware",
    "gcc-12": "gcc-12",  # the pinned kernel's CONFIG_CC_VERSION_TEXT; headers depend on it
    # the VM test and the NVIDIA boot check
    "qemu-system-x86_64": "qemu-system-x86",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    # the fleet VM test: the WebDAV server the guests upload to, the playbook it runs
    "nginx": "nginx",  # nginx-light pulls it in on bookworm
    "ansible-playbook": "ansible-core",  # or ansible-core from PyPI (tests' venv)
    # the bench's shims for the synthetic host's tools
    "sleep": "coreutils",
    "cat": "coreutils",
    "sha256sum": "coreutils",  # the operator's check of an uploaded document (vm/fleet_test.py)
    # the container build
    "podman": "podman",
    "runc": "runc",  # podman's runtime where crun refuses hybrid cgroups
    "docker": "docker.io",
}

# What each nox session needs before its first long step. gcc-12 comes with the kernel
# headers that the NVIDIA build installs from the pinned mirror, so it is not listed here.
_APT = ("apt-get", "apt-cache", "dpkg-deb", "dpkg-query", "dpkg")
# openssl: the module-signing key and the signatures' check (nvidia/signing.py).
_NVIDIA = (
    *(*_APT, "make", "nice", "chroot", "modinfo", "depmod", "strip", "ldd", "tar", "xz", "sh"),
    "openssl",
)
SESSIONS: dict[str, tuple[str, ...]] = {
    "build_iso": (*_NVIDIA, "lb", "debootstrap", "mksquashfs", "xorriso", "umount", "git"),
    "build_iso --no-nvidia": (*_APT, "lb", "debootstrap", "mksquashfs", "xorriso", "umount", "git"),
    "nvidia_modules": _NVIDIA,
    "nvidia_bootcheck": (*_NVIDIA, "qemu-system-x86_64"),
    "vm_test": ("qemu-system-x86_64", "ssh", "ssh-keygen", "xorriso", "tar", "openssl"),
    "fleet_vm_test": ("qemu-system-x86_64", "ssh", "xorriso", "nginx", "sha256sum"),
    "build_netboot": ("xorriso",),
    # Only where no engine is installed (docker, when present, is used as it is), and runc only
    # where podman's crun refuses the host's hybrid cgroups (image/container.py).
    "build_iso_container": ("podman",),
    "build_iso_container, hybrid cgroups": ("runc",),
}
# What `apt-get install` needs in the minimal root too (the archive keyring for signed-by).
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "build_iso": ("debian-archive-keyring", "ca-certificates"),
    "build_iso --no-nvidia": ("debian-archive-keyring", "ca-certificates"),
    "nvidia_modules": ("debian-archive-keyring", "ca-certificates"),
    "nvidia_bootcheck": ("debian-archive-keyring", "ca-certificates"),
}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_EXTRA_FILES = {"debian-archive-keyring": KEYRING, "ca-certificates": CA_BUNDLE}


class HostToolsError(Exception):
    """A needed host tool is missing and cannot be installed here; the message is one line."""


def package_for(tool: str) -> str | None:
    return TOOLS.get(os.path.basename(tool))


def missing_packages(
    session: str,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
) -> list[str]:
    """Debian packages to install for `session`, in list order, each once."""
    wanted = [TOOLS[tool] for tool in SESSIONS[session] if which(tool) is None]
    wanted += [pkg for pkg in EXTRA_PACKAGES.get(session, ()) if not exists(_EXTRA_FILES[pkg])]
    return list(dict.fromkeys(wanted))


def packages(sessions: Iterable[str]) -> list[str]:
    """Every Debian package the sessions need (installed or not), in list order, each once."""
    wanted: list[str] = []
    for session in sessions:
        wanted += [TOOLS[tool] for tool in SESSIONS[session]]
        wanted += EXTRA_PACKAGES.get(session, ())
    return list(dict.fromkeys(wanted))


def missing_tools(session: str, which: Callable[[str], str | None] = shutil.which) -> list[str]:
    return [tool for tool in SESSIONS[session] if which(tool) is None]


def install_command(packages: Iterable[str]) -> list[str]:
    # Another apt or dpkg on the host (unattended-upgrades, a second build) holds the lock for a
    # while: wait for it instead of failing at once.
    return [
        "apt-get",
        "-q",
        "-y",
        "-o",
        "DPkg::Lock::Timeout=600",
        "--no-install-recommends",
        "install",
        *packages,
    ]


def ensure(session: str, runner: Runner, *, euid: int | None = None) -> list[str]:
    """Install what `session` lacks with apt-get, naming it; returns the packages installed."""
    packages = missing_packages(session)
    if not packages:
        return []
    tools = ", ".join(missing_tools(session)) or "files"
    if (os.geteuid() if euid is None else euid) != 0:
        raise HostToolsError(
            f"{session} needs {tools}: as root run `apt-get install {' '.join(packages)}`"
        )
    if shutil.which("apt-get") is None:
        raise HostToolsError(
            f"{session} needs {tools} (Debian packages {' '.join(packages)}) and this host has "
            "no apt-get: use a Debian host or `nox -s build_iso_container`"
        )
    runner.say(f"{session}: installing host tools ({tools}): {' '.join(packages)}")
    update = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600", "update"]
    runner.run(update, timeout_s=600, name="apt-get update")
    runner.run(install_command(packages), timeout_s=1800, name=f"apt-get install {packages[0]}")
    still = missing_packages(session)
    if still:
        raise HostToolsError(f"apt-get installed {' '.join(packages)}, still missing: {still}")
    return packages


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "packages" or not set(argv[1:]) <= set(SESSIONS):
        print(
            f"usage: hosttools.py packages SESSION... (sessions: {', '.join(SESSIONS)})",
            file=sys.stderr,
        )
        return 2
    print("\n".join(packages(argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
