"""Build the NVIDIA kernel modules for the pinned Debian kernel and assemble the cache entry.

    make -C <module source> -j<N> modules KERNEL_UNAME=<ABI> CC=<compiler the kernel was built
    with, from CONFIG_CC_VERSION_TEXT in /lib/modules/<ABI>/build/.config: gcc-12 on bookworm>

Every .ko is then checked: the first word of `modinfo -F vermagic` must be the pinned ABI, and
`modinfo -F version` (where the module has one) the pinned driver version. The user space is
checked too: each binary and library must be an ELF file that carries the pinned version string,
`ldd` must resolve all of nvidia-smi's libraries from the entry's lib/, and nvidia-smi must get
past loading libnvidia-ml (on a host without the driver it says it cannot talk to the driver).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from buildtools.nvidia.buildroot import KernelBuildRoot
from buildtools.nvidia.sources import DriverTree
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptRepo
from buildtools.pins.kernel import KernelError, abi_series, split_abi
from buildtools.runner import Runner

# insmod order: nvidia first; modeset and uvm need its symbols; drm needs modeset.
MODULE_ORDER = ("nvidia", "nvidia-modeset", "nvidia-uvm", "nvidia-drm", "nvidia-peermem")
ELF_MAGIC = b"\x7fELF"
# nvidia-smi's exit codes (nvidia-smi(1)): 9 = cannot talk to the driver, 6 = no GPU found,
# 12 = NVML shared library not found.
SMI_NO_LIBRARY = 12
SMI_LIBRARY_MESSAGE = "couldn't find libnvidia-ml"


def headers_dir(kernel_abi: str) -> Path:
    return Path("/lib/modules") / kernel_abi / "build"


def check_abi(kernel_abi: str) -> None:
    """NvidiaError unless `kernel_abi` is a Debian kernel ABI (6.12.118+deb13-amd64)."""
    try:
        split_abi(kernel_abi)
    except KernelError as exc:
        raise NvidiaError(f"DEBIAN_KERNEL_ABI: {exc}") from None


def headers_pattern(kernel_abi: str) -> str:
    check_abi(kernel_abi)
    return f"linux-headers-{abi_series(kernel_abi)}"


def check_headers_on_mirror(kernel_abi: str, repo: AptRepo) -> None:
    """Stop, naming what the mirror has, when linux-headers-<ABI> is not on it."""
    package = f"linux-headers-{kernel_abi}"
    repo.ensure_updated()
    if not repo.has_package(package):
        offered = repo.names_matching(headers_pattern(kernel_abi))
        newest = max(offered, key=_abi_key, default=None)
        hint = f"; the newest is {newest} (nox -s bump_kernel)" if newest else ""
        raise NvidiaError(
            f"{package} is not on {repo.mirror}: it offers "
            f"{', '.join(offered) or 'no linux-headers for this kernel series'}{hint}"
        )


def ensure_headers(kernel_abi: str, repo: AptRepo, where: KernelBuildRoot) -> str:
    """linux-headers-<ABI> where make runs: present, or installed on the host (a build root
    has them unpacked by buildroot.py)."""
    build = where.path(headers_dir(kernel_abi))
    if (build / "Makefile").is_file() and (build / ".config").is_file():
        note = f" (build root: the host is not {where.release})" if where.root else ""
        return f"{build} present{note}"
    package = f"linux-headers-{kernel_abi}"
    check_headers_on_mirror(kernel_abi, repo)
    if where.root is not None:
        raise NvidiaError(f"the build root {where.root} has no {build}/Makefile")
    if os.geteuid() != 0:
        raise NvidiaError(f"{package} is not installed and installing it needs root")
    repo.install([package])
    if not (build / "Makefile").is_file():
        raise NvidiaError(f"{package} is installed but {build}/Makefile is missing")
    return f"installed {package}"


def _abi_key(name: str) -> tuple[int, int, int, int]:
    try:
        return split_abi(name.removeprefix("linux-headers-"))[0]
    except KernelError:
        return (-1, -1, -1, -1)


def kernel_config(kernel_abi: str, where: KernelBuildRoot) -> dict[str, str]:
    """The pinned kernel's .config (from its headers, where make runs): name -> raw value."""
    config = where.path(headers_dir(kernel_abi)) / ".config"
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NvidiaError(f"cannot read {config}: {exc.strerror}") from None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            values[key] = value.strip()
    return values


