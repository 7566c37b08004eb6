"""live-build and debootstrap as new as the image's release needs, on any Debian host.

A Debian 12 host's live-build (1:20230502) and debootstrap (1.0.128) predate Debian 13: the
image is built with the release's own, taken from its archive. When the host's installed version
is older than the candidate in the image release's archive (the private apt configuration of
buildtools/pins/aptrepo.py), that candidate's .deb is downloaded into dist/release-tools/ and
installed with `dpkg -i` (both are `Architecture: all` shell scripts); what they depend on
(`distro-info`, `cpio`, `wget`) comes from the host's own apt first. Seen working on a Debian 12
host: live-build 1:20250505+deb13u1 with debootstrap 1.0.141 (docs/image.md). A host already
running the image's release has them at that version and nothing changes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from buildtools.pins.aptrepo import AptRepo
from buildtools.runner import Runner

TOOLS = ("debootstrap", "live-build")  # debootstrap first: live-build depends on it
# What those two depend on, installed from the host's own release.
HOST_DEPENDENCIES = ("distro-info", "cpio", "wget")
APT_TIMEOUT_S = 900


class ReleaseToolsError(Exception):
    """The host's build tools could not be brought to the release's versions; one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolVersions:
    package: str
    installed: str | None
    wanted: str | None


def installed_version(package: str) -> str | None:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    # "ii  1.0.141": the status abbreviation is three characters, the last one often a space.
    words = result.stdout.split()
    if result.returncode != 0 or len(words) != 2 or not words[0].startswith("ii"):
        return None
    return words[1]


def older(installed: str | None, wanted: str) -> bool:
    """dpkg's own version order: is `installed` (None: absent) older than `wanted`?"""
    if installed is None:
        return True
    result = subprocess.run(
        ["dpkg", "--compare-versions", installed, "lt", wanted], capture_output=True, check=False
    )
    return result.returncode == 0


def plan(repo: AptRepo) -> list[ToolVersions]:
    return [
        ToolVersions(package=name, installed=installed_version(name), wanted=repo.candidate(name))
        for name in TOOLS
    ]


def ensure_release_tools(repo: AptRepo, cache_dir: Path, runner: Runner) -> dict[str, str | None]:
    """Install the release's debootstrap and live-build where the host's are older.

    Returns the versions in use afterwards ({package: version}).
    """
    tools = plan(repo)
    missing = [t.package for t in tools if t.wanted is None]
    if missing:
        raise ReleaseToolsError(
            f"the {repo.release} archive on {repo.mirror} has no {', '.join(missing)}"
        )
    stale = [t for t in tools if t.wanted and older(t.installed, t.wanted)]
    if stale:
        runner.say(
            "bringing the host's build tools to "
            + ", ".join(f"{t.package} {t.wanted} (was {t.installed or 'absent'})" for t in stale)
            + f" from {repo.release}"
        )
        runner.run(
            ["apt-get", "-q", "-y", "--no-install-recommends", "install", *HOST_DEPENDENCIES],
            timeout_s=APT_TIMEOUT_S,
        )
        debs = repo.download(
            [f"{t.package}={t.wanted}" for t in stale], Path(cache_dir) / "release-tools"
        )
        runner.run(["dpkg", "-i", *[str(deb) for deb in debs]], timeout_s=APT_TIMEOUT_S)
    now = {t.package: installed_version(t.package) for t in tools}
    for tool in tools:
        if tool.wanted and older(now[tool.package], tool.wanted):
            raise ReleaseToolsError(
                f"{tool.package} is {now[tool.package]} after installing {tool.wanted}"
            )
    return now
