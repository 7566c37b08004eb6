"""dist/netboot/: the built ISO's kernel, initrd and squashfs, with boot configurations.

    python3 -m buildtools.netboot.artefacts --iso dist/bee-<v>-amd64.iso --url http://10.0.0.5/bee
    nox -s build_netboot -- [same options]        (builds the ISO first when none is given)

Nothing is built twice: the three files are copied out of the ISO (xorriso), so the netboot
image is the ISO's image bit for bit (same pins, agent, units, SSH policy). Written:

    vmlinuz, initrd.img, filesystem.squashfs   from the ISO's live/
    boot.ipxe                                  iPXE script (chainloaded or from TFTP)
    pxelinux.cfg/default                       PXELINUX (BIOS PXE without iPXE)
    grub/grub.cfg                              GRUB netboot (UEFI PXE / HTTP boot without iPXE)
    SHA256SUMS                                 of everything above

live-boot takes the squashfs with `fetch=URL` and busybox wget, which resolves no names: the
URL must name the server by IP address. The squashfs is fetched into RAM; the initrd stays the
ISO's small one.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import shutil
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from buildtools import hosttools
from buildtools.pins.versions import REPO_ROOT
from buildtools.runner import CommandError, Runner

FILES = {"vmlinuz": "/live/vmlinuz", "initrd.img": "/live/initrd.img"}
SQUASHFS = "filesystem.squashfs"
_CHUNK = 1 << 20


class NetbootError(Exception):
    """The artefacts cannot be made; one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Netboot:
    directory: Path
    url: str  # where the directory is served, http://<IP>[:port]/<path>
    append: str  # kernel arguments, without the fetch= and the console


def check_url(url: str) -> str:
    """An http URL whose host is an IP address (busybox wget in the initrd resolves no names)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise NetbootError(f"{url!r}: live-boot fetches over http:// only")
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        raise NetbootError(
            f"{url!r}: the server must be named by its IP address, not a host name "
            "(live-boot's busybox wget resolves no names)"
        ) from None
    return url.rstrip("/")


def kernel_arguments(iso_append: str, url: str, extra: str = "") -> str:
    """The ISO menu's own arguments with the squashfs fetched from `url` (no `quiet`)."""
    words = [w for w in iso_append.split() if w not in ("quiet", "splash")]
    words = [w for w in words if not w.startswith("fetch=")]
    return " ".join([*words, f"fetch={url}/{SQUASHFS}", *extra.split()])


def ipxe_script(url: str, arguments: str) -> str:
    return (
        "#!ipxe\n"
        "# bee netboot (buildtools/netboot/artefacts.py). Fetched by iPXE from TFTP or HTTP.\n"
        "echo bee: loading the kernel and initrd from " + url + "\n"
        f"kernel {url}/vmlinuz initrd=initrd.img {arguments} BOOTIF=01-${{net0/mac:hexhyp}}\n"
        f"initrd {url}/initrd.img\n"
        "boot\n"
    )


def pxelinux_config(url: str, arguments: str) -> str:
    # IPAPPEND 2 adds BOOTIF=01-<mac> of the NIC that PXE-booted.
    return (
        "# bee netboot for PXELINUX (BIOS PXE without iPXE); vmlinuz and initrd.img beside\n"
        "# pxelinux.0 on the TFTP server, the squashfs over HTTP.\n"
        "DEFAULT bee\n"
        "TIMEOUT 50\n"
        "LABEL bee\n"
        "  KERNEL vmlinuz\n"
        f"  APPEND initrd=initrd.img {arguments}\n"
        "  IPAPPEND 2\n"
    )


def grub_config(url: str, arguments: str) -> str:
    return (
        "# bee netboot for GRUB (UEFI PXE, or UEFI HTTP boot of grubnetx64.efi): kernel and\n"
        "# initrd from the same server GRUB came from, the squashfs over HTTP.\n"
        "set timeout=5\n"
        'menuentry "bee hardware audit (netboot)" {\n'
        f"  linux ($root)/vmlinuz {arguments} BOOTIF=01-$net_default_mac\n"
        "  initrd ($root)/initrd.img\n"
        "}\n"
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def iso_append(iso: Path, work: Path, runner: Runner) -> str:
    """The live entry's kernel arguments from the ISO's isolinux menu."""
    from buildtools.vm.qemu import parse_isolinux_append  # the one parser of that menu

    menu = work / "live.cfg"
    _xorriso(iso, ["-extract", "/isolinux/live.cfg", str(menu)], runner)
    parsed = parse_isolinux_append(menu.read_text(encoding="utf-8", errors="replace"))
    menu.unlink()
    if parsed is None:
        raise NetbootError(f"{iso}: /isolinux/live.cfg has no live entry")
    return parsed[2]


def make_netboot(
    iso: Path,
    out: Path,
    url: str,
    runner: Runner,
    *,
    extra: str = "",
    arguments_from: Callable[[str], str] | None = None,
) -> Netboot:
    """Fill `out` (replaced whole) from the ISO; the configurations point at `url`.
    `arguments_from` may rewrite the ISO's own kernel arguments first (the VM test's console)."""
    url = check_url(url)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        append = iso_append(iso, partial, runner)
        actions = []
        for name, inside in {**FILES, SQUASHFS: f"/live/{SQUASHFS}"}.items():
            actions += ["-extract", inside, str(partial / name)]
        _xorriso(iso, actions, runner)
        arguments = kernel_arguments(
            arguments_from(append) if arguments_from else append, url, extra
        )
        (partial / "boot.ipxe").write_text(ipxe_script(url, arguments))
        (partial / "pxelinux.cfg").mkdir()
        (partial / "pxelinux.cfg/default").write_text(pxelinux_config(url, arguments))
        (partial / "grub").mkdir()
        (partial / "grub/grub.cfg").write_text(grub_config(url, arguments))
        files = sorted(p for p in partial.rglob("*") if p.is_file())
        (partial / "SHA256SUMS").write_text(
            "".join(f"{sha256(p)}  {p.relative_to(partial)}\n" for p in files)
        )
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Netboot(directory=out, url=url, append=append)


def _xorriso(iso: Path, actions: list[str], runner: Runner) -> None:
    try:
        runner.run(["xorriso", "-osirrox", "on", "-indev", str(iso), *actions], timeout_s=600)
    except CommandError as exc:
        raise NetbootError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s build_netboot --",
        description="Lay the ISO's kernel, initrd and squashfs out for PXE/iPXE and HTTP.",
    )
    parser.add_argument("--iso", type=Path, required=True, help="the built bee ISO")
    parser.add_argument(
        "--url", required=True, help="where dist/netboot/ will be served: http://<IP>/<path>"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist" / "netboot")
    parser.add_argument("--append", default="", help="more kernel arguments (bee.upload=...)")
    args = parser.parse_args(argv)
    try:
        with Runner(args.out.parent / "logs" / "netboot.log") as runner:
            hosttools.ensure("build_netboot", runner)  # xorriso, before the ISO is read
            made = make_netboot(args.iso, args.out, args.url, runner, extra=args.append)
    except (NetbootError, hosttools.HostToolsError, CommandError) as exc:
        print(f"build_netboot: {exc}", file=sys.stderr)
        return 1
    sizes = {p.name: p.stat().st_size for p in made.directory.iterdir() if p.is_file()}
    for name in ("vmlinuz", "initrd.img", SQUASHFS):
        print(f"build_netboot: {name}: {sizes[name] / 1024**2:.1f} MiB")
    print(f"build_netboot: {made.directory} (serve it at {made.url}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
