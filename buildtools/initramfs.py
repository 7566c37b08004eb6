"""A small busybox initramfs for a QEMU boot that checks a kernel or captures fixtures.

The NVIDIA boot check (nvidia/bootcheck.py) and the fixture capture scripts (fixtures/
capture-qemu-*.py) each boot a Debian kernel with a tree of their own; this module builds
such a tree and packs it without a cpio binary:

- `busybox_tree`: the folders, busybox in bin/ and a link per applet;
- `copy_host_file`: a host file at its own path in the tree (links resolved);
- `ldd_paths`: the libraries `ldd` names, to copy beside a host binary;
- `parse_modules_dep`, `load_order`, `copy_module`: in-tree kernel modules with their
  dependencies first, unpacked (busybox insmod loads only plain ELF);
- `write_init` and `newc_archive`: /init and the archive the kernel unpacks (`pack`: both);
- `unpack_serial_tar`: what a capture guest sent back, a tar in base64 over its second serial
  port, framed by BEGIN/END lines where the firmware writes on that port too (OVMF).

Imports nothing else from buildtools.
"""

from __future__ import annotations

import base64
import gzip
import io
import lzma
import os
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

# Debian 13 ships its in-tree modules xz-compressed (drm.ko.xz).
_COMPRESSED = {".xz": lzma.decompress, ".gz": gzip.decompress}


def busybox_tree(tree: Path, busybox: Path, applets: Iterable[str], dirs: Iterable[str]) -> None:
    """Create `dirs` under `tree`, busybox as bin/busybox and bin/<applet> links to it."""
    for sub in ("bin", *dirs):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    target = tree / "bin/busybox"
    target.write_bytes(Path(busybox).read_bytes())
    target.chmod(0o755)
    for applet in sorted(set(applets) - {"busybox"}):
        link = tree / "bin" / applet
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")


def busybox_applets(listing: str, leave_out: Iterable[str] = ()) -> list[str]:
    """The applets of `busybox --list` output, less those a real tool in the tree replaces."""
    skip = {*leave_out, "busybox"}
    return [name for name in listing.split() if name not in skip]


def copy_host_file(tree: Path, path: Path | str) -> Path:
    """Copy a host file to the same path inside `tree` (its content, not a link)."""
    source = Path(path)
    target = tree / source.relative_to(source.anchor)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), target)
    return target


def ldd_paths(output: str) -> set[Path]:
    """The absolute paths in `ldd` output: `libc.so.6 => /lib/.../libc.so.6 (0x...)` and the
    loader's own `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1` has none."""
    return {Path(word) for line in output.splitlines() for word in line.split() if word[:1] == "/"}


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """`kernel/drivers/gpu/drm/drm_kms_helper.ko: kernel/drivers/gpu/drm/drm.ko ...`."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        module, sep, rest = line.partition(":")
        if sep:
            deps[module.strip()] = rest.split()
    return deps


def module_stem(path: str) -> str:
    """`kernel/drivers/gpu/drm/drm_kms_helper.ko.xz` -> `drm_kms_helper`."""
    name = Path(path).name
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko")


def load_order(wanted: Iterable[str], deps: dict[str, list[str]]) -> list[str]:
    """Module paths for the module names `wanted`, dependencies first, each once.

    A name that is not in `deps` raises KeyError naming it."""
    by_name = {module_stem(path).replace("-", "_"): path for path in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key not in by_name:
            raise KeyError(name)
        visit(by_name[key])
    return order


def copy_module(source: Path, dest_dir: Path) -> str:
    """Write the module at `source` as `dest_dir/<stem>.ko`, unpacked; returns that name."""
    name = module_stem(str(source)) + ".ko"
    data = source.read_bytes()
    unpack = _COMPRESSED.get(source.suffix)
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / name).write_bytes(unpack(data) if unpack else data)
    return name


def write_init(tree: Path, script: str) -> None:
    init = tree / "init"
    init.write_text(script)
    init.chmod(0o755)


def pack(tree: Path, script: str, dest: Path) -> Path:
    """`script` as the tree's /init, and the tree as an uncompressed initramfs at `dest`."""
    write_init(tree, script)
    dest.write_bytes(newc_archive(tree))
    return dest


def newc_archive(tree: Path) -> bytes:
    """The tree as a cpio "newc" archive, the initramfs format (no cpio binary needed)."""
    out = bytearray()

    def entry(name: str, mode: int, data: bytes, ino: int) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out.extend(b"070701" + b"".join(b"%08X" % value for value in fields) + encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    paths = sorted(tree.rglob("*"))
    for ino, path in enumerate(paths, start=1):
        rel = path.relative_to(tree).as_posix()
        info = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        elif path.is_file():
            data = path.read_bytes()
        else:
            data = b""
        entry(rel, info.st_mode, data, ino)
    entry("TRAILER!!!", 0, b"", 0)
    return bytes(out)


SERIAL_BEGIN, SERIAL_END = b"BEE-B64-BEGIN", b"BEE-B64-END"


class SerialDataError(Exception):
    """The guest sent no readable tar (it crashed, timed out or was cut)."""


def unpack_serial_tar(data: bytes, target: Path) -> None:
    """Extract the base64 tar the guest wrote to its serial port into `target`."""
    if SERIAL_BEGIN in data:
        data = data.split(SERIAL_BEGIN, 1)[1].split(SERIAL_END, 1)[0]
    encoded = b"".join(data.split())
    if not encoded:
        raise SerialDataError("no data came back")
    try:
        raw = base64.b64decode(encoded, validate=True)
        with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
            archive.extractall(target, filter="data")
    except (ValueError, tarfile.TarError) as exc:
        raise SerialDataError(f"unreadable data: {exc}") from None