def kernel_compiler(kernel_abi: str, where: KernelBuildRoot) -> str:
    """The compiler named by the kernel's CONFIG_CC_VERSION_TEXT, where make runs.

    Debian 12: CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"
    Debian 13: CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"
    """
    value = kernel_config(kernel_abi, where).get("CONFIG_CC_VERSION_TEXT")
    if value is None:
        raise NvidiaError(
            f"{where.path(headers_dir(kernel_abi))}/.config has no CONFIG_CC_VERSION_TEXT"
        )
    words = value.strip('"').split()
    if not words:
        raise NvidiaError(f"CONFIG_CC_VERSION_TEXT of {kernel_abi} is empty")
    compiler = words[0]
    search = None if where.root is None else f"{where.root}/usr/bin"
    if shutil.which(compiler, path=search) is None:
        raise NvidiaError(
            f"the kernel was built with {value}, but {compiler} is not "
            f"installed (apt-get install {compiler})"
        )
    return compiler


# Linux 6.12.97 (and 6.18.40) gave pci_resize_resource() a fourth argument, exclude_bars (a
# mask of BARs not to restore when a resize is rolled back); NVIDIA's open modules at
# 550.163.01 call it with three and fail to build: "too few arguments to function
# 'pci_resize_resource'" (NVIDIA/open-gpu-kernel-modules#1272, Debian's 6.12.100+deb13 on).
# Passing 0 is the old behaviour (restore every BAR). The proprietary tree does not call it.
_RESIZE_PROTOTYPE = re.compile(r"pci_resize_resource\([^;]*\bexclude_bars\s*\)\s*;")
_RESIZE_CALL = "pci_resize_resource(pci_dev, NV_GPU_BAR1, requested_size)"
_RESIZE_FIXED = "pci_resize_resource(pci_dev, NV_GPU_BAR1, requested_size, 0)"


def fit_source_to_kernel(kernel_src: Path, kernel_abi: str, where: KernelBuildRoot) -> list[str]:
    """Adapt the driver source to the pinned kernel's interfaces; what was changed, in words."""
    build = where.path(headers_dir(kernel_abi))
    headers = [build / "include/linux/pci.h", build.parent / "source/include/linux/pci.h"]
    text = next((p.read_text(errors="replace") for p in headers if p.is_file()), "")
    if not _RESIZE_PROTOTYPE.search(text):
        return []
    fixes = []
    for source in sorted(Path(kernel_src).rglob("nv-pci.c")):
        code = source.read_text(errors="replace")
        if _RESIZE_CALL in code:
            source.write_text(code.replace(_RESIZE_CALL, _RESIZE_FIXED))
            fixes.append(
                f"{source.relative_to(kernel_src)}: pci_resize_resource(..., exclude_bars=0) for "
                "the kernel's 4-argument prototype (NVIDIA/open-gpu-kernel-modules#1272)"
            )
    return fixes


def build_modules(
    kernel_src: Path,
    kernel_abi: str,
    compiler: str,
    log: Runner,
    *,
    jobs: int | None = None,
    where: KernelBuildRoot | None = None,
) -> list[Path]:
    """Run the module build with nice (in the build root when there is one); return the .ko
    files it produced, in `kernel_src`."""
    jobs = jobs or max(1, os.cpu_count() or 1)
    where = where or KernelBuildRoot(root=None, release="")
    kernel_src = Path(kernel_src)
    # In a build root the tree is copied in (make must see it under the chroot) and back out.
    inside = kernel_src if where.root is None else Path("/bee-build") / kernel_src.name
    tree = where.path(inside)
    if where.root is not None:
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(kernel_src, tree, symlinks=True)
    try:
        log.run(
            where.argv(
                [
                    "nice",
                    "-n",
                    "10",
                    "make",
                    "-C",
                    str(inside),
                    f"-j{jobs}",
                    "modules",
                    f"KERNEL_UNAME={kernel_abi}",
                    f"CC={compiler}",
                ]
            ),
            env=where.env,
            timeout_s=3600,
        )
        for module in sorted(tree.glob("*.ko")) if where.root is not None else []:
            shutil.copyfile(module, kernel_src / module.name)
    finally:
        if where.root is not None:
            shutil.rmtree(tree, ignore_errors=True)
    modules = sorted(kernel_src.glob("*.ko"))
    if not modules:
        raise NvidiaError(f"make modules in {kernel_src} produced no .ko files")
    return modules


