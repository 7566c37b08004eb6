"""buildtools.pins.aptrepo: the private apt configuration.

The pure parts are tested directly. The apt commands run for real against a tiny local
repository (`file:` URI, packages built with dpkg-deb, indexed with dpkg-scanpackages), so no
network and no root are needed; skipped where those Debian tools are absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildtools.nvidia.kbuild import check_headers_on_mirror
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import (
    DEFAULT_AREAS,
    AptError,
    AptRepo,
    filter_names,
    literal_prefix,
    parse_policy_candidate,
    parse_policy_versions,
    upstream_version,
)
from buildtools.pins.versions import parse_versions
from buildtools.runner import Runner
from conftest import local_archive

# Captured on this build host (apt 2.6.1) with the private configuration:
# apt-cache -o Dir::Etc::SourceList=... policy nvidia-smi
# on 2026-11-26 against deb.debian.org (the 535.309.01 build is in bookworm-security only).
POLICY_NVIDIA_SMI = """\
nvidia-smi:
  Installed: (none)
  Candidate: 535.309.01-0+deb12u1
  Version table:
     535.309.01-0+deb12u1 500
        500 http://deb.debian.org/debian-security bookworm-security/non-free amd64 Packages
     535.261.03-1 500
        500 http://deb.debian.org/debian bookworm/non-free amd64 Packages
"""
# The same command prints nothing at all for an unknown package; this is the shape apt 2.6
# prints for a purely virtual one (`Candidate: (none)`, empty table), written by hand.
POLICY_VIRTUAL = """\
virtual-package:
  Installed: (none)
  Candidate: (none)
  Version table:
"""
# A hand-made installed-version line (` *** `), the form apt prints for an installed package.
POLICY_INSTALLED = """\
linux-headers-6.1.0-56-amd64:
  Installed: 6.1.192-2
  Candidate: 6.1.192-2
  Version table:
 *** 6.1.192-2 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
        100 /var/lib/dpkg/status
