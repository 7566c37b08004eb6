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

import os
import re
import shutil
from pathlib import Path
from typing import Any

from buildtools.nvidia.sources import DriverTree
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.aptrepo import AptRepo
from buildtools.runner import Runner

# insmod order: nvidia first; modeset and uvm need its symbols; drm needs modeset.
MODULE_ORDER = ("nvidia", "nvidia-modeset", "nvidia-uvm", "nvidia-drm", "nvidia-peermem")
_ABI = re.compile(r"^(\d+\.\d+\.\d+)-(\d+)-([a-z0-9][a-z0-9-]*)$")
ELF_MAGIC = b"\x7fELF"
# nvidia-smi's exit codes (nvidia-smi(1)): 9 = cannot talk to the driver, 6 = no GPU found,
# 12 = NVML shared library not found.
SMI_NO_LIBRARY = 12
SMI_LIBRARY_MESSAGE = "couldn't find libnvidia-ml"


def headers_dir(kernel_abi: str) -> Path:
    return Path("/lib/modules") / kernel_abi / "build"


def parse_abi(kernel_abi: str) -> tuple[str, str, str]:
    """`6.1.0-56-amd64` -> ("6.1.0", "56", "amd64")."""
    match = _ABI.match(kernel_abi)
    if match is None:
        raise NvidiaError(f"DEBIAN_KERNEL_ABI {kernel_abi!r} is not like 6.1.0-56-amd64")
    base, number, flavour = match.groups()
    return base, number, flavour


def headers_pattern(kernel_abi: str) -> str:
    base, _number, flavour = parse_abi(kernel_abi)
    return rf"linux-headers-{re.escape(base)}-[0-9]+-{re.escape(flavour)}"


def ensure_headers(kernel_abi: str, repo: AptRepo) -> str:
    """Install linux-headers-<ABI> unless present; stop, naming what the mirror has, if absent."""
    build = headers_dir(kernel_abi)
    if (build / "Makefile").is_file() and (build / ".config").is_file():
        return f"{build} present"
    package = f"linux-headers-{kernel_abi}"
    repo.ensure_updated()
    if not repo.has_package(package):
        offered = repo.names_matching(headers_pattern(kernel_abi))
        newest = max(offered, key=_abi_number, default=None)
        hint = f"; the newest is {newest} (nox -s bump_kernel)" if newest else ""
        raise NvidiaError(
            f"{package} is not on {repo.mirror}: it offers "
            f"{', '.join(offered) or 'no linux-headers for this kernel series'}{hint}"
        )
    if os.geteuid() != 0:
        raise NvidiaError(f"{package} is not installed and installing it needs root")
    repo.install([package])
    if not (build / "Makefile").is_file():
        raise NvidiaError(f"{package} is installed but {build}/Makefile is missing")
    return f"installed {package}"


def _abi_number(name: str) -> int:
    match = re.search(r"-(\d+)-[a-z0-9-]+$", name)
    return int(match.group(1)) if match else -1


def kernel_compiler(kernel_abi: str) -> str:
    """The compiler named by the kernel's CONFIG_CC_VERSION_TEXT (`gcc-12` on bookworm).

    The line looks like: CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"
    """
    config = headers_dir(kernel_abi) / ".config"
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NvidiaError(f"cannot read {config}: {exc.strerror}") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key == "CONFIG_CC_VERSION_TEXT":
            words = value.strip().strip('"').split()
            if words:
                compiler = words[0]
                if shutil.which(compiler) is None:
                    raise NvidiaError(
                        f"the kernel was built with {value.strip()}, but {compiler} is not "
                        f"installed (apt-get install {compiler})"
                    )
                return compiler
    raise NvidiaError(f"{config} has no CONFIG_CC_VERSION_TEXT")


def build_modules(
    kernel_src: Path, kernel_abi: str, compiler: str, log: Runner, jobs: int | None = None
) -> list[Path]:
    """Run the module build with nice; return the .ko files it produced."""
    jobs = jobs or max(1, os.cpu_count() or 1)
    log.run(
        [
            "nice",
            "-n",
            "10",
            "make",
            "-C",
            kernel_src,
            f"-j{jobs}",
            "modules",
            f"KERNEL_UNAME={kernel_abi}",
            f"CC={compiler}",
        ],
        timeout_s=3600,
    )
    modules = sorted(Path(kernel_src).glob("*.ko"))
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
    binaries = {"nvidia-smi": True, "nvidia-modprobe": True, "nvidia-persistenced": False}
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
        "skipped": skipped,
    }


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