def modinfo(module: Path, field: str, log: Runner) -> str:
    return log.run(["modinfo", "-F", field, module], timeout_s=60).stdout.strip()


def _module_key(name: str) -> str:
    return name.replace("-", "_")


def order_modules(names: list[str]) -> list[str]:
    """File names in insmod order: the known NVIDIA order first, anything else after, sorted."""
    stems = {name.removesuffix(".ko"): name for name in names}
    ordered = [stems[stem] for stem in MODULE_ORDER if stem in stems]
    return ordered + sorted(name for name in names if name not in ordered)


def check_modules(
    modules: list[Path], *, kernel_abi: str, version: str, log: Runner
) -> dict[str, Any]:
    """Vermagic and version of every module; its registered name and dependencies."""
    vermagic: dict[str, str] = {}
    names: dict[str, str] = {}
    depends: dict[str, list[str]] = {}
    versions: dict[str, str] = {}
    for module in modules:
        magic = modinfo(module, "vermagic", log)
        if not magic or magic.split()[0] != kernel_abi:
            raise NvidiaError(
                f"{module.name}: vermagic {magic!r} does not start with the pinned {kernel_abi}"
            )
        module_version = modinfo(module, "version", log)
        if module_version and module_version != version:
            raise NvidiaError(
                f"{module.name}: module version {module_version} is not the pinned {version}"
            )
        vermagic[module.name] = magic
        versions[module.name] = module_version
        names[module.name] = modinfo(module, "name", log) or module.name.removesuffix(".ko")
        raw = modinfo(module, "depends", log)
        depends[module.name] = [dep for dep in raw.split(",") if dep]
    if not any(versions.values()):
        raise NvidiaError(f"no module carries a version to check against {version}")
    # The kernel treats - and _ in module names alike: nvidia-drm depends on "nvidia-modeset",
    # which registers as "nvidia_modeset".
    ours = {_module_key(name) for name in names.values()}
    external = sorted(
        {dep for deps in depends.values() for dep in deps if _module_key(dep) not in ours}
    )
    order = order_modules([module.name for module in modules])
    return {
        "modules": order,
        "module_names": names,
        "module_versions": versions,
        "vermagic": vermagic,
        "depends": depends,
        "external_depends": external,
    }


# -- user space ----------------------------------------------------------------------------


def find_unique(root: Path, name: str, *, elf: bool = True) -> Path | None:
    """The one regular file called `name` under `root`; None if absent.

    With `elf`, only x86-64 ELF files count: a wrapper script is not the binary, and the .run
    installer also carries 32-bit copies of the libraries under 32/.
    """
    found = [
        path
        for path in root.rglob(name)
        if path.is_file() and not path.is_symlink() and (not elf or is_elf_x86_64(path))
    ]
    if len(found) > 1:
        listed = ", ".join(str(path.relative_to(root)) for path in sorted(found))
        raise NvidiaError(f"more than one {name} under {root}: {listed}")
    return found[0] if found else None


def is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def is_elf_x86_64(path: Path) -> bool:
    """ELF, 64-bit class (e_ident[EI_CLASS] == 2), little endian, e_machine EM_X86_64 (62)."""
    with path.open("rb") as handle:
        header = handle.read(20)
    return (
        len(header) == 20
        and header[:4] == ELF_MAGIC
        and header[4] == 2
        and header[5] == 1
        and int.from_bytes(header[18:20], "little") == 62
    )


def carries_version(path: Path, version: str) -> bool:
    return version.encode() in path.read_bytes()