"""


def test_policy_candidate() -> None:
    assert parse_policy_candidate(POLICY_NVIDIA_SMI) == "535.309.01-0+deb12u1"
    assert parse_policy_candidate(POLICY_VIRTUAL) is None
    assert parse_policy_candidate("") is None
    assert parse_policy_candidate("Candidate") is None


def test_policy_versions() -> None:
    assert parse_policy_versions(POLICY_NVIDIA_SMI) == ["535.309.01-0+deb12u1", "535.261.03-1"]
    assert parse_policy_versions(POLICY_VIRTUAL) == []
    assert parse_policy_versions(POLICY_INSTALLED) == ["6.1.192-2"]
    assert parse_policy_versions("") == []


@pytest.mark.parametrize(
    ("version", "upstream"),
    [
        ("535.309.01-0+deb12u1", "535.309.01"),
        ("1:535.309.01-0+deb12u1", "535.309.01"),
        ("535.261.03-1", "535.261.03"),
        ("535.171.04-1~deb12u1", "535.171.04"),
        ("20230210", "20230210"),
    ],
)
def test_upstream_version(version: str, upstream: str) -> None:
    assert upstream_version(version) == upstream


def test_filter_names_matches_whole_name() -> None:
    names = [
        "linux-image-6.1.0-56-amd64",
        "linux-image-6.1.0-56-amd64-dbg",
        "linux-image-6.1.0-9-amd64",
        "linux-image-6.1.0-56-cloud-amd64",
        "linux-image-6.1.0-56-amd64",
    ]
    assert filter_names(names, r"linux-image-6\.1\.0-[0-9]+-amd64") == [
        "linux-image-6.1.0-56-amd64",
        "linux-image-6.1.0-9-amd64",
    ]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (r"linux-image-6\.1\.0-[0-9]+-amd64", "linux-image-6.1.0-"),
        (r"nvidia-smi", "nvidia-smi"),
        (r"libcudas?", "libcuda"),
        (r".*nvidia.*", ""),
        (r"(foo|bar)", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix


def test_sources_text_names_release_updates_security_and_areas(tmp_path: Path) -> None:
    repo = AptRepo(
        tmp_path,
        mirror="http://deb.debian.org/debian/",
        security_mirror="http://deb.debian.org/debian-security",
        release="bookworm",
    )
    lines = [line for line in repo.sources_text().splitlines() if not line.startswith("#")]
    key = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    areas = " ".join(DEFAULT_AREAS)
    assert lines == [
        f"deb {key} http://deb.debian.org/debian bookworm {areas}",
        f"deb {key} http://deb.debian.org/debian bookworm-updates {areas}",
        f"deb {key} http://deb.debian.org/debian-security bookworm-security {areas}",
    ]


def test_options_keep_apt_off_the_host_state(tmp_path: Path) -> None:
    repo = AptRepo(tmp_path, mirror="http://m/debian", release="bookworm")
    options = dict(
        opt.split("=", 1) for flag, opt in zip(*[iter(repo.apt_options())] * 2, strict=True)
    )
    for key in (
        "Dir::Etc::SourceList",
        "Dir::Etc::SourceParts",
        "Dir::State::Lists",
        "Dir::Cache",
        "Dir::Etc::Preferences",
        "Dir::Etc::PreferencesParts",
    ):
        assert options[key].startswith(str(tmp_path.resolve())), key


def test_from_versions_uses_pins(tmp_path: Path) -> None:
    versions = parse_versions(
        "DEBIAN_RELEASE=bookworm\nDEBIAN_KERNEL_ABI=6.1.0-56-amd64\n"
        "DEBIAN_MIRROR=http://mirror.example/debian\n"
        "DEBIAN_SECURITY_MIRROR=http://mirror.example/debian-security\n"
    )
    repo = AptRepo.from_versions(versions, tmp_path, areas=("main",))
    assert repo.root == (tmp_path / "apt" / "bookworm").resolve()
    assert "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] " in repo.sources_text()
    assert "http://mirror.example/debian-security bookworm-security main" in repo.sources_text()


def test_bad_names_are_refused_before_apt_runs(tmp_path: Path) -> None:
    repo = AptRepo(tmp_path, mirror="http://m/debian", release="bookworm")
    with pytest.raises(AptError, match="not a Debian package name"):
        repo.candidate("-o APT::Foo=1")
    with pytest.raises(AptError, match="bad package name pattern"):
        repo.names_matching("linux-image-(")


# -- real apt against a local repository ---------------------------------------------------

needs_apt_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("apt-get", "dpkg-deb", "dpkg-scanpackages")),
    reason="needs apt-get, dpkg-deb and dpkg-scanpackages (a Debian host with dpkg-dev)",
)


@needs_apt_tools
def test_real_apt_against_local_repository(tmp_path: Path) -> None:
    archive = local_archive(
        tmp_path / "archive",
        {
            "linux-image-6.1.0-55-amd64": "6.1.190-1",
            "linux-image-6.1.0-56-amd64": "6.1.192-2",
            "linux-image-6.1.0-56-amd64-dbg": "6.1.192-2",
            "bee-nvidia-smi": "1:535.309.01-0+deb12u1",
        },
    )
    log = tmp_path / "apt.log"
    repo = AptRepo(
        tmp_path / "state",
        mirror=f"file:{archive}",
        release="bookworm",
        areas=("main",),
        trusted=True,
        runner=Runner(log),
    )
    assert not repo.is_updated()
    repo.update()
    assert repo.is_updated()

    assert repo.candidate("bee-nvidia-smi") == "1:535.309.01-0+deb12u1"
    assert repo.available_versions("bee-nvidia-smi") == ["1:535.309.01-0+deb12u1"]
    assert repo.available_versions("no-such-package") == []
    assert repo.has_package("linux-image-6.1.0-56-amd64")
    assert not repo.has_package("linux-image-6.1.0-57-amd64")
    assert repo.names_matching(r"linux-image-6\.1\.0-[0-9]+-amd64") == [
        "linux-image-6.1.0-55-amd64",
        "linux-image-6.1.0-56-amd64",
    ]

    debs = repo.download(["bee-nvidia-smi=1:535.309.01-0+deb12u1"], tmp_path / "debs")
    assert [deb.name for deb in debs] == ["bee-nvidia-smi_1%3a535.309.01-0+deb12u1_all.deb"]
    assert any("apt-get" in line and "download" in line for line in log.read_text().splitlines())

    with pytest.raises(AptError, match="failed"):
        repo.download(["linux-image-6.1.0-57-amd64"], tmp_path / "debs")


@needs_apt_tools
def test_missing_kernel_headers_stop_the_nvidia_build_naming_what_the_mirror_has(
    tmp_path: Path,
) -> None:
    """kbuild.check_headers_on_mirror against a mirror that lacks the pinned ABI."""
    archive = local_archive(
        tmp_path / "archive",
        {
            "linux-headers-6.1.0-97-amd64": "6.1.300-1",
            "linux-headers-6.1.0-98-amd64": "6.1.301-1",
            "linux-headers-6.1.0-98-cloud-amd64": "6.1.301-1",
        },
    )
    repo = AptRepo(
        tmp_path / "state",
        mirror=f"file:{archive}",
        release="bookworm",
        areas=("main",),
        trusted=True,
    )
    with pytest.raises(NvidiaError) as caught:
        check_headers_on_mirror("6.1.0-99-amd64", repo)
    message = str(caught.value)
    assert message.startswith("linux-headers-6.1.0-99-amd64 is not on file:")
    assert "linux-headers-6.1.0-97-amd64, linux-headers-6.1.0-98-amd64;" in message
    assert "cloud" not in message
    assert "the newest is linux-headers-6.1.0-98-amd64 (nox -s bump_kernel)" in message


@given(
    st.lists(
        st.one_of(st.sampled_from(POLICY_NVIDIA_SMI.splitlines(keepends=True)), st.text()),
        max_size=12,
    ).map("".join)
)
def test_policy_parsers_never_raise(text: str) -> None:
    """Real `apt-cache policy` lines among arbitrary text. They give only what the text says:
    one word each, copied from it; nothing without the `Candidate:` line or the
    `Version table:`; each version once."""
    candidate = parse_policy_candidate(text)
    if "Candidate" not in text:
        assert candidate is None
    assert candidate is None or (candidate in text and candidate == candidate.strip())
    assert parse_policy_versions(text) == [] or "Version table:" in text
    tabled = "  Version table:\n" + text
    for versions in (parse_policy_versions(text), parse_policy_versions(tabled)):
        assert len(set(versions)) == len(versions)
        assert all(v and v in text and not any(c.isspace() for c in v) for v in versions)


@given(st.lists(st.sampled_from(POLICY_NVIDIA_SMI.splitlines(keepends=True))))
def test_policy_versions_on_reordered_real_lines(lines: list[str]) -> None:
    for version in parse_policy_versions("".join(lines)):
        assert version in ("535.309.01-0+deb12u1", "535.261.03-1")
