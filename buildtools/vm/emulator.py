"""Which QEMU runs the VM test: the host's when it is new enough, else its release's backport.

Under TCG the emulator's version decides much of the boot time, not only the image. With
Debian 12's QEMU 7.2 the guest's first seconds in systemd went to QEMU itself: the page cache
is filled into pages that had held the initramfs' programs, and each write to a page with
translated code made 7.2 invalidate that code (host `perf` over the gap: tcg_flush_jmp_cache,
page_collection_lock and the invalidation walk took 60-90 % of QEMU's time; the guest sat in
one memcpy of squashfs' zstd for up to 10 s). The same image under QEMU 10.0 took a login
after 34-47 s through isolinux, against 58-79 s under 7.2 (docs/boot-time.md).

So vm_test (and the fleet test) take QEMU MIN_VERSION or newer:
- the host's own qemu-system-x86_64 when it is that new (Debian 13 has 10.0);
- else, on a Debian 12 host, bookworm-backports' qemu-system-x86, qemu-system-data and
  seabios, fetched with the private apt configuration (buildtools/pins/aptrepo.py) and
  unpacked with `dpkg-deb -x` into dist/emulator/qemu-<version>/: nothing is installed on the
  host. The backport is built against Debian 12's libraries and needs none that the host's
  own qemu-system-x86 (a vm_test host tool) does not already bring. It is pointed at its own
  data and SeaBIOS with -L: Debian 12's SeaBIOS 1.16.2 under QEMU 10 waits 32 s on an AHCI
  command timeout before it boots the CD;
- else (no backport, no network) the host's, with a line that says the boot is slower.
`--host-qemu` keeps the host's as it is.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from buildtools.pins.aptrepo import AptError, AptRepo
from buildtools.pins.versions import load_versions
from buildtools.runner import CommandError, Runner

HOST_QEMU = "qemu-system-x86_64"
MIN_VERSION = (10, 0)  # measured: 7.2 slow (see above), 10.0.2 fast
# What the backport is made of: the emulator, its data (keymaps, option ROM loaders), SeaBIOS.
PACKAGES = ("qemu-system-x86", "qemu-system-data", "seabios")
BINARY = Path("usr/bin/qemu-system-x86_64")
DATA_DIRS = (Path("usr/share/seabios"), Path("usr/share/qemu"))  # -L order: first one wins
COMPLETE = ".complete"  # written last: a directory without it is a half-done unpack
# The 9.1 machine types and later make one SMBIOS memory device (type 17) of all of -m;
# pc-q35-9.0 and older cut it into 16 GiB DIMMs, as tests/vm/hardware.toml describes (2 DIMMs,
# qemu.qemu_dimm_split). Seen with 10.0.2: `-machine q35` one 18 GiB DIMM, pc-q35-9.0 two.
DIMM_SPLIT_MACHINE = "pc-q35-9.0"
VERSION_TIMEOUT_S = 30

_VERSION = re.compile(r"QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?")


class EmulatorError(Exception):
    """A fetched QEMU could not be unpacked or does not run; one line."""


@dataclass(frozen=True, slots=True)
class Emulator:
    binary: str
    version: tuple[int, ...] | None
    data_dirs: tuple[str, ...] = ()
    why: str = ""  # one line for the run's output: which QEMU and why

    @property
    def command(self) -> list[str]:
        """argv[0] and the -L options that every QEMU command line of this emulator starts with."""
        argv = [self.binary]
        for directory in self.data_dirs:
            argv += ["-L", directory]
        return argv

    @property
    def machine(self) -> str:
        """The -machine type: the newest q35 that still cuts memory into 16 GiB DIMMs."""
        if self.version is not None and self.version[:2] >= (9, 1):
            return DIMM_SPLIT_MACHINE
        return "q35"


def dotted(version: tuple[int, ...] | None) -> str:
    """(10, 0, 2) -> "10.0.2"; None -> "unknown"."""
    return ".".join(map(str, version)) if version else "unknown"


def parse_version(text: str) -> tuple[int, ...] | None:
    """`QEMU emulator version 10.0.2 (Debian ...)` -> (10, 0, 2); None when there is none."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def parse_codename(os_release: str) -> str | None:
    """VERSION_CODENAME of /etc/os-release (`bookworm`); None when it has none."""
    for line in os_release.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "VERSION_CODENAME":
            return value.strip().strip('"') or None
    return None


def new_enough(version: tuple[int, ...] | None) -> bool:
    return version is not None and version[:2] >= MIN_VERSION


