"""A private apt configuration: query and fetch Debian packages without touching the host's.

The build host's own sources may name only `main` (or another release, or nothing useful), and
the image needs `non-free` packages and exact kernel ABIs from the mirror pinned in VERSIONS.
`AptRepo` gives apt its own sources list, lists directory, cache and preferences under `dist/`
(`-o Dir::Etc::SourceList=...` and friends), so `apt-get update`, `apt-cache` and
`apt-get download` see exactly the configured mirror and areas. `install()` is the one call that
changes the host: it installs packages (kernel headers) from the configured mirror.

    repo = AptRepo.from_versions(load_versions(), Path("dist"))
    repo.update()
    repo.candidate("nvidia-smi")                    # '535.309.01-0+deb12u1' or None
    repo.names_matching(r"linux-image-6\\.1\\.0-[0-9]+-amd64")
    repo.download(["nvidia-smi"], Path("dist/debs"))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from buildtools import hosttools
from buildtools.pins.versions import Versions
from buildtools.runner import CommandError, Runner

DEFAULT_AREAS = ("main", "contrib", "non-free", "non-free-firmware")
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Package names per Debian policy: lower case letters, digits, + - . (at least two chars).
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class AptError(Exception):
    """An apt command failed or was asked something it cannot answer; the message is one line."""


def parse_policy_candidate(text: str) -> str | None:
    """The candidate version from `apt-cache policy <pkg>` output, None when there is none.

    Matches the line `  Candidate: 535.309.01-0+deb12u1` (or `  Candidate: (none)`).
    An unknown package prints nothing at all (apt 2.6).
    """
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key == "Candidate":
            value = value.strip()
            return None if not value or value == "(none)" else value
    return None


def parse_policy_versions(text: str) -> list[str]:
    """Every version in the `Version table:` of `apt-cache policy <pkg>`, in apt's order.

    Version lines are indented five columns (` *** ` marks the installed one):
    `     535.309.01-0+deb12u1 500`; the source lines under them are indented eight:
    `        500 http://deb.debian.org/debian-security bookworm-security/non-free amd64 Packages`.
    """
    found: list[str] = []
    in_table = False
    for line in text.splitlines():
        if line.strip() == "Version table:":
            in_table = True
            continue
        if not in_table or len(line) < 6:
            continue
        if line[:5] in ("     ", " *** ") and line[5] != " ":
            version = line[5:].split()[0]
            if version not in found:
                found.append(version)
    return found


def upstream_version(version: str) -> str:
    """`1:535.309.01-0+deb12u1` -> `535.309.01`: the Debian version without epoch or revision."""
    _epoch, _sep, rest = version.rpartition(":")
    upstream, _sep, _revision = rest.rpartition("-")
    return upstream or rest


def filter_names(names: Iterable[str], pattern: str) -> list[str]:
    """Names that match `pattern` as a whole (not just a prefix), sorted and unique."""
    regex = re.compile(pattern)
    return sorted({name for name in names if regex.fullmatch(name.strip())})


def literal_prefix(pattern: str) -> str:
    """The longest plain prefix of a regex, for `apt-cache pkgnames <prefix>` (may be empty)."""
    prefix = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in ".-+":
            prefix.append(pattern[index + 1])
            index += 2
            continue
        if char.isalnum() or char == "-":
            prefix.append(char)
            index += 1
            continue
        break
    # A quantifier after the last literal makes that literal optional: drop it.
    if index < len(pattern) and pattern[index] in "?*{" and prefix:
        prefix.pop()
    return "".join(prefix)


class AptRepo:
    """apt pointed at one mirror (plus its security mirror) with its own state under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        mirror: str,
        release: str,
        security_mirror: str | None = None,
        areas: Sequence[str] = DEFAULT_AREAS,
        keyring: Path | None = DEFAULT_KEYRING,
        trusted: bool = False,
        runner: Runner | None = None,
        timeout_s: float = 900,
    ) -> None:
        if not areas:
            raise AptError("no archive areas given")
        self.root = Path(root).resolve()
        self.mirror = mirror.rstrip("/")
        self.release = release
        self.security_mirror = security_mirror.rstrip("/") if security_mirror else None
        self.areas = tuple(areas)
        self.keyring = keyring
        self.trusted = trusted
        # No runner: a command-line query (kernel check) with nowhere to log to.
        self.runner = runner or Runner(None)
        self.timeout_s = timeout_s

    @classmethod
    def from_versions(
        cls,
        versions: Versions,
        dist_dir: Path,
        *,
        areas: Sequence[str] = DEFAULT_AREAS,
        runner: Runner | None = None,
    ) -> AptRepo:
        """The mirror, security mirror and release pinned in VERSIONS; state in dist/apt/."""
        release = versions["DEBIAN_RELEASE"]
        return cls(
            Path(dist_dir) / "apt" / release,
            mirror=versions["DEBIAN_MIRROR"],
            security_mirror=versions.get("DEBIAN_SECURITY_MIRROR") or None,
            release=release,
            areas=areas,
            runner=runner,
        )

    # -- configuration ---------------------------------------------------------------------

    @property
    def sources_file(self) -> Path:
        return self.root / "sources.list"

    @property
    def lists_dir(self) -> Path:
        return self.root / "lists"

    def sources_text(self) -> str:
        """The one-line-style sources list: release and -updates from the mirror, -security."""
        options = []
        if self.trusted:
            options.append("trusted=yes")
        elif self.keyring is not None:
            options.append(f"signed-by={self.keyring}")
        opts = f"[{' '.join(options)}] " if options else ""
        areas = " ".join(self.areas)
        lines = [
            "# Written by buildtools/pins/aptrepo.py; private to the bee build, not the host's.",
            f"deb {opts}{self.mirror} {self.release} {areas}",
        ]
        if self.security_mirror:
            lines.append(f"deb {opts}{self.mirror} {self.release}-updates {areas}")
            lines.append(f"deb {opts}{self.security_mirror} {self.release}-security {areas}")
        return "\n".join(lines) + "\n"

    def apt_options(self) -> list[str]:
        """`-o` options that make apt use only this configuration's sources and state."""
        settings = {
            "Dir::Etc::SourceList": self.sources_file,
            "Dir::Etc::SourceParts": self.root / "sources.list.d",
            # Host pins must not change which version we call the candidate.
            "Dir::Etc::Preferences": self.root / "preferences",
            "Dir::Etc::PreferencesParts": self.root / "preferences.d",
            "Dir::State::Lists": self.lists_dir,
            "Dir::Cache": self.root / "cache",
            "Acquire::Languages": "none",
            # Downloads land in directories we own; the _apt sandbox user may not reach them.
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else os.environ.get("USER", ""),
        }
        argv: list[str] = []
        for key, value in settings.items():
            if value == "":
                continue
            argv += ["-o", f"{key}={value}"]
        return argv

    def write_config(self) -> None:
        for sub in ("sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.sources_file.write_text(self.sources_text(), encoding="utf-8")

    # -- commands --------------------------------------------------------------------------

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        """stdout of `tool` with this configuration (stderr goes to the log and the error)."""
        if not self.sources_file.exists():
            self.write_config()
        try:
            result = self.runner.run(
                [tool, *self.apt_options(), *args],
                cwd=cwd,
                timeout_s=self.timeout_s,
                name=f"{tool} {args[-1]}",  # not the dozen -o options before it
            )
        except CommandError as exc:
            raise AptError(str(exc)) from None
        return result.stdout

    def update(self) -> None:
        """Write the configuration and fetch the package lists (network)."""
        self.write_config()
        self._apt("apt-get", "-q", "update")

    def is_updated(self) -> bool:
        return self.lists_dir.is_dir() and any(self.lists_dir.glob("*_Packages*"))

    def ensure_updated(self) -> None:
        if not self.is_updated():
            self.update()

    def candidate(self, package: str) -> str | None:
        """The version apt would pick for `package` from this configuration, None if none."""
        _check_name(package)
        return parse_policy_candidate(self._apt("apt-cache", "policy", package))

    def available_versions(self, package: str) -> list[str]:
        """All versions of `package` this configuration offers, apt's order (newest first)."""
        _check_name(package)
        return parse_policy_versions(self._apt("apt-cache", "policy", package))

    def has_package(self, package: str) -> bool:
        """Whether a real (installable, not purely virtual) package of this exact name exists."""
        return self.candidate(package) is not None

    def names_matching(self, pattern: str) -> list[str]:
        """Real package names matching `pattern` in full (`linux-image-6\\.1\\.0-[0-9]+-amd64`)."""
        try:
            re.compile(pattern)
        except re.error as exc:
            raise AptError(f"bad package name pattern {pattern!r}: {exc}") from None
        prefix = literal_prefix(pattern)
        args = ("pkgnames", prefix) if prefix else ("pkgnames",)
        return filter_names(self._apt("apt-cache", *args).splitlines(), pattern)

    def download(self, packages: Sequence[str], dest: Path) -> list[Path]:
        """`apt-get download` each `name` or `name=version` into `dest`; returns the .deb paths."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for spec in packages:
            _check_name(spec.partition("=")[0])
        if not packages:
            return []
        self._apt("apt-get", "-q", "download", *packages, cwd=dest)
        found: list[Path] = []
        for spec in packages:
            name, _sep, version = spec.partition("=")
            # apt writes an epoch's colon as %3a in file names.
            version_glob = version.replace(":", "%3a") if version else "*"
            debs = sorted(dest.glob(f"{name}_{version_glob}_*.deb"))
            if not debs:
                raise AptError(f"apt-get download {spec} left no {name}_*.deb in {dest}")
            found.extend(debs)
        return found

    def install(self, packages: Sequence[str]) -> None:
        """Install packages on this host from this configuration (needs root)."""
        for spec in packages:
            _check_name(spec.partition("=")[0])
        if os.geteuid() != 0:
            raise AptError(f"installing {' '.join(packages)} needs root")
        self._apt(*hosttools.install_command(packages))


def _check_name(name: str) -> None:
    if not _PACKAGE_NAME.match(name):
        raise AptError(f"not a Debian package name: {name!r}")
