"""Read iso/builder/VERSIONS, the one place where the image's pins live."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "iso" / "builder" / "VERSIONS"

_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
REQUIRED = ("DEBIAN_RELEASE", "DEBIAN_KERNEL_ABI", "DEBIAN_MIRROR", "DEBIAN_SECURITY_MIRROR")


class VersionsError(Exception):
    """VERSIONS is missing, malformed or lacks a required key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Versions:
    values: dict[str, str]
    path: Path

    def __getitem__(self, key: str) -> str:
        try:
            return self.values[key]
        except KeyError:
            raise VersionsError(f"{self.path}: {key} is not set") from None

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def kernel_abi(self) -> str:
        return self["DEBIAN_KERNEL_ABI"]


def parse_versions(text: str, path: Path = VERSIONS_FILE) -> Versions:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise VersionsError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        key, value = match.groups()
        values[key] = value.strip().strip("\"'")
    versions = Versions(values=values, path=path)
    for key in REQUIRED:
        if not values.get(key):
            raise VersionsError(f"{path}: {key} is not set")
    return versions


def load_versions(path: Path = VERSIONS_FILE) -> Versions:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VersionsError(f"cannot read {path}: {exc.strerror}") from None
    return parse_versions(text, path)


def replace_value(text: str, key: str, value: str) -> str:
    """Rewrite one KEY=VALUE line in VERSIONS text, keeping comments and order."""
    pattern = re.compile(rf"^{re.escape(key)}=.*$", re.MULTILINE)
    if not pattern.search(text):
        raise VersionsError(f"{key} is not in VERSIONS")
    return pattern.sub(f"{key}={value}", text, count=1)