def assemble_user_space(tree: DriverTree, dest: Path, version: str) -> dict[str, Any]:
    """Copy nvidia-smi, nvidia-modprobe, the libraries and the firmware into the entry."""
    binaries = {"nvidia-smi": True, "nvidia-modprobe": False, "nvidia-persistenced": False}
    shipped_bins: list[str] = []
    skipped = dict(tree.skipped)
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    for name, required in binaries.items():
        path = find_unique(tree.root, name)
        if path is None:
            if required:
                raise NvidiaError(
                    f"no {name} ELF binary in the driver (a wrapper script is not enough)"
                )
            skipped.setdefault(name, "not in this driver source")
            continue
        _copy_checked(path, dest / "bin" / name, version, mode=0o755)
        shipped_bins.append(f"bin/{name}")

    libraries: dict[str, str] = {}
    (dest / "lib").mkdir(parents=True, exist_ok=True)
    for stem in ("libnvidia-ml.so", "libcuda.so"):
        versioned = f"{stem}.{version}"
        path = find_unique(tree.root, versioned)
        if path is None:
            raise NvidiaError(f"no {versioned} in the driver (version mismatch?)")
        _copy_checked(path, dest / "lib" / versioned, version, mode=0o644)
        soname = f"{stem}.1"
        (dest / "lib" / soname).symlink_to(versioned)
        libraries[soname] = versioned

    firmware = sorted(
        path for path in tree.root.rglob("gsp_*.bin") if path.is_file() and not path.is_symlink()
    )
    if not firmware:
        raise NvidiaError("no GSP firmware (gsp_*.bin) in the driver")
    fw_dir = dest / "firmware" / "nvidia" / version
    fw_dir.mkdir(parents=True)
    shipped_fw = []
    for path in firmware:
        if version not in path.parts and path.parent.name != "firmware":
            raise NvidiaError(f"GSP firmware {path} is not in a {version}/ directory")
        if (fw_dir / path.name).exists():
            raise NvidiaError(f"two GSP firmware files named {path.name}")
        shutil.copyfile(path, fw_dir / path.name)
        shipped_fw.append(f"firmware/nvidia/{version}/{path.name}")
    return {
        "binaries": shipped_bins,
        "libraries": libraries,
        "firmware": shipped_fw,
        "supported_gpus": copy_supported_gpus(tree.root, dest),
        "skipped": skipped,
    }


# Debian ships it compressed in the nvidia-driver package; the .run installer plain.
SUPPORTED_GPUS_FILES = ("supported-gpus.json.gz", "supported-gpus.json")
SUPPORTED_GPUS = "supported-gpus.json"


def copy_supported_gpus(root: Path, dest: Path) -> dict[str, Any]:
    """The driver's own supported-gpus.json into the entry, uncompressed; its chip counts."""
    for name in SUPPORTED_GPUS_FILES:
        path = find_unique(root, name, elf=False)
        if path is None:
            continue
        data = path.read_bytes()
        if name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise NvidiaError(f"{path.name} does not decompress: {exc}") from None
        try:
            chips = json.loads(data)["chips"]
        except (ValueError, KeyError, TypeError):
            raise NvidiaError(f"{path} is not a supported-gpus.json with a chips list") from None
        if not isinstance(chips, list) or not chips:
            raise NvidiaError(f"{path} lists no chips")
        (dest / SUPPORTED_GPUS).write_bytes(data)
        kernelopen = sum(
            isinstance(c, dict) and "kernelopen" in (c.get("features") or []) for c in chips
        )
        return {
            "file": SUPPORTED_GPUS,
            "from": str(path.relative_to(root)),
            "chips": len(chips),
            "kernelopen": kernelopen,
        }
    raise NvidiaError(
        "the driver has no supported-gpus.json (Debian: nvidia-driver's "
        "usr/share/doc/nvidia-driver/supported-gpus.json.gz; .run: supported-gpus/): "
        "bee-nvidia needs it to pick the module flavour"
    )


def _copy_checked(source: Path, dest: Path, version: str, *, mode: int) -> None:
    if not carries_version(source, version):
        raise NvidiaError(f"{source.name} does not carry the driver version {version}")
    shutil.copyfile(source, dest)
    dest.chmod(mode)


def check_user_space(dest: Path, log: Runner) -> str:
    """ldd resolves nvidia-smi's libraries from lib/, and nvidia-smi gets past loading NVML."""
    env = {"LD_LIBRARY_PATH": str(dest / "lib")}
    for binary in sorted((dest / "bin").iterdir()):
        output = log.run(["ldd", binary], env=env, check=False, timeout_s=60).output
        missing = [line.split()[0] for line in output.splitlines() if "not found" in line]
        if missing:
            raise NvidiaError(f"{binary.name} needs libraries that are missing: {missing}")
    smi = log.run([dest / "bin/nvidia-smi"], env=env, check=False, timeout_s=60)
    code, output = smi.code, smi.output
    if code == SMI_NO_LIBRARY or SMI_LIBRARY_MESSAGE in output:
        raise NvidiaError(f"nvidia-smi cannot load libnvidia-ml.so.1 from lib/: {output.strip()}")
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    return f"exit {code}: {first}"


def strip_debug(modules: list[Path], log: Runner) -> None:
    """`strip --strip-debug`, as Debian's own module packages do (dh_strip): debug info only."""
    log.run(["strip", "--strip-debug", *modules], timeout_s=300)
