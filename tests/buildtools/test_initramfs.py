"""buildtools.initramfs: the tree a kernel-check or capture boot runs from, and its archive.

The modules.dep lines were printed by `depmod -b <unpacked linux-image-6.1.0-56-amd64>
6.1.0-56-amd64` (kmod 30, bookworm) on 2026-11-26.
"""

from __future__ import annotations

import base64
import io
import lzma
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildtools.initramfs import (
    SerialDataError,
    busybox_applets,
    busybox_tree,
    copy_host_file,
    copy_module,
    ldd_paths,
    load_order,
    module_stem,
    newc_archive,
    pack,
    parse_modules_dep,
    unpack_serial_tar,
    write_init,
)

MODULES_DEP = """\
kernel/drivers/acpi/video.ko: kernel/drivers/platform/x86/wmi.ko
kernel/drivers/gpu/drm/display/drm_display_helper.ko: kernel/drivers/media/cec/core/cec.ko \
kernel/drivers/media/rc/rc-core.ko kernel/drivers/gpu/drm/drm_kms_helper.ko \
kernel/drivers/gpu/drm/drm.ko
kernel/drivers/gpu/drm/drm.ko:
kernel/drivers/gpu/drm/drm_kms_helper.ko: kernel/drivers/gpu/drm/drm.ko
kernel/drivers/i2c/algos/i2c-algo-bit.ko:
kernel/drivers/media/rc/rc-core.ko:
kernel/drivers/media/cec/core/cec.ko: kernel/drivers/media/rc/rc-core.ko
kernel/drivers/platform/x86/wmi.ko:
"""


def test_load_order_puts_dependencies_first_once() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    assert deps["kernel/drivers/gpu/drm/drm.ko"] == []
    order = load_order(["drm", "drm_kms_helper", "video"], deps)
    assert order == [
        "kernel/drivers/gpu/drm/drm.ko",
        "kernel/drivers/gpu/drm/drm_kms_helper.ko",
        "kernel/drivers/platform/x86/wmi.ko",
        "kernel/drivers/acpi/video.ko",
    ]
    # - and _ name the same module.
    assert load_order(["rc_core", "rc-core"], deps) == ["kernel/drivers/media/rc/rc-core.ko"]
    with pytest.raises(KeyError, match="ib_core"):
        load_order(["ib_core"], deps)


def test_load_order_reads_debian_13_s_compressed_modules() -> None:
    """Debian 13's modules.dep names .ko.xz files (kernel 6.12.118+deb13)."""
    deps = parse_modules_dep(MODULES_DEP.replace(".ko", ".ko.xz"))
    assert load_order(["drm_kms_helper"], deps) == [
        "kernel/drivers/gpu/drm/drm.ko.xz",
        "kernel/drivers/gpu/drm/drm_kms_helper.ko.xz",
    ]
    assert module_stem("kernel/drivers/media/rc/rc-core.ko.xz") == "rc-core"


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries = {}
    offset = 0
    while True:
        assert data[offset : offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = name_start + namesize
        body += -body % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[body : body + size])
        offset = body + size
        offset += -offset % 4


def test_newc_archive_round_trip(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"\x7fELF" + b"x" * 5)
    (tmp_path / "bin" / "sh").symlink_to("busybox")
    (tmp_path / "init").write_text("#!/bin/sh\n")
    (tmp_path / "init").chmod(0o755)
    entries = _read_newc(newc_archive(tmp_path))
    assert set(entries) == {"bin", "bin/busybox", "bin/sh", "init"}
    assert entries["bin/busybox"][1] == b"\x7fELF" + b"x" * 5
    assert entries["bin/sh"][1] == b"busybox"
    assert entries["init"][0] & 0o777 == 0o755
    assert os.path.isdir(tmp_path / "bin")


def test_busybox_tree_links_each_applet_once(tmp_path: Path) -> None:
    busybox = tmp_path / "bb"
    busybox.write_bytes(b"\x7fELF busybox")
    tree = tmp_path / "tree"
    listing = "sh\nmount\nbusybox\ndmesg\nip\n"
    busybox_tree(tree, busybox, busybox_applets(listing, leave_out=("dmesg",)), ("proc", "out"))
    assert sorted(p.name for p in (tree / "bin").iterdir()) == ["busybox", "ip", "mount", "sh"]
    assert os.readlink(tree / "bin/sh") == "busybox"
    assert (tree / "bin/busybox").stat().st_mode & 0o755 == 0o755
    assert (tree / "proc").is_dir() and (tree / "out").is_dir()


