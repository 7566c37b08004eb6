"""The NVIDIA build cache: `dist/nvidia-<version>-<kver>/`, its manifest, and sha256 checks.

A cache entry is filled under a temporary name (`dist/.nvidia-<version>-<kver>.partial-<pid>`)
and renamed into place only after its manifest is written, so an interrupted build leaves
nothing that looks valid. An entry counts as a hit only if its manifest parses, was written by
this cache format, records the same inputs (version, flavour, ABI, source, installer digest),
and every file it lists still has the recorded sha256.

Layout (what the ISO builder, buildtools/image/staging.py `inject_nvidia`, copies into the image):

    modules/*.ko                 insmod order in manifest["modules"] (one flavour per entry)
    bin/nvidia-smi  bin/nvidia-modprobe  [bin/nvidia-persistenced]
    lib/libnvidia-ml.so.<v>  lib/libnvidia-ml.so.1 -> ...  lib/libcuda.so.<v>  lib/libcuda.so.1
    firmware/nvidia/<v>/gsp_*.bin
    supported-gpus.json          the driver's own list of chips (bee-nvidia picks the flavour)
    manifest.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildtools.nvidia.steps import NvidiaError

CACHE_FORMAT = 3  # 2: external_depends treats - and _ alike; 3: one entry per flavour, with
# the driver's supported-gpus.json
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, what: str, pin_name: str) -> str:
    """Check `path` against the pinned digest; remove the file and raise if it does not match.

    `expected` empty means nothing is pinned: that is an error too (an unpinned download is
    never used), and the message gives the file's digest so it can be reviewed and pinned.
    """
    actual = sha256_file(path)
    expected = expected.strip().lower()
    if expected == actual:
        return actual
    path.unlink(missing_ok=True)
    if not expected:
        raise NvidiaError(
            f"{what}: {pin_name} is empty in VERSIONS, so the file cannot be trusted; "
            f"its sha256 is {actual} (the file was removed; pin the digest you verified)"
        )
    raise NvidiaError(
        f"{what}: sha256 mismatch: {pin_name} pins {expected} but the file has {actual} "
        "(the file was removed)"
    )


def cache_dir(dist_dir: Path, version: str, kernel_abi: str, flavour: str) -> Path:
    return Path(dist_dir) / f"nvidia-{version}-{kernel_abi}-{flavour}"


def partial_dir(final: Path) -> Path:
    return final.parent / f".{final.name}.partial-{os.getpid()}"


def tree_digests(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(sha256 of every regular file, target of every symlink), relative paths, no manifest."""
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST:
            continue
        if path.is_symlink():
            links[rel] = os.readlink(path)
        elif path.is_file():
            files[rel] = sha256_file(path)
    return files, links


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaBuild:
    """A complete cache entry: its directory and manifest."""

    path: Path
    manifest: dict[str, Any]
    cache_hit: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def module_paths(self) -> list[Path]:
        """The .ko files in insmod order."""
        return [self.path / "modules" / name for name in self.manifest["modules"]]

    def __fspath__(self) -> str:
        """So `Path(ensure_nvidia(...))` is the cache directory (what the ISO builder copies)."""
        return str(self.path)


def load_entry(final: Path, inputs: dict[str, Any]) -> tuple[NvidiaBuild | None, str]:
    """(the entry, "") on a valid hit for `inputs`; (None, why it is a miss) otherwise."""
    manifest_path = final / MANIFEST
    if not final.is_dir():
        return None, f"no cache at {final}"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{final} has no manifest (an interrupted build?)"
    except (OSError, ValueError) as exc:
        return None, f"{manifest_path} is unreadable: {exc}"
    if not isinstance(manifest, dict) or manifest.get("cache_format") != CACHE_FORMAT:
        return None, f"{manifest_path} is from another cache format"
    recorded = manifest.get("inputs")
    if recorded != inputs:
        changed = sorted(
            key
            for key in set(inputs) | set(recorded or {})
            if (recorded or {}).get(key) != inputs.get(key)
        )
        return None, f"inputs changed ({', '.join(changed)})"
    files = manifest.get("sha256")
    links = manifest.get("symlinks", {})
    if not isinstance(files, dict) or not files:
        return None, f"{manifest_path} lists no files"
    for rel, digest in files.items():
        path = final / rel
        if not path.is_file() or path.is_symlink():
            return None, f"{rel} is missing"
        if sha256_file(path) != digest:
            return None, f"{rel} changed since it was built"
    for rel, target in links.items():
        path = final / rel
        if not path.is_symlink() or os.readlink(path) != target:
            return None, f"symlink {rel} is missing or changed"
    return NvidiaBuild(path=final, manifest=manifest, cache_hit=True), ""


FillFn = Callable[[Path], dict[str, Any]]


def build_entry(final: Path, inputs: dict[str, Any], fill: FillFn) -> NvidiaBuild:
    """Fill a fresh temporary directory with `fill(tmp)`, write the manifest, rename into place.

    `fill` returns the manifest fields it knows (modules, names, sources...); this adds the
    inputs, the cache format and the sha256 of every file. If `fill` raises (or the process is
    interrupted) the temporary directory is removed and no entry appears at `final`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = partial_dir(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        fields = fill(tmp)
        files, links = tree_digests(tmp)
        manifest = {
            "cache_format": CACHE_FORMAT,
            **fields,
            "inputs": inputs,
            "sha256": files,
            "symlinks": links,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return NvidiaBuild(path=final, manifest=manifest, cache_hit=False)


def _replace_dir(new: Path, final: Path) -> None:
    """Rename `new` to `final`; an old `final` is moved aside first and then deleted."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    new.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_partials(final: Path) -> list[Path]:
    """Delete temporary dirs that earlier, interrupted builds of this entry left behind."""
    removed = []
    for pattern in (f".{final.name}.partial-*", f".{final.name}.old-*"):
        for stale in final.parent.glob(pattern):
            pid = stale.name.rpartition("-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                continue  # another build of the same entry is running right now
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
