"""The pinned Debian kernel ABI against the mirror: check it exists, or bump it.

    python3 -m buildtools.pins.kernel check   # exit 0: linux-image/headers-<ABI> on the mirror
    python3 -m buildtools.pins.kernel bump    # rewrite DEBIAN_KERNEL_ABI to the newest ABI offered

Pinned ABIs disappear from the regular Debian mirror at point releases; build_iso.py runs the
check before any long step so a stale pin fails in seconds, naming the ABI the mirror offers.
Queries go through buildtools.pins.aptrepo (a private apt configuration, not the host's).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.versions import (
    REPO_ROOT,
    VERSIONS_FILE,
    VersionsError,
    load_versions,
    replace_value,
)

# Debian 12: 6.1.0-56-amd64 = <upstream>-<abi number>-<flavour>.
# Debian 13: 6.12.118+deb13-amd64 = <upstream>+deb<release>-<flavour> (the version is the ABI).
_ABI = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(\d+)|\+deb(\d+))-([a-z0-9-]+)$")
# The image and headers package names that can carry an ABI of this flavour.
_IMAGE_PATTERN = r"linux-image-[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+|\+deb[0-9]+)-"


class KernelError(Exception):
    """The pinned kernel is unusable; the message is one line and says what to do."""


def split_abi(abi: str) -> tuple[tuple[int, int, int, int], str]:
    """`6.1.0-56-amd64` -> ((6, 1, 0, 56), "amd64"); `6.12.118+deb13-amd64` ->
    ((6, 12, 118, 0), "amd64"). KernelError when it is not an ABI."""
    match = _ABI.match(abi)
    if match is None:
        raise KernelError(
            f"{abi!r} is not a Debian kernel ABI like 6.12.118+deb13-amd64 or 6.1.0-56-amd64"
        )
    major, minor, patch, number, _release, flavour = match.groups()
    return (int(major), int(minor), int(patch), int(number or 0)), flavour


def abi_series(abi: str) -> str:
    """A regex for every ABI of the same kernel series and flavour: Debian 12 moves the ABI
    number (6.1.0-N-amd64), Debian 13 the upstream patch level (6.12.N+deb13-amd64)."""
    split_abi(abi)
    match = _ABI.match(abi)
    major, minor, patch, number, release, flavour = match.groups()  # type: ignore[union-attr]
    if number is not None:
        return rf"{major}\.{minor}\.{patch}-[0-9]+-{re.escape(flavour)}"
    return rf"{major}\.{minor}\.[0-9]+\+deb{release}-{re.escape(flavour)}"


def image_package(abi: str) -> str:
    return f"linux-image-{abi}"


def headers_package(abi: str) -> str:
    return f"linux-headers-{abi}"


def abis_in(names: list[str], flavour: str) -> list[str]:
    """ABIs of `flavour` named by `linux-image-<ABI>` package names, oldest first."""
    found = []
    for name in names:
        abi = name.removeprefix("linux-image-")
        if abi == name:
            continue
        match = _ABI.match(abi)
        # 6.1.0-56-rt-amd64 has flavour "rt-amd64", 6.12.118+deb13-amd64-unsigned
        # "amd64-unsigned": not ours.
        if match is not None and match.group(6) == flavour:
            found.append(abi)
    return sorted(set(found), key=lambda abi: split_abi(abi)[0])


def offered_abis(repo: AptRepo, flavour: str) -> list[str]:
    """ABIs whose image and headers both exist on the mirror, oldest first."""
    pattern = _IMAGE_PATTERN + re.escape(flavour)
    candidates = abis_in(repo.names_matching(pattern), flavour)
    return [
        abi
        for abi in candidates
        if repo.has_package(image_package(abi)) and repo.has_package(headers_package(abi))
    ]


def check_kernel(repo: AptRepo, abi: str) -> None:
    """KernelError unless linux-image-<abi> and linux-headers-<abi> are on the mirror."""
    _number, flavour = split_abi(abi)
    missing = [
        package
        for package in (image_package(abi), headers_package(abi))
        if not repo.has_package(package)
    ]
    if not missing:
        return
    offered = offered_abis(repo, flavour)
    instead = (
        f"the mirror offers {offered[-1]}"
        if offered
        else f"the mirror offers no linux-image-*-{flavour}"
    )
    raise KernelError(
        f"pinned kernel ABI {abi} is not on {repo.mirror} ({', '.join(missing)} missing); "
        f"{instead}: run `nox -s bump_kernel` (updates iso/builder/VERSIONS)"
    )


def bump(repo: AptRepo, versions_file: Path, current: str) -> str | None:
    """Rewrite DEBIAN_KERNEL_ABI to the newest offered ABI; the new ABI, None if unchanged."""
    _number, flavour = split_abi(current)
    offered = offered_abis(repo, flavour)
    if not offered:
        raise KernelError(f"the mirror {repo.mirror} offers no linux-image-*-{flavour} ABI")
    newest = offered[-1]
    if newest == current:
        return None
    text = versions_file.read_text(encoding="utf-8")
    versions_file.write_text(replace_value(text, "DEBIAN_KERNEL_ABI", newest), encoding="utf-8")
    return newest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m buildtools.pins.kernel",
        description="Check or bump the pinned Debian kernel ABI against the mirror.",
    )
    parser.add_argument("command", choices=("check", "bump"))
    parser.add_argument("--versions", type=Path, default=VERSIONS_FILE, help="VERSIONS file")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="apt state dir")
    args = parser.parse_args(argv)
    try:
        versions = load_versions(args.versions)
        abi = versions.kernel_abi
        split_abi(abi)
        repo = AptRepo.from_versions(versions, args.dist)
        repo.update()
        if args.command == "check":
            check_kernel(repo, abi)
            print(f"kernel {abi}: linux-image and linux-headers are on {repo.mirror}")
            return 0
        newest = bump(repo, args.versions, abi)
    except (KernelError, VersionsError, AptError) as exc:
        print(f"kernel: {exc}", file=sys.stderr)
        return 1
    if newest is None:
        print(f"DEBIAN_KERNEL_ABI={abi} is already the newest on {repo.mirror}")
    else:
        print(f"DEBIAN_KERNEL_ABI: {abi} -> {newest} in {args.versions}")
        print("the NVIDIA modules are rebuilt for it by the next build_iso")
    return 0


if __name__ == "__main__":
    sys.exit(main())