@pytest.mark.skipif(not shutil.which("ldd"), reason="no ldd on this host")
def test_ldd_paths_of_a_real_binary_are_its_libraries() -> None:
    """This host's own ldd on its own ls: every path it names exists, the loader among them."""
    ls = shutil.which("ls")
    assert ls
    output = subprocess.run(["ldd", ls], capture_output=True, text=True, check=True).stdout
    paths = ldd_paths(output)
    assert paths, output
    assert all(path.exists() for path in paths)
    assert any("ld-linux" in path.name for path in paths)
    assert not any("vdso" in str(path) for path in paths)


def test_ldd_paths_of_a_static_binary_is_empty() -> None:
    assert ldd_paths("\tnot a dynamic executable\n") == set()
    assert ldd_paths("\tlibmissing.so.1 => not found\n") == set()


def test_copy_host_file_keeps_its_path_and_mode(tmp_path: Path) -> None:
    source = tmp_path / "host" / "usr" / "bin" / "tool"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"#!/bin/sh\n")
    source.chmod(0o755)
    link = tmp_path / "host" / "tool-link"
    link.symlink_to(source)
    tree = tmp_path / "tree"
    target = copy_host_file(tree, link)
    assert target == tree / link.relative_to("/")
    assert not target.is_symlink() and target.read_bytes() == b"#!/bin/sh\n"
    assert target.stat().st_mode & 0o777 == 0o755


def test_copy_module_unpacks_debian_13_s_xz_modules(tmp_path: Path) -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 8
    packed = tmp_path / "kernel" / "drm.ko.xz"
    packed.parent.mkdir()
    packed.write_bytes(lzma.compress(elf))
    plain = tmp_path / "kernel" / "wmi.ko"
    plain.write_bytes(elf[:64])
    assert copy_module(packed, tmp_path / "mods") == "drm.ko"
    assert copy_module(plain, tmp_path / "mods") == "wmi.ko"
    assert (tmp_path / "mods/drm.ko").read_bytes() == elf
    assert (tmp_path / "mods/wmi.ko").read_bytes() == elf[:64]


def test_pack_writes_init_and_archives_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    dest = pack(tree, "#!/bin/sh\npoweroff -f\n", tmp_path / "initrd.cpio")
    entries = _read_newc(dest.read_bytes())
    assert entries["init"] == (entries["init"][0], b"#!/bin/sh\npoweroff -f\n")
    assert entries["init"][0] & 0o111 == 0o111 and "bin" in entries


def test_write_init_is_executable(tmp_path: Path) -> None:
    write_init(tmp_path, "#!/bin/sh\npoweroff -f\n")
    assert (tmp_path / "init").stat().st_mode & 0o111 == 0o111


def _tar_base64(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    encoded = base64.b64encode(buffer.getvalue())
    # base64(1) wraps at 76 columns, as the guest's busybox does.
    return b"\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\n"


def test_unpack_serial_tar_plain_and_framed(tmp_path: Path) -> None:
    data = _tar_base64({"./fs/proc/cmdline": b"console=ttyS0\n", "./uname.out": b"Linux\n"})
    unpack_serial_tar(data, tmp_path / "plain")
    assert (tmp_path / "plain/fs/proc/cmdline").read_bytes() == b"console=ttyS0\n"
    # OVMF writes its own console on every serial port: only what is between the marks counts.
    noisy = b"BdsDxe: loading Boot0001\r\nBEE-B64-BEGIN\n" + data + b"BEE-B64-END\n\x1b[2J"
    unpack_serial_tar(noisy, tmp_path / "framed")
    assert (tmp_path / "framed/uname.out").read_bytes() == b"Linux\n"


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n", b"BEE-B64-BEGIN\nBEE-B64-END", b"!!!not base64", base64.b64encode(b"no tar")],
)
def test_unpack_serial_tar_says_what_is_wrong(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(SerialDataError):
        unpack_serial_tar(data, tmp_path)


@given(st.binary(max_size=2000))
def test_unpack_serial_tar_raises_only_its_own_error(data: bytes) -> None:
    target = Path("/nonexistent-bee-test-dir")
    try:
        unpack_serial_tar(data, target)
    except SerialDataError:
        pass
    assert not target.exists()


@given(st.text())
def test_modules_dep_parser_never_raises(text: str) -> None:
    deps = parse_modules_dep(text)
    assert all(":" not in name for name in deps)