def binary_version(binary: str, runner: Runner) -> tuple[int, ...] | None:
    """What `binary --version` says; None when it is absent or does not run."""
    if shutil.which(binary) is None and not Path(binary).is_file():
        return None
    try:
        result = runner.run([binary, "--version"], timeout_s=VERSION_TIMEOUT_S, check=False)
    except CommandError:
        return None
    return parse_version(result.output) if result.code == 0 else None


def unpacked(root: Path, runner: Runner) -> Emulator | None:
    """The emulator unpacked at root earlier, when it is whole and runs."""
    if not (root / COMPLETE).is_file():
        return None
    binary = str(root / BINARY)
    version = binary_version(binary, runner)
    if version is None:
        return None
    return Emulator(
        binary=binary,
        version=version,
        data_dirs=tuple(str(root / directory) for directory in DATA_DIRS),
    )


def unpack(debs: list[Path], root: Path, runner: Runner) -> Emulator:
    """dpkg-deb -x every .deb into a fresh directory, then move it to root in one rename."""
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for deb in debs:
        runner.run(["dpkg-deb", "-x", str(deb), str(partial)], timeout_s=300)
    (partial / COMPLETE).write_text("".join(f"{deb.name}\n" for deb in debs), encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    emulator = unpacked(root, runner)
    if emulator is None:
        raise EmulatorError(
            f"{root / BINARY} does not run (missing libraries? ldd {root / BINARY}; "
            "apt-get install qemu-system-x86 brings them)"
        )
    return emulator


def newest_unpacked(dist_dir: Path, runner: Runner) -> Emulator | None:
    """The newest whole unpack under dist/emulator/: the backports archive was not reachable."""
    found = [
        emulator
        for root in sorted((Path(dist_dir) / "emulator").glob("qemu-*"))
        if (emulator := unpacked(root, runner)) is not None and new_enough(emulator.version)
    ]
    return max(found, key=lambda emulator: emulator.version or (), default=None)


def backports_repo(codename: str, dist_dir: Path, runner: Runner) -> AptRepo:
    """apt on the host release's backports (main only), from VERSIONS' DEBIAN_MIRROR."""
    suite = f"{codename}-backports"
    mirror = load_versions()["DEBIAN_MIRROR"]
    return AptRepo(
        Path(dist_dir) / "apt" / suite, mirror=mirror, release=suite, areas=("main",), runner=runner
    )


def backport(repo: AptRepo, dist_dir: Path, runner: Runner) -> Emulator | None:
    """The newest QEMU in `repo`, unpacked under dist/emulator/; None when it has none new
    enough."""
    repo.update()
    wanted = {name: repo.candidate(name) for name in PACKAGES}
    if any(version is None for version in wanted.values()):
        return None
    root = Path(dist_dir) / "emulator" / f"qemu-{wanted['qemu-system-x86']}".replace(":", "_")
    emulator = unpacked(root, runner)
    if emulator is None:
        debs = repo.download(
            [f"{name}={version}" for name, version in wanted.items()],
            Path(dist_dir) / "emulator" / "debs",
        )
        emulator = unpack(debs, root, runner)
    return emulator if new_enough(emulator.version) else None


def resolve(
    dist_dir: Path,
    runner: Runner,
    *,
    host_only: bool = False,
    repo: AptRepo | None = None,
    os_release: Path = Path("/etc/os-release"),
) -> Emulator:
    """The QEMU this run uses, with one line that says which and why. The backport comes
    from `repo` (default: backports_repo of the host's release)."""
    host = binary_version(HOST_QEMU, runner)
    host_text = dotted(host)
    minimum = dotted(MIN_VERSION)
    if host_only or new_enough(host):
        reason = "--host-qemu" if host_only and not new_enough(host) else f">= {minimum}"
        return Emulator(binary=HOST_QEMU, version=host, why=f"QEMU {host_text} (host's, {reason})")
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        text = ""
    codename = parse_codename(text)
    found: Emulator | None = None
    problem = f"no VERSION_CODENAME in {os_release}"
    if codename is not None:
        problem = f"{codename}-backports has no qemu-system-x86 >= {minimum}"
        try:
            found = backport(repo or backports_repo(codename, dist_dir, runner), dist_dir, runner)
        except (AptError, EmulatorError, CommandError, OSError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            found = newest_unpacked(dist_dir, runner)  # fetched on an earlier run
    if found is None:
        return Emulator(
            binary=HOST_QEMU,
            version=host,
            why=f"QEMU {host_text} (host's; {problem}): under TCG this boots slower "
            f"than QEMU >= {minimum} (docs/boot-time.md)",
        )
    return Emulator(
        binary=found.binary,
        version=found.version,
        data_dirs=found.data_dirs,
        why=f"QEMU {dotted(found.version)} from {codename}-backports, unpacked in "
        f"{Path(found.binary).parents[2]} (the host's is {host_text}, older than {minimum})",
    )
