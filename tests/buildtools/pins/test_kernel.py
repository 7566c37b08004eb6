"""The pinned kernel ABI check and bump (buildtools/pins/kernel.py), no network.

`MirrorIndex` answers the two questions kernel.py asks of buildtools.pins.aptrepo.AptRepo
(which names match, does this exact package exist) from a fixed list of package names, the
way `apt-cache pkgnames` / `apt-cache policy` would for a mirror that carries them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from buildtools.pins import kernel
from buildtools.pins.versions import parse_versions


class MirrorIndex:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.mirror = "http://mirror.example/debian"
        self.asked: list[str] = []  # the exact packages asked about, in order

    def names_matching(self, pattern: str) -> list[str]:
        return sorted(name for name in self.names if re.fullmatch(pattern, name))

    def has_package(self, package: str) -> bool:
        self.asked.append(package)
        return package in self.names


def mirror_with(*abis: str, headers: bool = True) -> MirrorIndex:
    names = [f"linux-image-{abi}" for abi in abis]
    if headers:
        names += [f"linux-headers-{abi}" for abi in abis]
    return MirrorIndex([*names, "linux-image-amd64", "linux-image-6.1.0-60-rt-amd64"])


def test_split_abi() -> None:
    assert kernel.split_abi("6.1.0-56-amd64") == ((6, 1, 0, 56), "amd64")
    assert kernel.split_abi("6.1.0-56-rt-amd64") == ((6, 1, 0, 56), "rt-amd64")
    with pytest.raises(kernel.KernelError, match="not a Debian kernel ABI"):
        kernel.split_abi("6.1-amd64")


def test_abis_sort_numerically_and_keep_the_flavour() -> None:
    names = [
        "linux-image-6.1.0-9-amd64",
        "linux-image-6.1.0-56-amd64",
        "linux-image-6.1.0-10-amd64",
        "linux-image-6.1.0-60-rt-amd64",
        "linux-image-amd64",
    ]
    assert kernel.abis_in(names, "amd64") == ["6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-56-amd64"]


def test_pinned_abi_present_passes() -> None:
    """It passes because it asked the mirror for both packages and found them (review B.4.9:
    this test had no assertion); the same check on a mirror that lacks either fails."""
    repo = mirror_with("6.1.0-56-amd64")
    assert kernel.check_kernel(repo, "6.1.0-56-amd64") is None  # type: ignore[arg-type]
    assert repo.asked == ["linux-image-6.1.0-56-amd64", "linux-headers-6.1.0-56-amd64"]


def test_missing_abi_names_what_the_mirror_offers() -> None:
    repo = mirror_with("6.1.0-57-amd64", "6.1.0-58-amd64")
    with pytest.raises(kernel.KernelError) as info:
        kernel.check_kernel(repo, "6.1.0-56-amd64")  # type: ignore[arg-type]
    message = str(info.value)
    assert "6.1.0-56-amd64 is not on http://mirror.example/debian" in message
    assert "linux-image-6.1.0-56-amd64" in message
    assert "the mirror offers 6.1.0-58-amd64" in message
    assert "bump_kernel" in message


def test_missing_headers_alone_fail_the_check() -> None:
    repo = MirrorIndex(["linux-image-6.1.0-56-amd64"])
    with pytest.raises(kernel.KernelError, match=r"linux-headers-6\.1\.0-56-amd64 missing"):
        kernel.check_kernel(repo, "6.1.0-56-amd64")  # type: ignore[arg-type]


def test_bump_rewrites_only_the_abi(tmp_path: Path) -> None:
    versions = tmp_path / "VERSIONS"
    versions.write_text(
        "# pins\nDEBIAN_RELEASE=bookworm\nDEBIAN_KERNEL_ABI=6.1.0-56-amd64\n"
        "DEBIAN_MIRROR=http://m/debian\nDEBIAN_SECURITY_MIRROR=http://m/debian-security\n"
    )
    repo = mirror_with("6.1.0-56-amd64", "6.1.0-58-amd64", "6.1.0-9-amd64")
    assert kernel.bump(repo, versions, "6.1.0-56-amd64") == "6.1.0-58-amd64"  # type: ignore[arg-type]
    text = versions.read_text()
    assert parse_versions(text).kernel_abi == "6.1.0-58-amd64"
    assert text.startswith("# pins\nDEBIAN_RELEASE=bookworm\n")
    assert kernel.bump(repo, versions, "6.1.0-58-amd64") is None  # type: ignore[arg-type]


def test_bump_skips_abis_without_headers(tmp_path: Path) -> None:
    repo = mirror_with("6.1.0-56-amd64")
    repo.names.append("linux-image-6.1.0-59-amd64")  # image published, headers not yet
    versions = tmp_path / "VERSIONS"
    versions.write_text("DEBIAN_KERNEL_ABI=6.1.0-56-amd64\n")
    assert kernel.bump(repo, versions, "6.1.0-56-amd64") is None  # type: ignore[arg-type]
